// Every metric weir exports is defined here, in one registry per process (docs/metrics.md). The
// counters and the duration histogram read the hot path's cells (cells.ts) when scraped.

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { WeightsBp } from '../config/model.ts'
import {
  BLUEGREEN_PHASES, DECISION_REASONS, MISMATCH_KINDS, RETRY_RESULTS, ROLLOUT_PHASES, SHADOW_OUTCOMES, UPSTREAM_FAILURE_REASONS, VERSIONS, type Version,
} from '../vocabulary.ts'
import { STATUS_SLOTS, type CounterCell, type RouteMetrics } from './cells.ts'
import { DurationHistogram } from './duration-histogram.ts'

/**
 * weir_rollout_state{phase} always has `idle` and every phase both strategies pass through; a
 * blue/green-only phase (smoke, watching) is exported while a route is in it.
 */
const ALWAYS_EXPORTED_PHASES: readonly string[] = ['idle', ...ROLLOUT_PHASES.filter((p) => !BLUEGREEN_PHASES.has(p))]

/** What the gauges read at scrape time: the routes in force (the current route table's). */
export type RouteSource = () => Iterable<{
  readonly name: string
  readonly weights: Readonly<WeightsBp>
  /** The origins of each version in force (the config's, or the live ones a change or a promotion wrote). */
  readonly upstreams: Readonly<Partial<Record<string, readonly string[]>>>
}>
/** What the rollout gauges read of a route's rollout (its live state); undefined: none ever ran (idle). */
export interface RolloutReading {
  readonly phase: string
  /** Failed checks so far. */
  readonly failures: number
  /** Epoch ms. */
  readonly startedAt: number
  readonly finishedAt: number | null
  /** The last check's outcomes (empty before the first check). */
  readonly checks: readonly {
    readonly name: string
    readonly value: number | null
    readonly threshold: number | null
    /** A metric check's thresholdRange (null: a bound left out). */
    readonly range?: { readonly min: number | null; readonly max: number | null }
  }[]
}
export type RolloutSource = (route: string) => RolloutReading | undefined
/** What weir_build_info says: weir's version and Node's. */
export interface BuildInfo { readonly version: string; readonly node: string }
/** The worker processes and their running totals (none in the single-process mode). */
export type WorkerSource = () => readonly { readonly worker: number; readonly state: string; readonly requests: number; readonly restarts: number }[]

export interface Metrics {
  readonly registry: Registry
  readonly requests: Counter<'route' | 'version' | 'code'>
  readonly requestDuration: DurationHistogram
  readonly upstreamErrors: Counter<'route' | 'version' | 'reason'>
  readonly upstreamRetries: Counter<'route' | 'version' | 'result'>
  readonly upstreamHostHealthy: Gauge<'route' | 'version' | 'host'>
  readonly routingDecisions: Counter<'route' | 'version' | 'reason'>
  readonly routeWeight: Gauge<'route' | 'version'>
  readonly shadowRequests: Counter<'route' | 'outcome'>
  readonly shadowMismatches: Counter<'route' | 'kind'>
  readonly rolloutState: Gauge<'route' | 'phase'>
  readonly rolloutCheckValue: Gauge<'route' | 'check'>
  readonly rolloutCheckThreshold: Gauge<'route' | 'check'>
  readonly rolloutCheckThresholdMin: Gauge<'route' | 'check'>
  readonly rolloutCheckThresholdMax: Gauge<'route' | 'check'>
  readonly rolloutFailedChecks: Gauge<'route'>
  readonly rolloutDuration: Gauge<'route'>
  readonly buildInfo: Gauge<'version' | 'node'>
  readonly routeUpstreamInfo: Gauge<'route' | 'version' | 'upstream'>
  readonly workers: Gauge
  readonly workerRequests: Counter<'worker'>
  readonly workerRestarts: Counter<'worker'>
  /** Hot-path cells by route name (see cells.ts). */
  readonly routes: Map<string, RouteMetrics>
  /** Where the weight and rollout gauges find the routes in force (none until set). */
  setRouteSource (source: RouteSource): void
  /** Where the rollout gauges find each route's rollout (every route idle until set). */
  setRolloutSource (source: RolloutSource): void
  /** Where the worker metrics find the workers (the single process until set). */
  setWorkerSource (source: WorkerSource): void
  /** Where weir_upstream_host_healthy finds each host's health (every host healthy until set). */
  setHostHealthSource (source: HostHealthSource): void
}

/** Whether a host of a route's version takes requests in every data path process. */
export type HostHealthSource = (route: string, version: Version, host: string) => boolean

export interface MetricsOptions {
  /** Node's process metrics (process_*, nodejs_*); tests that build many registries leave them out. */
  processDefaults?: boolean
  /** weir_build_info's labels (default: an unknown weir version on this Node). */
  build?: BuildInfo
}

