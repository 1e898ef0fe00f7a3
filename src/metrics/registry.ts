// Every metric weir exports is defined here, in one registry per process (CONTRACT §6).

import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { flushDecisions, type RouteMetrics } from './recorder.ts'

export interface Metrics {
  readonly registry: Registry
  readonly upstreamErrors: Counter<'route' | 'version' | 'reason'>
  readonly routingDecisions: Counter<'route' | 'version' | 'reason'>
  /** Hot-path counter cells by route name (see recorder.ts). */
  readonly routes: Map<string, RouteMetrics>
}

export function createMetrics ({ processDefaults = true } = {}): Metrics {
  const registry = new Registry()
  if (processDefaults) collectDefaultMetrics({ register: registry })
  const metrics: Metrics = {
    registry,
    routes: new Map(),
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
  }
  return metrics
}
