// The proxy's per-route join, rebuilt from each snapshot: a route's routing half (route-table.ts)
// plus what forwarding needs — its config, upstream groups per version and for the shadow, retry
// budgets, the shadow's gate and comparison rules, and the route's metric cells from the recorder.

import type { BlockList } from 'node:net'
import type { RetryConfig, RouteConfig } from '../config/model.ts'
import { buildTrustedProxies } from '../config/rules.ts'
import type { RouteMetrics } from '../metrics/cells.ts'
import type { Recorder } from '../metrics/recorder.ts'
import { compileRouting, RouteTable, type RoutingRoute } from '../routing/route-table.ts'
import { compileCompareRules, type CompareRules } from '../shadow/compare.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import { VERSIONS, type UpstreamName, type Version } from '../vocabulary.ts'
import type { HostHealthRegistry } from './host-health.ts'
import type { RetryBudget } from './retry-budget.ts'
import type { ShadowGate } from './shadow-gate.ts'
import type { UpstreamGroup, UpstreamPools } from './upstream-pools.ts'

export interface ProxyRoute extends RoutingRoute {
  readonly config: RouteConfig
  readonly groups: Readonly<Record<Version, UpstreamGroup | null>> & { readonly stable: UpstreamGroup }
  /** Per version: the budget of retries on another host; null when the route does not retry. */
  readonly retryBudgets: Readonly<Record<Version, RetryBudget | null>>
  /** The shadow's upstreams; null when the route has none (then nothing is copied). */
  readonly shadow: UpstreamGroup | null
  /** Copies in flight and the circuit breaker (one per route name, kept across snapshots). */
  readonly shadowGate: ShadowGate
  /** The shadow's comparison rules; null when `shadow.compare` is off. */
  readonly compareRules: CompareRules | null
  readonly metrics: RouteMetrics
}

/** What the data path reads per request, through one reference; replaced whole on every snapshot. */
export interface ProxyTable {
  readonly table: RouteTable<ProxyRoute>
  readonly versionHeader: string | false
  readonly trusted: BlockList | null
}

export interface ProxyTableDeps {
  pools: UpstreamPools
  signature: (bucket: number) => string
  /** SHA-256 of the snapshot's smoke token (routing/smoke.ts). */
  smokeToken: Buffer
  recorder: Recorder
  /** The route's shadow gate (the same instance on every call for a name). */
  shadowGate: (route: string) => ShadowGate
  /** Host health by route × version × origin, kept across snapshots. */
  hostHealth: HostHealthRegistry
  /** The route × version's retry budget (the same instance while its settings stay the same). */
  retryBudget: (route: string, version: Version, config: RetryConfig) => RetryBudget
}

export function buildProxyTable (snapshot: DataPathSnapshot, deps: ProxyTableDeps): ProxyTable {
  return {
    table: new RouteTable(snapshot.routes.map((route) => joinRoute(route, deps))),
    versionHeader: snapshot.versionHeader,
    // The snapshot's list was validated when the config was loaded.
    trusted: snapshot.trustedProxies.length > 0 ? buildTrustedProxies(snapshot.trustedProxies, 'trustedProxies').list : null,
  }
}

/** Every upstream group a table refers to (the pools to keep open). */
export function groupsOf (table: ProxyTable): UpstreamGroup[] {
  return table.table.routes.flatMap((r) => [r.groups.stable, r.groups.canary, r.groups.green, r.shadow].filter((g) => g !== null))
}

function joinRoute (route: RouteConfig, deps: ProxyTableDeps): ProxyRoute {
  const settings = { connectMs: route.timeouts.connectMs, rejectUnauthorized: route.tls.rejectUnauthorized, ca: route.tls.ca }
  const group = (name: UpstreamName): UpstreamGroup | null => {
    const origins = route.upstreams[name]
    if (origins === undefined) return null
    // The shadow is never ejected: its own breaker (shadow-gate.ts) pauses copies to a failing one.
    const policy = name === 'shadow'
      ? { version: name, balance: 'round-robin' as const, outlier: false as const }
      : { version: name, balance: route.upstreamPolicy.versions[name].balance, outlier: route.upstreamPolicy.outlier }
    return deps.pools.group(origins, settings, policy, (origin) => deps.hostHealth.get(route.name, name, origin))
  }
  const groups = { stable: group('stable') as UpstreamGroup, canary: group('canary'), green: group('green') }
  const shadow = group('shadow')
  const retry = route.upstreamPolicy.retry
  const budget = (version: Version): RetryBudget | null => {
    const g = groups[version]
    // A version with one host has no other host to retry on.
    return retry === false || g === null || g.targets.length < 2 ? null : deps.retryBudget(route.name, version, retry)
  }
  return {
    ...compileRouting(route, deps.signature, deps.smokeToken),
    config: route,
    groups,
    retryBudgets: { stable: budget('stable'), canary: budget('canary'), green: budget('green') },
    shadow,
    shadowGate: deps.shadowGate(route.name),
    compareRules: route.shadow.compare ? compileCompareRules(route.shadow) : null,
    metrics: deps.recorder.route(route.name, VERSIONS.filter((v) => groups[v] !== null), shadow !== null),
  }
}
