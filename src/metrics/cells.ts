// The hot-path cells of one route: plain fields and typed arrays the data path bumps per request
// (prom-client's `labels(...)` children hash their labels on every inc). The metrics registry
// moves or reads them when /metrics is scraped; the rolling windows and the mismatch log are read
// by the stats endpoint and the controller.

import type { MismatchSample } from '../shadow/mismatch-log.ts'
import {
  DECISION_REASONS, RETRY_RESULTS, UPSTREAM_FAILURE_REASONS, type DecisionReason, type MismatchKind, type RetryResult, type ShadowOutcome,
  type UpstreamFailureReason, type Version,
} from '../vocabulary.ts'

/** Where a version's finished requests go: its rolling stats, or a worker's buffer of them (readings.ts). */
export interface WindowRecording {
  record (latencyMs: number, isError: boolean): void
}

/** Where a route's shadow comparisons go: its mismatch log, or a worker's buffer of them (readings.ts). */
export interface MismatchRecording {
  record (sample: MismatchSample | null): void
}

/** A counter cell the data path bumps; `pending` moves into prom-client at scrape time. */
export class CounterCell {
  pending = 0
  inc (): void {
    this.pending++
  }
}

/** Upper bounds of weir_request_duration_seconds' buckets, in ms: sub-millisecond to 10 s. */
export const DURATION_BUCKETS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const
// The hot path compares milliseconds (no division per request); a typed array keeps the loads monomorphic.
const BOUNDS_MS = Float64Array.from(DURATION_BUCKETS_MS)
const BOUND_COUNT = BOUNDS_MS.length

/** Node sends statuses 100–999: the response counts are indexed by status, no string or Map per request. */
export const STATUS_SLOTS = 1000
/** The code counted for a response the client closed before it finished (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499

/** A CounterCell per key, every key present from the start. */
export function counters<K extends string> (keys: readonly K[]): Record<K, CounterCell> {
  const out = {} as Record<K, CounterCell>
  for (const key of keys) out[key] = new CounterCell()
  return out
}

/** The cells of one route × version. */
export class VersionMetrics {
  readonly decisions: Readonly<Record<DecisionReason, CounterCell>> = counters(DECISION_REASONS)
  /** Failed upstream attempts not yet flushed into weir_upstream_errors_total, by reason. */
  readonly upstreamErrors: Readonly<Record<UpstreamFailureReason, CounterCell>> = counters(UPSTREAM_FAILURE_REASONS)
  /** Retries on another host not yet flushed into weir_upstream_retries_total, by result. */
  readonly retries: Readonly<Record<RetryResult, CounterCell>> = counters(RETRY_RESULTS)
  /** Responses not yet flushed into weir_requests_total, indexed by the status sent. */
  readonly responses = new Float64Array(STATUS_SLOTS)
  /**
   * weir_request_duration_seconds since start, read (never reset) at scrape: a count per bucket
   * of DURATION_BUCKETS_MS (not cumulative) and one more for slower than the last bound.
   */
  readonly durationCounts = new Float64Array(BOUND_COUNT + 1)
  durationSumMs = 0
  /** This version's rolling stats (rolling-stats.ts); null until the version has an upstream in a table. */
  window: WindowRecording | null = null
}

export interface RouteMetrics {
  readonly versions: Readonly<Record<Version, VersionMetrics>>
  /** weir_shadow_requests_total by outcome. */
  readonly shadow: Readonly<Record<ShadowOutcome, CounterCell>>
  /** weir_shadow_mismatches_total by kind. */
  readonly mismatches: Readonly<Record<MismatchKind, CounterCell>>
  /**
   * The shadow's latency (weir_request_duration_seconds{version="shadow"}), its failed attempts
   * and rolling stats (bound while the route has a shadow upstream). Its `responses` and
   * `decisions` stay unused: shadow answers never reach a client.
   */
  readonly shadowVersion: VersionMetrics
  /** What the shadow's comparisons found: counts per second and recent samples. */
  readonly mismatchLog: MismatchRecording
  /** performance.now() until which shadow copies are paused (0: they flow); for the stats endpoint. */
  shadowPausedUntil: number
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
