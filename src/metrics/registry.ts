// Every metric weir exports is defined here, in one registry per process (CONTRACT §6).

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { VERSIONS, type WeightsBp } from '../config/rules.ts'
import { DurationHistogram } from './duration-histogram.ts'
import { flushDecisions, flushResponses, flushShadow, type RouteMetrics } from './recorder.ts'

/** Label values of weir_rollout_state{phase} (CONTRACT §8); a phase outside the list is exported too. */
export const ROLLOUT_PHASES = ['idle', 'progressing', 'paused', 'promoting', 'succeeded', 'failed'] as const
export type RolloutPhase = typeof ROLLOUT_PHASES[number]

/** What the gauges read at scrape time: the routes in force (the current route table's). */
export type RouteSource = () => Iterable<{ readonly name: string; readonly weights: Readonly<WeightsBp> }>
/** The current rollout phase of a route; undefined means idle. */
export type RolloutSource = (route: string) => string | undefined

export interface Metrics {
  readonly registry: Registry
  readonly requests: Counter<'route' | 'version' | 'code'>
  readonly requestDuration: DurationHistogram
  readonly upstreamErrors: Counter<'route' | 'version' | 'reason'>
  readonly routingDecisions: Counter<'route' | 'version' | 'reason'>
  readonly routeWeight: Gauge<'route' | 'version'>
  readonly shadowRequests: Counter<'route' | 'outcome'>
  readonly shadowMismatches: Counter<'route' | 'kind'>
  readonly rolloutState: Gauge<'route' | 'phase'>
  /** Hot-path cells by route name (see recorder.ts). */
  readonly routes: Map<string, RouteMetrics>
  /** Where the weight and rollout gauges find the routes in force (none until set). */
  setRouteSource (source: RouteSource): void
  /** Where weir_rollout_state finds each route's phase (every route idle until set). */
  setRolloutSource (source: RolloutSource): void
}

export function createMetrics ({ processDefaults = true } = {}): Metrics {
  const registry = new Registry()
  if (processDefaults) collectDefaultMetrics({ register: registry })
  const routes = new Map<string, RouteMetrics>()
  let routeSource: RouteSource = () => []
  let rolloutSource: RolloutSource = () => undefined
  const metrics: Metrics = {
    registry,
    routes,
    requests: new Counter({
      name: 'weir_requests_total',
      help: 'Responses to clients of routed requests by the status sent; 499 when the client closed the connection first.',
      labelNames: ['route', 'version', 'code'] as const,
      registers: [registry],
      collect () {
        flushResponses(metrics)
      },
    }),
    requestDuration: new DurationHistogram({
      name: 'weir_request_duration_seconds',
      help: 'Time from the request entering the proxy to the response finishing (or the client leaving), by the version that answered.',
      routes,
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'weir_upstream_errors_total',
      help: 'Failed upstream attempts by reason, including attempts a failover then answered.',
      labelNames: ['route', 'version', 'reason'] as const,
      registers: [registry],
    }),
    routingDecisions: new Counter({
      name: 'weir_routing_decisions_total',
      help: 'Routing decisions by the version chosen and what decided it.',
      labelNames: ['route', 'version', 'reason'] as const,
      registers: [registry],
      collect () {
        flushDecisions(metrics)
      },
    }),
    routeWeight: new Gauge({
      name: 'weir_route_weight_percent',
      help: 'Weight of each version of each route in force, in percent.',
      labelNames: ['route', 'version'] as const,
      registers: [registry],
      collect () {
        // Rebuilt from the routes in force: a route that left the table leaves the gauge.
        this.reset()
        for (const route of routeSource()) {
          for (const version of VERSIONS) this.set({ route: route.name, version }, route.weights[version] / 100)
        }
      },
    }),
    shadowRequests: new Counter({
      name: 'weir_shadow_requests_total',
      help: 'Shadow copies of requests by outcome: ok, error, dropped (over the limit), skipped (not eligible).',
      labelNames: ['route', 'outcome'] as const,
      registers: [registry],
      collect () {
        flushShadow(metrics)
      },
    }),
    shadowMismatches: new Counter({
      name: 'weir_shadow_mismatches_total',
      help: 'Shadow responses that differed from the served response, by what differed.',
      labelNames: ['route', 'kind'] as const,
      registers: [registry],
      collect () {
        flushShadow(metrics)
      },
    }),
    rolloutState: new Gauge({
      name: 'weir_rollout_state',
      help: 'Rollout phase of each route in force: 1 for the current phase, 0 for the others.',
      labelNames: ['route', 'phase'] as const,
      registers: [registry],
      collect () {
        this.reset()
        for (const { name } of routeSource()) {
          const current = rolloutSource(name) ?? 'idle'
          for (const phase of ROLLOUT_PHASES) this.set({ route: name, phase }, phase === current ? 1 : 0)
          if (!(ROLLOUT_PHASES as readonly string[]).includes(current)) this.set({ route: name, phase: current }, 1)
        }
      },
    }),
    setRouteSource (source) {
      routeSource = source
    },
    setRolloutSource (source) {
      rolloutSource = source
    },
  }
  return metrics
}
