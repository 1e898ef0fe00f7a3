// The routing half of a route, compiled once per snapshot: host and path matching, bucket
// bounds, the user-id hasher, header names and the bucket cookie codec. Knows nothing of
// upstream pools, metrics or shadow: the proxy joins those onto each route (proxy/proxy-routes.ts).

import type { BlockList } from 'node:net'
import type { RouteConfig, WeightsBp } from '../config/model.ts'
import { buildTrustedProxies } from '../config/rules.ts'
import { BUCKETS, type Version } from '../vocabulary.ts'
import { createBucketCookie, type BucketCookie } from './bucket-cookie.ts'
import { createUserBucketer } from './hash.ts'
import { compileRules, type CompiledRule } from './match-rules.ts'
import { digestOf } from './smoke.ts'
import { varyOf } from './vary.ts'

export interface RoutingRoute {
  readonly name: string
  readonly weights: WeightsBp
  /** Buckets [0, canaryEnd) go to canary, [greenStart, 10000) to green, the rest to stable. */
  readonly canaryEnd: number
  readonly greenStart: number
  /** The versions that have an upstream (an override may only name those). */
  readonly serves: Readonly<Record<Version, boolean>>
  readonly userBucket: (userId: string) => number
  readonly userIdHeader: string | undefined
  readonly userIdCookieEq: string | undefined
  readonly overrideHeader: string | undefined
  readonly overrideCookieEq: string | undefined
  /** SHA-256 of the override's secret (compared in constant time), or null: none asked. */
  readonly overrideSecret: Buffer | null
  /** Client addresses an override is honoured from, or null: any. */
  readonly overrideFrom: BlockList | null
  /** SHA-256 of the controller's smoke token (smoke.ts); null: none (then no smoke header counts). */
  readonly smokeToken: Buffer | null
  /** Match rules in order (empty: none), after the override and before the weights. */
  readonly rules: readonly CompiledRule[]
  readonly bucketCookie: BucketCookie
  readonly anyHost: boolean
  readonly exactHosts: ReadonlySet<string>
  /** ".example.com" for a "*.example.com" entry. */
  readonly hostSuffixes: readonly string[]
  readonly pathPrefix: string
  /** The Vary every response of the route carries (vary.ts), or null: none. */
  readonly vary: string | null
}

/** A table of routes in config order; `R` is the caller's route type (the proxy's carries its pools too). */
export class RouteTable<R extends RoutingRoute = RoutingRoute> {
  readonly routes: readonly R[]
  private readonly needsHost: boolean

  constructor (routes: readonly R[]) {
    this.routes = routes
    this.needsHost = routes.some((r) => !r.anyHost)
  }

  /** First route (in config order) whose host and path prefix match. */
  match (hostHeader: string | undefined, url: string): R | undefined {
    const host = this.needsHost ? hostName(hostHeader) : ''
    const routes = this.routes
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i] as R
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

/**
 * The routing half of one route; `signature` signs bucket cookies (one secret for every route);
 * `smokeToken` is the controller's (snapshot.ts), accepted as an override on every route.
 */
export function compileRouting (route: RouteConfig, signature: (bucket: number) => string, smokeToken: Buffer | null = null): RoutingRoute {
  const weights = route.weights
  const override = route.override
  return {
    name: route.name,
    weights,
    canaryEnd: weights.canary,
    greenStart: BUCKETS - weights.green,
    serves: { stable: true, canary: route.upstreams.canary !== undefined, green: route.upstreams.green !== undefined },
    userBucket: createUserBucketer(route.name),
    userIdHeader: route.userIdHeader,
    userIdCookieEq: route.userIdCookie === undefined ? undefined : route.userIdCookie + '=',
    overrideHeader: override === false ? undefined : override.header,
    overrideCookieEq: override === false || override.cookie === undefined ? undefined : override.cookie + '=',
    overrideSecret: override === false || override.secret === undefined ? null : digestOf(override.secret),
    // Validated when the config was loaded.
    overrideFrom: override === false || override.from === undefined ? null : buildTrustedProxies(override.from, 'override.from').list,
    smokeToken,
    // A rule for a version the live state left without an upstream is skipped, not followed.
    rules: compileRules(route.rules.filter((r) => r.version === 'stable' || route.upstreams[r.version] !== undefined)),
    bucketCookie: createBucketCookie(route.bucketCookie.name, route.bucketCookie.maxAgeSeconds, signature),
    anyHost: route.hosts.length === 0,
    exactHosts: new Set(route.hosts.filter((h) => !h.startsWith('*.'))),
    hostSuffixes: route.hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1)),
    pathPrefix: route.pathPrefix,
    vary: varyOf(route),
  }
}