export function createMetrics ({ processDefaults = true, build = { version: 'unknown', node: process.version } }: MetricsOptions = {}): Metrics {
  const registry = new Registry()
  if (processDefaults) collectDefaultMetrics({ register: registry })
  const routes = new Map<string, RouteMetrics>()
  let routeSource: RouteSource = () => []
  let rolloutSource: RolloutSource = () => undefined
  const now = (): number => performance.timeOrigin + performance.now()
  /** The routes in force with the rollout recorded in each (those that have one). */
  const rollouts = function * (): Generator<[string, RolloutReading]> {
    for (const { name } of routeSource()) {
      const rollout = rolloutSource(name)
      if (rollout !== undefined) yield [name, rollout]
    }
  }
  let workerSource: WorkerSource = () => []
  let hostHealthSource: HostHealthSource = () => true
  // What the worker counters last exported, per worker slot: the source holds running totals.
  const exportedRequests = new Map<number, number>()
  const exportedRestarts = new Map<number, number>()
  const exportTotals = (counter: Counter<'worker'>, exported: Map<number, number>, field: 'requests' | 'restarts'): void => {
    for (const info of workerSource()) {
      const delta = info[field] - (exported.get(info.worker) ?? 0)
      counter.inc({ worker: String(info.worker) }, delta > 0 ? delta : 0)
      exported.set(info.worker, Math.max(info[field], exported.get(info.worker) ?? 0))
    }
  }
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
      collect () {
        flushUpstreamErrors(metrics)
      },
    }),
    upstreamRetries: new Counter({
      name: 'weir_upstream_retries_total',
      help: 'Failed attempts that could be retried on another host of their version: retried, or not because the retry budget was spent.',
      labelNames: ['route', 'version', 'result'] as const,
      registers: [registry],
      collect () {
        for (const [route, cells] of metrics.routes) {
          for (const version of VERSIONS) flushCells(metrics.upstreamRetries, cells.versions[version].retries, RETRY_RESULTS, 'result', { route, version })
        }
      },
    }),
    upstreamHostHealthy: new Gauge({
      name: 'weir_upstream_host_healthy',
      help: 'Each host of each version of each route in force: 1 while it takes requests, 0 while it is ejected or failing its health checks (in any worker).',
      labelNames: ['route', 'version', 'host'] as const,
      registers: [registry],
      collect () {
        this.reset()
        for (const route of routeSource()) {
          for (const version of VERSIONS) {
            for (const host of route.upstreams[version] ?? []) this.set({ route: route.name, version, host }, hostHealthSource(route.name, version, host) ? 1 : 0)
          }
        }
      },
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
          const current = rolloutSource(name)?.phase ?? 'idle'
          for (const phase of ALWAYS_EXPORTED_PHASES) this.set({ route: name, phase }, phase === current ? 1 : 0)
          if (!ALWAYS_EXPORTED_PHASES.includes(current)) this.set({ route: name, phase: current }, 1)
        }
      },
    }),
    rolloutCheckValue: checkGauge(registry, rollouts, (c) => c.value, 'weir_rollout_check_value',
      'Value each check of the last rollout analysis measured (error-rate 0..1, p99 in ms, ratios, requests, a metric check\'s sample), per route in force.'),
    rolloutCheckThreshold: checkGauge(registry, rollouts, (c) => c.threshold, 'weir_rollout_check_threshold',
      'Threshold each check of the last rollout analysis was held against, same units as weir_rollout_check_value (a metric check: its max, else its min).'),
    rolloutCheckThresholdMin: checkGauge(registry, rollouts, (c) => c.range?.min ?? null, 'weir_rollout_check_threshold_min',
      'Lower bound of each metric check\'s thresholdRange in the last rollout analysis (metric checks with a min only).'),
    rolloutCheckThresholdMax: checkGauge(registry, rollouts, (c) => c.range?.max ?? null, 'weir_rollout_check_threshold_max',
      'Upper bound of each metric check\'s thresholdRange in the last rollout analysis (metric checks with a max only).'),
    rolloutFailedChecks: new Gauge({
      name: 'weir_rollout_failed_checks',
      help: 'Failed checks of the current (or last) rollout of each route in force; the rollout reverts at its failureThreshold.',
      labelNames: ['route'] as const,
      registers: [registry],
      collect () {
        this.reset()
        for (const [route, rollout] of rollouts()) this.set({ route }, rollout.failures)
      },
    }),
    rolloutDuration: new Gauge({
      name: 'weir_rollout_duration_seconds',
      help: 'Seconds since the current rollout of each route in force started; once it finished, how long it took.',
      labelNames: ['route'] as const,
      registers: [registry],
      collect () {
        this.reset()
        const at = now()
        for (const [route, rollout] of rollouts()) this.set({ route }, Math.max(0, ((rollout.finishedAt ?? at) - rollout.startedAt) / 1000))
      },
    }),
    buildInfo: new Gauge({
      name: 'weir_build_info',
      help: 'Always 1: the version of weir and of Node this process runs.',
      labelNames: ['version', 'node'] as const,
      registers: [registry],
      collect () {
        this.set({ version: build.version, node: build.node }, 1)
      },
    }),
    routeUpstreamInfo: new Gauge({
      name: 'weir_route_upstream_info',
      help: 'Always 1: each upstream origin of each version of each route in force (a promotion moves canary\'s origins to stable).',
      labelNames: ['route', 'version', 'upstream'] as const,
      registers: [registry],
      collect () {
        // Rebuilt from the routes in force, like the weights: an origin no longer in force leaves.
        this.reset()
        for (const route of routeSource()) {
          for (const [version, origins] of Object.entries(route.upstreams)) {
            for (const upstream of origins ?? []) this.set({ route: route.name, version, upstream }, 1)
          }
        }
      },
    }),
    workers: new Gauge({
      name: 'weir_workers',
      help: 'Processes serving the data path: worker processes running, or 1 in the single-process mode.',
      registers: [registry],
      collect () {
        const workers = workerSource()
        this.set(workers.length === 0 ? 1 : workers.filter((w) => w.state === 'running').length)
      },
    }),
    workerRequests: new Counter({
      name: 'weir_worker_requests_total',
      help: 'Responses sent by each worker process slot (a replacement continues its slot); none in the single-process mode.',
      labelNames: ['worker'] as const,
      registers: [registry],
      collect () {
        exportTotals(this, exportedRequests, 'requests')
      },
    }),
    workerRestarts: new Counter({
      name: 'weir_worker_restarts_total',
      help: 'Worker processes replaced after they exited unexpectedly or stopped answering, by slot.',
      labelNames: ['worker'] as const,
      registers: [registry],
      collect () {
        exportTotals(this, exportedRestarts, 'restarts')
      },
    }),
    setWorkerSource (source) {
      workerSource = source
    },
    setHostHealthSource (source) {
      hostHealthSource = source
    },
    setRouteSource (source) {
      routeSource = source
    },
    setRolloutSource (source) {
      rolloutSource = source
    },
  }
  return metrics
}

