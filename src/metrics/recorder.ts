// The recorder: where the data path's outputs go. The data path asks it once per route and
// snapshot for the route's cells (counts, latency, rolling windows, shadow outcomes) and writes
// into them per request; the control plane reads what they hold (metrics scrape, stats,
// mismatch samples). This interface is the data path's side of the seam (docs/architecture.md).

import { MismatchLog, type MismatchSample, type MismatchSummary } from '../shadow/mismatch-log.ts'
import { DECISION_REASONS, MISMATCH_KINDS, RETRY_RESULTS, SHADOW_OUTCOMES, UPSTREAM_FAILURE_REASONS, VERSIONS, type Version } from '../vocabulary.ts'
import { counters, VersionMetrics, type RouteMetrics } from './cells.ts'
import type { ReadingsSink } from './readings.ts'
import type { Metrics } from './registry.ts'
import type { StatsRegistry } from './rolling-stats.ts'

export interface Recorder {
  /**
   * The cells of one route, the same instance for a name across snapshots (so nothing leaks and
   * counts never go back). `versions` are those with an upstream in the snapshot being applied:
   * each gets its rolling window. Cheap and idempotent: called on every snapshot.
   */
  route (name: string, versions: readonly Version[], hasShadow: boolean): RouteMetrics
}

/** What the control plane reads of the recorded shadow outcomes. */
export interface ShadowReadings {
  /** Comparison counts of a route over the window, and how long copies stay paused (ms, 0 when they flow). */
  summary (route: string, windowSeconds: number): MismatchSummary & { pausedForMs: number }
  /** A route's most recent mismatches, newest first, and how many were recorded since start. */
  recent (route: string, limit: number): { recorded: number; samples: MismatchSample[] }
}

/**
 * A recorder whose cells feed `metrics` (every series whose labels are known in advance exists
 * from the start, at 0) and, unless `stats` is null, the rolling windows.
 */
export function createRecorder (metrics: Metrics, stats: StatsRegistry | null): Recorder & ShadowReadings & ReadingsSink {
  const logs = new Map<string, MismatchLog>()
  const cellsOf = (name: string): RouteMetrics => {
    let bound = metrics.routes.get(name)
    if (bound === undefined) {
      const log = new MismatchLog()
      logs.set(name, log)
      bound = createRouteMetrics(metrics, name, log)
      metrics.routes.set(name, bound)
    }
    return bound
  }
  const logOf = (name: string): MismatchLog => {
    cellsOf(name)
    return logs.get(name) as MismatchLog
  }
  return {
    cells: cellsOf,
    window (route, version) {
      if (stats === null) return { add () {} }
      return stats.get(route, version)
    },
    comparisons: logOf,
    route (name, versions, hasShadow) {
      const bound = cellsOf(name)
      if (stats !== null) {
        // A version keeps its window when it loses its upstream, for the requests still in it.
        for (const version of versions) bound.versions[version].window = stats.get(name, version)
        if (hasShadow) bound.shadowVersion.window = stats.get(name, 'shadow')
      }
      return bound
    },
    summary (route, windowSeconds) {
      const cells = cellsOf(route)
      return { ...logOf(route).summary(windowSeconds), pausedForMs: Math.max(0, Math.ceil(cells.shadowPausedUntil - performance.now())) }
    },
    recent (route, limit) {
      const log = logOf(route)
      return { recorded: log.recorded, samples: log.recent(limit) }
    },
  }
}

/** Status codes whose weir_requests_total series exist at 0 from a route's first table: the server errors weir sends or relays most. */
const ZERO_CODES = ['500', '502', '503', '504'] as const

function createRouteMetrics (metrics: Metrics, route: string, mismatchLog: MismatchLog): RouteMetrics {
  const versions = {} as Record<Version, VersionMetrics>
  for (const version of VERSIONS) {
    versions[version] = new VersionMetrics()
    for (const reason of DECISION_REASONS) metrics.routingDecisions.inc({ route, version, reason }, 0)
    // The server-error codes exist from the start, so an error-ratio query over them
    // (sum(rate(…{code=~"5.."}[30s])) / sum(rate(…[30s]))) answers 0 for a healthy version
    // instead of no data, which a metric check would read as "hold".
    for (const code of ZERO_CODES) metrics.requests.inc({ route, version, code }, 0)
  }
  for (const version of [...VERSIONS, 'shadow']) {
    for (const reason of UPSTREAM_FAILURE_REASONS) metrics.upstreamErrors.inc({ route, version, reason }, 0)
  }
  for (const version of VERSIONS) {
    for (const result of RETRY_RESULTS) metrics.upstreamRetries.inc({ route, version, result }, 0)
  }
  for (const outcome of SHADOW_OUTCOMES) metrics.shadowRequests.inc({ route, outcome }, 0)
  for (const kind of MISMATCH_KINDS) metrics.shadowMismatches.inc({ route, kind }, 0)
  return { versions, shadow: counters(SHADOW_OUTCOMES), mismatches: counters(MISMATCH_KINDS), shadowVersion: new VersionMetrics(), mismatchLog, shadowPausedUntil: 0 }
}
