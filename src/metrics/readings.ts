// What a worker process measured, shipped to the primary (docs/workers.md). A worker records into
// the same cells as the single process (cells.ts), but its rolling windows and mismatch log are
// buffers: every 100 ms (and whenever the primary asks, before a scrape or a stats read) the
// worker takes what its cells hold since the last take, zeroes them, and sends the readings. The
// primary adds them into its own cells, rolling stats and mismatch logs, which it reads exactly as
// the single process reads its own. So counters only ever grow in the primary: a worker that dies
// loses at most the readings it had not shipped, and never makes a counter go back.

import type { MismatchSample } from '../shadow/mismatch-log.ts'
import {
  DECISION_REASONS, MISMATCH_KINDS, RETRY_RESULTS, SHADOW_OUTCOMES, UPSTREAM_FAILURE_REASONS, VERSIONS, type MismatchKind, type Version,
} from '../vocabulary.ts'
import {
  counters, STATUS_SLOTS, VersionMetrics, type CounterCell, type MismatchRecording, type RouteMetrics, type WindowRecording,
} from './cells.ts'
import { BUCKET_COUNT, bucketOf } from './rolling-stats.ts'

/** Requests of one window since the last take: a sparse latency histogram and the error run at its end. */
export interface WindowDelta {
  readonly requests: number
  readonly errors: number
  /** Errors since the last success in this delta (all of `errors` when nothing succeeded). */
  readonly trailingErrors: number
  /** `[bucket, count, bucket, count, ...]` (rolling-stats.ts buckets). */
  readonly buckets: readonly number[]
}

/** Comparisons of one route's shadow since the last take, with up to MISMATCH_SAMPLE_SIZE of its mismatches. */
export interface ComparisonDelta {
  readonly compared: number
  readonly mismatches: number
  readonly byKind: Readonly<Record<MismatchKind, number>>
  /** Oldest first. */
  readonly samples: readonly MismatchSample[]
}

export interface VersionReadings {
  /** By DECISION_REASONS order. */
  readonly decisions: readonly number[]
  /** By UPSTREAM_FAILURE_REASONS order. */
  readonly upstreamErrors: readonly number[]
  /** By RETRY_RESULTS order. */
  readonly retries: readonly number[]
  /** `[status, count, status, count, ...]`. */
  readonly responses: readonly number[]
  /** weir_request_duration_seconds buckets (not cumulative) and the sum, since the last take. */
  readonly durationCounts: readonly number[]
  readonly durationSumMs: number
  readonly window: WindowDelta | null
}

export interface RouteReadings {
  readonly route: string
  readonly versions: Readonly<Partial<Record<Version, VersionReadings>>>
  readonly shadowVersion: VersionReadings | null
  /** By SHADOW_OUTCOMES order. */
  readonly shadow: readonly number[]
  /** By MISMATCH_KINDS order. */
  readonly mismatches: readonly number[]
  readonly comparisons: ComparisonDelta | null
  /** How much longer this worker's shadow copies stay paused (ms, 0 when they flow). */
  readonly shadowPausedForMs: number
}

/** A worker's rolling window: what it recorded since the last take. */
export class WindowBuffer implements WindowRecording {
  private readonly counts = new Uint32Array(BUCKET_COUNT)
  private readonly touched = new Uint16Array(BUCKET_COUNT)
  private touchedCount = 0
  private requests = 0
  private errors = 0
  private trailingErrors = 0

  record (latencyMs: number, isError: boolean): void {
    const bucket = bucketOf(latencyMs)
    const count = this.counts[bucket] as number
    this.counts[bucket] = count + 1
    if (count === 0) this.touched[this.touchedCount++] = bucket
    this.requests++
    if (isError) {
      this.errors++
      this.trailingErrors++
    } else {
      this.trailingErrors = 0
    }
  }

  /** What was recorded since the last take (null: nothing), and empties the buffer. */
  take (): WindowDelta | null {
    if (this.requests === 0) return null
    const buckets: number[] = []
    for (let j = 0; j < this.touchedCount; j++) {
      const bucket = this.touched[j] as number
      buckets.push(bucket, this.counts[bucket] as number)
      this.counts[bucket] = 0
    }
    const delta = { requests: this.requests, errors: this.errors, trailingErrors: this.trailingErrors, buckets }
    this.touchedCount = 0
    this.requests = 0
    this.errors = 0
    this.trailingErrors = 0
    return delta
  }
}

