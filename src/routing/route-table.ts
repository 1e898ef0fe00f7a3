// An immutable snapshot of every route, built whenever config or weights change, holding all
// a request needs precomputed: bucket bounds, upstream groups, header names, cookie codecs.

import type { Config, RouteConfig } from '../config/load.ts'
import { VERSIONS, type UpstreamName, type Version, type WeightsBp } from '../config/rules.ts'
import type { RouteMetrics } from '../metrics/recorder.ts'
import type { UpstreamGroup, UpstreamPools } from '../proxy/upstreams.ts'
import { compileCompareRules, type CompareRules } from '../shadow/compare.ts'
import type { RouteShadow } from '../shadow/mirror.ts'
import { createBucketCookie, type BucketCookie } from './bucket-cookie.ts'
import { BUCKETS, createUserBucketer } from './hash.ts'

export interface CompiledRoute {
  readonly name: string
  readonly config: RouteConfig
  readonly weights: WeightsBp
  /** Buckets [0, canaryEnd) go to canary, [greenStart, 10000) to green, the rest to stable. */
  readonly canaryEnd: number
  readonly greenStart: number
  readonly groups: Readonly<Record<Version, UpstreamGroup | null>> & { readonly stable: UpstreamGroup }
  /** The shadow's upstreams; null when the route has none (then nothing is copied). */
  readonly shadow: UpstreamGroup | null
  /** Copies in flight and comparison results (one per route name, kept across rebuilds). */
  readonly shadowState: RouteShadow
  /** The shadow's comparison rules; null when `shadow.compare` is off. */
  readonly compareRules: CompareRules | null
  readonly userBucket: (userId: string) => number
  readonly userIdHeader: string | undefined
  readonly userIdCookieEq: string | undefined
  readonly overrideHeader: string | undefined
  readonly overrideCookieEq: string | undefined
  readonly bucketCookie: BucketCookie
  readonly anyHost: boolean
  readonly exactHosts: ReadonlySet<string>
  /** ".example.com" for a "*.example.com" entry. */
  readonly hostSuffixes: readonly string[]
  readonly pathPrefix: string
  readonly metrics: RouteMetrics
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[]
  private readonly needsHost: boolean

  constructor (routes: readonly CompiledRoute[]) {
    this.routes = routes
    this.needsHost = routes.some((r) => !r.anyHost)
  }

  /** First route (in config order) whose host and path prefix match. */
  match (hostHeader: string | undefined, url: string): CompiledRoute | undefined {
    const host = this.needsHost ? hostName(hostHeader) : ''
    const routes = this.routes
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i] as CompiledRoute
      if (!url.startsWith(route.pathPrefix)) continue
      if (route.anyHost || route.exactHosts.has(host) || matchesSuffix(route.hostSuffixes, host)) return route
    }
    return undefined
  }
}

function matchesSuffix (suffixes: readonly string[], host: string): boolean {
  for (let i = 0; i < suffixes.length; i++) if (host.endsWith(suffixes[i] as string)) return true
  return false
}

/** "Shop.Example.com:8080" → "shop.example.com"; "[::1]:80" → "[::1]". */
function hostName (header: string | undefined): string {
  if (header === undefined) return ''
  const colon = header.lastIndexOf(':')
  const name = colon !== -1 && header.indexOf(']', colon) === -1 ? header.slice(0, colon) : header
  return name.toLowerCase()
}

export interface BuildTableOptions {
  pools: UpstreamPools
  signature: (bucket: number) => string
  /** The route's metric cells and rolling stats, for the versions that have an upstream. */
  bindMetrics: (route: string, versions: readonly Version[], hasShadow: boolean) => RouteMetrics
  /** The route's shadow state (the same instance on every call for a name). */
  bindShadow: (route: string) => RouteShadow
}

export function buildRouteTable (config: Config, options: BuildTableOptions): RouteTable {
  return new RouteTable(config.routes.map((route) => compileRoute(route, options)))
}

function compileRoute (route: RouteConfig, options: BuildTableOptions): CompiledRoute {
  const settings = { connectMs: route.timeouts.connectMs, rejectUnauthorized: route.tls.rejectUnauthorized, ca: route.tls.ca }
  const group = (name: UpstreamName): UpstreamGroup | null => {
    const origins = route.upstreams[name]
    return origins === undefined ? null : options.pools.group(origins, settings)
  }
  const weights = route.weights
  const exact = route.hosts.filter((h) => !h.startsWith('*.'))
  const override = route.override
  const groups = { stable: group('stable') as UpstreamGroup, canary: group('canary'), green: group('green') }
  const shadow = group('shadow')
  return {
    name: route.name,
    config: route,
    weights,
    canaryEnd: weights.canary,
    greenStart: BUCKETS - weights.green,
    groups,
    shadow,
    shadowState: options.bindShadow(route.name),
    compareRules: route.shadow.compare ? compileCompareRules(route.shadow) : null,
    userBucket: createUserBucketer(route.name),
    userIdHeader: route.userIdHeader,
    userIdCookieEq: route.userIdCookie === undefined ? undefined : route.userIdCookie + '=',
    overrideHeader: override === false ? undefined : override.header,
    overrideCookieEq: override === false || override.cookie === undefined ? undefined : override.cookie + '=',
    bucketCookie: createBucketCookie(route.bucketCookie.name, route.bucketCookie.maxAgeSeconds, options.signature),
    anyHost: route.hosts.length === 0,
    exactHosts: new Set(exact),
    hostSuffixes: route.hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1)),
    pathPrefix: route.pathPrefix,
    metrics: options.bindMetrics(route.name, VERSIONS.filter((v) => groups[v] !== null), shadow !== null),
  }
}
