// Per-route metric cells for the hot path. prom-client's `labels(...)` children still hash
// their labels on every inc, so the data path bumps plain fields and typed arrays instead, and
// each metric flushes or reads them when /metrics is scraped.

import { VERSIONS, type Version } from '../config/rules.ts'
import type { DecisionReason } from '../routing/pick-version.ts'
import type { Metrics } from './registry.ts'
import type { RollingStats, StatsRegistry } from './window.ts'

/** A counter cell the data path bumps; `pending` moves into prom-client at scrape time. */
export class CounterCell {
  pending = 0
  inc (): void {
    this.pending++
  }
}

const REASONS: readonly DecisionReason[] = ['override', 'user', 'cookie', 'random']

/** Upper bounds of weir_request_duration_seconds' buckets, in ms: sub-millisecond to 10 s. */
export const DURATION_BUCKETS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const
// The hot path compares milliseconds (no division per request); a typed array keeps the loads monomorphic.
const BOUNDS_MS = Float64Array.from(DURATION_BUCKETS_MS)
const BOUND_COUNT = BOUNDS_MS.length

/** Node sends statuses 100–999: the response counts are indexed by status, no string or Map per request. */
export const STATUS_SLOTS = 1000
/** The code counted for a response the client closed before it finished (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499

export const SHADOW_OUTCOMES = ['ok', 'error', 'dropped', 'skipped'] as const
export type ShadowOutcome = typeof SHADOW_OUTCOMES[number]
export const MISMATCH_KINDS = ['status', 'headers', 'body'] as const
export type MismatchKind = typeof MISMATCH_KINDS[number]

/** The cells of one route × version. */
export class VersionMetrics {
  readonly decisions: Readonly<Record<DecisionReason, CounterCell>>
  /** Responses not yet flushed into weir_requests_total, indexed by the status sent. */
  readonly responses = new Float64Array(STATUS_SLOTS)
  /**
   * weir_request_duration_seconds since start, read (never reset) at scrape: a count per bucket
   * of DURATION_BUCKETS_MS (not cumulative) and one more for slower than the last bound.
   */
  readonly durationCounts = new Float64Array(BOUND_COUNT + 1)
  durationSumMs = 0
  /** This version's rolling stats (window.ts); null until the version has an upstream in a table. */
  window: RollingStats | null = null

  constructor () {
    const decisions = {} as Record<DecisionReason, CounterCell>
    for (const reason of REASONS) decisions[reason] = new CounterCell()
    this.decisions = decisions
  }
}

export interface RouteMetrics {
  readonly versions: Readonly<Record<Version, VersionMetrics>>
  /** weir_shadow_requests_total by outcome. */
  readonly shadow: Readonly<Record<ShadowOutcome, CounterCell>>
  /** weir_shadow_mismatches_total by kind. */
  readonly mismatches: Readonly<Record<MismatchKind, CounterCell>>
  /**
   * The shadow's latency (weir_request_duration_seconds{version="shadow"}) and rolling stats
   * (bound while the route has a shadow upstream). Its `responses` stay unused: shadow answers
   * never reach a client, so they are not in weir_requests_total.
   */
  readonly shadowVersion: VersionMetrics
}

/**
 * The cells of one route, created once per route name and reused across reloads and table
 * rebuilds (so nothing leaks and counts never go back). Every series whose labels are known in
 * advance exists from the start, at 0. `versions` are those with an upstream in the table being
 * built: each gets its RollingStats from `stats` (the same instance every time; a version keeps
 * its stats when it loses its upstream, for the requests still in its window). Cheap and
 * idempotent: the route table is rebuilt on every weight change.
 */
export function bindRouteMetrics (
  metrics: Metrics, route: string, versions: readonly Version[], hasShadow: boolean, stats: StatsRegistry | null,
): RouteMetrics {
  let bound = metrics.routes.get(route)
  if (bound === undefined) {
    bound = createRouteMetrics(metrics, route)
    metrics.routes.set(route, bound)
  }
  if (stats !== null) {
    for (const version of versions) bound.versions[version].window = stats.get(route, version)
    if (hasShadow) bound.shadowVersion.window = stats.get(route, 'shadow')
  }
  return bound
}

function createRouteMetrics (metrics: Metrics, route: string): RouteMetrics {
  const versions = {} as Record<Version, VersionMetrics>
  for (const version of VERSIONS) {
    versions[version] = new VersionMetrics()
    for (const reason of REASONS) metrics.routingDecisions.inc({ route, version, reason }, 0)
  }
  const shadow = {} as Record<ShadowOutcome, CounterCell>
  for (const outcome of SHADOW_OUTCOMES) {
    shadow[outcome] = new CounterCell()
    metrics.shadowRequests.inc({ route, outcome }, 0)
  }
  const mismatches = {} as Record<MismatchKind, CounterCell>
  for (const kind of MISMATCH_KINDS) {
    mismatches[kind] = new CounterCell()
    metrics.shadowMismatches.inc({ route, kind }, 0)
  }
  return { versions, shadow, mismatches, shadowVersion: new VersionMetrics() }
}

/**
 * Counts one response in weir_requests_total (by the status sent, or 499) and
 * weir_request_duration_seconds. Hot: two typed-array increments and a scan of 14 bounds.
 */
export function countResponse (cells: VersionMetrics, status: number, latencyMs: number): void {
  const responses = cells.responses
  responses[status] = (responses[status] as number) + 1
  countDuration(cells, latencyMs)
}

/** Counts one latency in weir_request_duration_seconds (without a response count: the shadow's). */
export function countDuration (cells: VersionMetrics, latencyMs: number): void {
  // Linear, not binary, search: most requests stop within the first few bounds.
  let bucket = 0
  while (bucket < BOUND_COUNT && latencyMs > (BOUNDS_MS[bucket] as number)) bucket++
  const counts = cells.durationCounts
  counts[bucket] = (counts[bucket] as number) + 1
  cells.durationSumMs += latencyMs
}

/** Moves pending decision counts into prom-client (the counter's collect hook). */
export function flushDecisions (metrics: Metrics): void {
  for (const [route, { versions }] of metrics.routes) {
    for (const version of VERSIONS) {
      const decisions = versions[version].decisions
      for (const reason of REASONS) {
        const cell = decisions[reason]
        if (cell.pending > 0) {
          metrics.routingDecisions.inc({ route, version, reason }, cell.pending)
          cell.pending = 0
        }
      }
    }
  }
}

/** Moves pending response counts into weir_requests_total (the counter's collect hook). */
export function flushResponses (metrics: Metrics): void {
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

/** Moves pending shadow counts into prom-client (the shadow counters' collect hook). */
export function flushShadow (metrics: Metrics): void {
  for (const [route, { shadow, mismatches }] of metrics.routes) {
    for (const outcome of SHADOW_OUTCOMES) {
      const cell = shadow[outcome]
      if (cell.pending > 0) {
        metrics.shadowRequests.inc({ route, outcome }, cell.pending)
        cell.pending = 0
      }
    }
    for (const kind of MISMATCH_KINDS) {
      const cell = mismatches[kind]
      if (cell.pending > 0) {
        metrics.shadowMismatches.inc({ route, kind }, cell.pending)
        cell.pending = 0
      }
    }
  }
}