/** A worker's mismatch log: comparisons since the last take, and the newest samples. */
export class ComparisonBuffer implements MismatchRecording {
  private compared = 0
  private mismatches = 0
  private readonly byKind: Record<MismatchKind, number> = { status: 0, headers: 0, body: 0 }
  private samples: MismatchSample[] = []
  private readonly keep: number

  constructor (keep: number) {
    this.keep = keep
  }

  record (sample: MismatchSample | null): void {
    this.compared++
    if (sample === null) return
    this.mismatches++
    for (const kind of sample.kinds) this.byKind[kind]++
    if (this.samples.length === this.keep) this.samples.shift()
    this.samples.push(sample)
  }

  take (): ComparisonDelta | null {
    if (this.compared === 0) return null
    const delta = { compared: this.compared, mismatches: this.mismatches, byKind: { ...this.byKind }, samples: this.samples }
    this.compared = 0
    this.mismatches = 0
    for (const kind of MISMATCH_KINDS) this.byKind[kind] = 0
    this.samples = []
    return delta
  }
}

/**
 * A worker's recorder (a `Recorder`, recorder.ts, which imports this file's types): cells like
 * the single process's, with buffers for windows and mismatch logs.
 */
export interface ShippingRecorder {
  route (name: string, versions: readonly Version[], hasShadow: boolean): RouteMetrics
  /** Readings of every route with something recorded since the last take; zeroes what it read. */
  take (): RouteReadings[]
}

export function createShippingRecorder (mismatchSamples: number): ShippingRecorder {
  const routes = new Map<string, RouteMetrics>()
  const windows = new Map<VersionMetrics, WindowBuffer>()
  const comparisons = new Map<string, ComparisonBuffer>()
  const bindWindow = (cells: VersionMetrics): void => {
    let buffer = windows.get(cells)
    if (buffer === undefined) {
      buffer = new WindowBuffer()
      windows.set(cells, buffer)
    }
    cells.window = buffer
  }
  return {
    route (name, versions, hasShadow) {
      let cells = routes.get(name)
      if (cells === undefined) {
        const log = new ComparisonBuffer(mismatchSamples)
        comparisons.set(name, log)
        cells = {
          versions: Object.fromEntries(VERSIONS.map((v) => [v, new VersionMetrics()])) as Record<Version, VersionMetrics>,
          shadow: counters(SHADOW_OUTCOMES),
          mismatches: counters(MISMATCH_KINDS),
          shadowVersion: new VersionMetrics(),
          mismatchLog: log,
          shadowPausedUntil: 0,
        }
        routes.set(name, cells)
      }
      for (const version of versions) bindWindow(cells.versions[version])
      if (hasShadow) bindWindow(cells.shadowVersion)
      return cells
    },
    take () {
      const out: RouteReadings[] = []
      const now = performance.now()
      for (const [route, cells] of routes) {
        let any = false
        const versions: Partial<Record<Version, VersionReadings>> = {}
        for (const version of VERSIONS) {
          const readings = takeVersion(cells.versions[version], windows.get(cells.versions[version]))
          if (readings !== null) {
            versions[version] = readings
            any = true
          }
        }
        const shadowVersion = takeVersion(cells.shadowVersion, windows.get(cells.shadowVersion))
        const shadow = takeCounters(cells.shadow, SHADOW_OUTCOMES)
        const mismatches = takeCounters(cells.mismatches, MISMATCH_KINDS)
        const compared = (comparisons.get(route) as ComparisonBuffer).take()
        const shadowPausedForMs = Math.max(0, cells.shadowPausedUntil - now)
        if (shadowVersion !== null || shadow !== null || mismatches !== null || compared !== null || shadowPausedForMs > 0) any = true
        if (!any) continue
        out.push({
          route,
          versions,
          shadowVersion,
          shadow: shadow ?? [],
          mismatches: mismatches ?? [],
          comparisons: compared,
          shadowPausedForMs,
        })
      }
      return out
    },
  }
}