/** A gauge of one field of each check of the last analysis, per route in force (a check without that field is left out). */
function checkGauge (
  registry: Registry, rollouts: () => Iterable<[string, RolloutReading]>, field: (check: RolloutReading['checks'][number]) => number | null | undefined,
  name: string, help: string
): Gauge<'route' | 'check'> {
  return new Gauge({
    name,
    help,
    labelNames: ['route', 'check'] as const,
    registers: [registry],
    collect () {
      this.reset()
      for (const [route, rollout] of rollouts()) {
        for (const check of rollout.checks) {
          const value = field(check)
          if (value !== null && value !== undefined) this.set({ route, check: check.name }, value)
        }
      }
    },
  })
}

/** Moves each cell's pending count into `counter`, labelled `labels` plus `label` = the cell's key. */
function flushCells<K extends string, L extends string> (
  counter: Counter<L>, cells: Readonly<Record<K, CounterCell>>, keys: readonly K[], label: NoInfer<L>, labels: Readonly<Partial<Record<NoInfer<L>, string>>>
): void {
  for (const key of keys) {
    const cell = cells[key]
    if (cell.pending > 0) {
      counter.inc({ ...labels, [label]: key } as Partial<Record<L, string>>, cell.pending)
      cell.pending = 0
    }
  }
}

/** Moves pending decision counts into prom-client (the counter's collect hook). */
function flushDecisions (metrics: Metrics): void {
  for (const [route, { versions }] of metrics.routes) {
    for (const version of VERSIONS) flushCells(metrics.routingDecisions, versions[version].decisions, DECISION_REASONS, 'reason', { route, version })
  }
}

/** Moves pending response counts into weir_requests_total (the counter's collect hook). */
function flushResponses (metrics: Metrics): void {
  for (const [route, { versions }] of metrics.routes) {
    for (const version of VERSIONS) {
      const responses = versions[version].responses
      for (let status = 0; status < STATUS_SLOTS; status++) {
        const pending = responses[status] as number
        if (pending > 0) {
          metrics.requests.inc({ route, version, code: String(status) }, pending)
          responses[status] = 0
        }
      }
    }
  }
}

/** Moves pending failed attempts into weir_upstream_errors_total (every series exists from the route's first table, at 0). */
function flushUpstreamErrors (metrics: Metrics): void {
  for (const [route, cells] of metrics.routes) {
    for (const version of VERSIONS) flushCells(metrics.upstreamErrors, cells.versions[version].upstreamErrors, UPSTREAM_FAILURE_REASONS, 'reason', { route, version })
    flushCells(metrics.upstreamErrors, cells.shadowVersion.upstreamErrors, UPSTREAM_FAILURE_REASONS, 'reason', { route, version: 'shadow' })
  }
}

/** Moves pending shadow counts into prom-client (the shadow counters' collect hook). */
function flushShadow (metrics: Metrics): void {
  for (const [route, { shadow, mismatches }] of metrics.routes) {
    flushCells(metrics.shadowRequests, shadow, SHADOW_OUTCOMES, 'outcome', { route })
    flushCells(metrics.shadowMismatches, mismatches, MISMATCH_KINDS, 'kind', { route })
  }
}