/** The cells' counts since the last take (zeroed), or null when there are none. */
function takeVersion (cells: VersionMetrics, window: WindowBuffer | undefined): VersionReadings | null {
  const decisions = takeCounters(cells.decisions, DECISION_REASONS)
  const upstreamErrors = takeCounters(cells.upstreamErrors, UPSTREAM_FAILURE_REASONS)
  const retries = takeCounters(cells.retries, RETRY_RESULTS)
  const responses: number[] = []
  const slots = cells.responses
  for (let status = 0; status < STATUS_SLOTS; status++) {
    const count = slots[status] as number
    if (count > 0) {
      responses.push(status, count)
      slots[status] = 0
    }
  }
  let timed = 0
  for (const count of cells.durationCounts) timed += count
  const windowDelta = window?.take() ?? null
  if (decisions === null && upstreamErrors === null && retries === null && responses.length === 0 && timed === 0 && windowDelta === null) return null
  const durationCounts = Array.from(cells.durationCounts)
  cells.durationCounts.fill(0)
  const durationSumMs = cells.durationSumMs
  cells.durationSumMs = 0
  return {
    decisions: decisions ?? [],
    upstreamErrors: upstreamErrors ?? [],
    retries: retries ?? [],
    responses,
    durationCounts: timed === 0 ? [] : durationCounts,
    durationSumMs,
    window: windowDelta,
  }
}

function takeCounters<K extends string> (cells: Readonly<Record<K, CounterCell>>, keys: readonly K[]): number[] | null {
  let any = false
  const out = keys.map((key) => {
    const cell = cells[key]
    const pending = cell.pending
    if (pending > 0) any = true
    cell.pending = 0
    return pending
  })
  return any ? out : null
}

/** Where the primary adds a worker's readings: its own cells, rolling stats and mismatch logs. */
export interface ReadingsSink {
  /** The primary's cells of a route (created at 0 when the route is new to it). */
  cells (route: string): RouteMetrics
  /** The primary's rolling window of a route × version (shadow included). */
  window (route: string, version: Version | 'shadow'): { add (delta: WindowDelta): void }
  /** The primary's mismatch log of a route. */
  comparisons (route: string): { add (delta: ComparisonDelta): void }
}

/** Adds readings into the primary's cells: counters grow, windows and mismatch logs take the deltas in the current second. */
export function addReadings (sink: ReadingsSink, readings: readonly RouteReadings[]): number {
  let responses = 0
  for (const route of readings) {
    const cells = sink.cells(route.route)
    for (const version of VERSIONS) {
      const got = route.versions[version]
      if (got !== undefined) responses += addVersion(cells.versions[version], got, () => sink.window(route.route, version))
    }
    if (route.shadowVersion !== null) addVersion(cells.shadowVersion, route.shadowVersion, () => sink.window(route.route, 'shadow'))
    addCounters(cells.shadow, SHADOW_OUTCOMES, route.shadow)
    addCounters(cells.mismatches, MISMATCH_KINDS, route.mismatches)
    if (route.comparisons !== null) sink.comparisons(route.route).add(route.comparisons)
    if (route.shadowPausedForMs > 0) cells.shadowPausedUntil = Math.max(cells.shadowPausedUntil, performance.now() + route.shadowPausedForMs)
  }
  return responses
}

/** Returns the responses added (the worker's share of weir_requests_total). */
function addVersion (cells: VersionMetrics, got: VersionReadings, window: () => { add (delta: WindowDelta): void }): number {
  addCounters(cells.decisions, DECISION_REASONS, got.decisions)
  addCounters(cells.upstreamErrors, UPSTREAM_FAILURE_REASONS, got.upstreamErrors)
  addCounters(cells.retries, RETRY_RESULTS, got.retries)
  let responses = 0
  for (let i = 0; i + 1 < got.responses.length; i += 2) {
    const status = got.responses[i] as number
    const count = got.responses[i + 1] as number
    if (Number.isInteger(status) && status >= 0 && status < STATUS_SLOTS) {
      cells.responses[status] = (cells.responses[status] as number) + count
      responses += count
    }
  }
  for (let i = 0; i < got.durationCounts.length && i < cells.durationCounts.length; i++) {
    cells.durationCounts[i] = (cells.durationCounts[i] as number) + (got.durationCounts[i] as number)
  }
  cells.durationSumMs += got.durationSumMs
  if (got.window !== null) window().add(got.window)
  return responses
}

function addCounters<K extends string> (cells: Readonly<Record<K, CounterCell>>, keys: readonly K[], counts: readonly number[]): void {
  keys.forEach((key, i) => {
    const count = counts[i]
    if (count !== undefined && count > 0) cells[key].pending += count
  })
}
