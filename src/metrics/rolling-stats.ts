// Rolling per-route × version request statistics over the last 1–600 s: requests, errors and
// p50/p90/p99 latency (≤ 2 % relative error) for the rollout controller and the admin stats
// endpoint. The data path records (sync, O(1), allocation-free once warm); readers take snapshots.

import { MAX_WINDOW_SECONDS, type UpstreamName } from '../vocabulary.ts'

// ---- latency buckets ----------------------------------------------------------------------------
//
// Log buckets, 18 per octave: bucket i ≥ 1 holds [2^(-10 + (i-1)/18), 2^(-10 + i/18)) ms, a ratio
// r = 2^(1/18) ≈ 1.0393 between bounds, over 26 octaves (2^-10 ms ≈ 1 µs to 2^16 ms ≈ 65.5 s).
// A bucket reads back as the harmonic mean of its bounds, 2·lo·hi / (lo + hi): the point whose
// worst relative error towards either bound is the same, (r - 1) / (r + 1) = 1.93 % < 2 %. The
// quantile of a histogram is the read-back value of the bucket holding the exact nearest-rank
// sample, so quantiles carry the same bound. Pure log spacing needs 469 buckets for it where
// HDR-style linear sub-buckets need 832 (32 per octave), and fewer buckets mean fewer stored
// (second, bucket) cells. Octaves start at powers of two so the index comes from the float's
// exponent and mantissa bits, not Math.log2 (see bucketOf).
// Bucket 0 holds [0, 2^-10 ms), NaN and negative latencies (clamped to 0), and reads back as 0
// (absolute error < 1 µs); latencies ≥ 65.5 s land in the last bucket and read back as ≈ 64 s.

const MIN_EXPONENT = -10
const OCTAVES = 26
const PER_OCTAVE = 18
const MIN_MS = 2 ** MIN_EXPONENT
export const BUCKET_COUNT = 1 + PER_OCTAVE * OCTAVES
/** Worst relative error of a read-back latency from 2^-10 ms to 2^16 ms: (r - 1) / (r + 1). */
export const MAX_RELATIVE_ERROR = (2 ** (1 / PER_OCTAVE) - 1) / (2 ** (1 / PER_OCTAVE) + 1)

// LOWER[i] is bucket i's lower bound; LOWER[BUCKET_COUNT] = ∞ so the last bucket takes all above.
const LOWER = new Float64Array(BUCKET_COUNT + 1)
const VALUE = new Float64Array(BUCKET_COUNT)
for (let i = 1; i < BUCKET_COUNT; i++) {
  const lo = 2 ** (MIN_EXPONENT + (i - 1) / PER_OCTAVE)
  const hi = 2 ** (MIN_EXPONENT + i / PER_OCTAVE)
  LOWER[i] = lo
  VALUE[i] = (2 * lo * hi) / (lo + hi)
}
LOWER[BUCKET_COUNT] = Infinity

// The float64 bits of a latency, through a shared view: the high word holds the exponent and the
// top 20 mantissa bits. Which word is high depends on the platform's byte order.
const bits = new Float64Array(1)
const words = new Uint32Array(bits.buffer)
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0
// STEP_OF[m]: the log step within an octave (0–17) of mantissa 1 + m/256. A mantissa cell is
// < 0.4 % wide and a bucket 3.9 %, so a cell straddles at most one bound: one comparison fixes it.
const MANTISSA_BITS = 8
const STEP_OF = new Uint8Array(1 << MANTISSA_BITS)
for (let m = 0; m < STEP_OF.length; m++) STEP_OF[m] = Math.floor(Math.log2(1 + m / STEP_OF.length) * PER_OCTAVE)

/** The bucket of a latency in milliseconds. */
export function bucketOf (latencyMs: number): number {
  // `!(x >= MIN)` is also true for NaN: NaN, negative and sub-µs latencies share bucket 0.
  if (!(latencyMs >= MIN_MS)) return 0
  // Exponent and mantissa bits instead of Math.log2: half the cost (bench/micro/rolling-stats.ts).
  bits[0] = latencyMs
  const high = words[HIGH_WORD] as number
  const octave = (high >>> 20) - 1023 - MIN_EXPONENT
  if (octave >= OCTAVES) return BUCKET_COUNT - 1
  const bucket = 1 + octave * PER_OCTAVE + (STEP_OF[(high >>> (20 - MANTISSA_BITS)) & (STEP_OF.length - 1)] as number)
  // The table has the last word, so a value is always in [LOWER[i], LOWER[i + 1]) and the bound is exact.
  return latencyMs >= (LOWER[bucket + 1] as number) ? bucket + 1 : bucket
}

/** The latency in milliseconds a bucket reads back as. */
export function bucketValue (bucket: number): number {
  return VALUE[bucket] as number
}

/** The lower bound in milliseconds of a bucket (0 for the first). */
export function bucketLowerBound (bucket: number): number {
  return LOWER[bucket] as number
}

/** Totals and nearest-rank quantiles of a histogram (a merged one: several replicas' windows). */
export function windowStatsOf (h: LatencyHistogram): WindowStats {
  if (h.requests === 0) return { requests: 0, errors: 0, errorRate: 0, p50: null, p90: null, p99: null }
  const at = (percent: number): number => {
    const rank = Math.ceil((h.requests * percent) / 100)
    let seen = 0
    for (let bucket = 0; bucket < h.counts.length; bucket++) {
      seen += h.counts[bucket] as number
      if (seen >= rank) return VALUE[bucket] as number
    }
    return VALUE[h.counts.length - 1] as number
  }
  return { requests: h.requests, errors: h.errors, errorRate: h.errors / h.requests, p50: at(50), p90: at(90), p99: at(99) }
}

/** Significant digits of the latencies the stats API shows: beyond the quantiles' 2 % they are noise. */
const SHOWN_DIGITS = 3

/**
 * A window's stats as an operator reads them (GET .../stats): latencies to 3 significant digits
 * (0.487, 12.3, 1520 ms). The controller and `?histograms=true` keep the exact values.
 */
export function shownStats (stats: WindowStats): WindowStats {
  const round = (ms: number | null): number | null => (ms === null ? null : Number(ms.toPrecision(SHOWN_DIGITS)))
  return { ...stats, p50: round(stats.p50), p90: round(stats.p90), p99: round(stats.p99) }
}

/** One interval of GET .../stats?series=N as shown (docs/admin-api.md). */
export interface SeriesPoint {
  /** Unix seconds the interval ends at. */
  t: number
  seconds: number
  requests: number
  /** requests / seconds. */
  rps: number
  errors: number
  errorRate: number
  p99: number | null
}

/** A series as an operator reads it: rates and covered seconds to the millisecond, p99 as shownStats. */
export function shownSeries (points: readonly IntervalStats[]): SeriesPoint[] {
  const milli = (x: number): number => Math.round(x * 1000) / 1000
  return points.map((p) => ({
    t: p.end,
    seconds: milli(p.seconds),
    requests: p.requests,
    rps: milli(p.requests / p.seconds),
    errors: p.errors,
    errorRate: p.errorRate,
    p99: shownStats(p).p99,
  }))
}

// ---- rolling window -----------------------------------------------------------------------------

/** Requests, errors and the latency histogram of a window: `counts[bucket]`, buckets in increasing latency. */
export interface LatencyHistogram {
  requests: number
  errors: number
  counts: Float64Array
}

export interface WindowStats {
  requests: number
  errors: number
  /** errors / requests; 0 when there were no requests. */
  errorRate: number
  /** Latency quantiles in ms (nearest rank, ≤ 2 % relative error); null when there were no requests. */
  p50: number | null
  p90: number | null
  p99: number | null
}

/** One interval of `RollingStats.series`. */
export interface IntervalStats extends WindowStats {
  /** The clock second the interval ends at (exclusive): unix seconds with a wall clock. */
  end: number
  /** Seconds of the window it covers: the interval's length, less at the window's start and for the current one. */
  seconds: number
}

/** Milliseconds from any fixed origin; only differences and whole seconds matter. */
export type Clock = () => number

export interface RollingStatsOptions {
  /** Default: `performance.now()`, monotonic, so wall-clock steps cannot reorder seconds. */
  now?: Clock
}

const defaultClock: Clock = () => performance.now()

// Sealed seconds kept. With the current (partial) second that makes the 601 slots a 600 s window needs.
const SLOTS = MAX_WINDOW_SECONDS
// Minute totals kept. A whole minute m inside a window starts no earlier than 599 s before the
// current second, so minute m + 10, which would reuse its slot, has no sealed second yet.
const MINUTES = MAX_WINDOW_SECONDS / 60
// Log words (uint16) per bucket of a sealed second: count · 512 + bucket for counts 1–127 (most
// buckets, most of the time); else a count field of 0 and the count in the next word, or for
// counts ≥ 65 535 the marker 0xffff and the count in two more words (low, high).
// 9 bits hold any bucket (< 512).
const BUCKET_BITS = 9
const BUCKET_MASK = (1 << BUCKET_BITS) - 1
const SHORT_COUNT_LIMIT = 1 << (16 - BUCKET_BITS)
const LONG_COUNT_MARKER = 0xffff
const INITIAL_LOG_WORDS = 2048

// Snapshots add histograms up here; one per process is enough since a snapshot runs to completion.
// Float64, not Uint32: 600 s of one bucket at > 7 M req/s would overflow 32 bits.
const scratch = new Float64Array(BUCKET_COUNT)

/**
 * Requests, errors and a latency histogram per clock second, for the last 600 seconds.
 *
 * Layout and memory. A dense `Uint32Array(601 × 469)` would take 1.1 MB per instance (564 KB
 * as Uint16, which also overflows at 65 536 requests per bucket and second) whether traffic
 * flows or not, for every route × version. Instead:
 *  - the current second is dense: counts `Uint32Array(469)` and the list of buckets it touched
 *    (`Uint16Array(469)`), 2.8 KB, so `record` is one increment;
 *  - when a second ends it is sealed sparsely: per bucket it used, one uint16 word (count < 128),
 *    two (< 65 535) or four, appended to a circular log. Seconds leave in the order they came,
 *    so the log is a FIFO and space is reclaimed from its tail;
 *  - per sealed second: its number, requests, errors, log start and length (24 B × 600 = 14 KB);
 *  - per clock minute, the last 10: dense totals (`Uint32Array(10 × 469)`, 19 KB, allocated with
 *    the first request), so a snapshot reads whole minutes densely and walks the log only for
 *    the seconds of its first, partial minute: at most 59 seconds whatever the window.
 * So memory follows traffic and latency spread (bench/micro/rolling-stats.ts, after 10 minutes):
 * never used 21 KB; 10 req/s 49 KB; log-normal latencies (σ = 1, ~200 buckets a second) at
 * 1 000 req/s 266 KB and at 20 000 req/s 381 KB. The ceiling, every bucket from 1 µs to 65 s
 * counting 128–65 534 in every second (≥ 60 000 req/s spread over 8 decades), is
 * 600 × 469 × 4 B = 1.1 MB of log. The log grows by 1.5× to its high-water mark and never
 * shrinks; growth (and the minute totals, once) is the only allocation in `record`, a bounded
 * number of times in an instance's life (14 from 4 KB to that ceiling). The price: sealing a
 * second costs O(buckets it used), once per second.
 *
 * The window of `snapshot(n)` is the current clock second (⌊now / 1000⌋, partial) and the n − 1
 * seconds before it: it covers between n − 1 and n seconds of time. A clock that goes backwards
 * keeps counting into the latest second seen.
 */
export class RollingStats {
  private readonly now: Clock

  // The current, partial second.
  private second: number
  private requests = 0
  private errors = 0
  private readonly counts = new Uint32Array(BUCKET_COUNT)
  private readonly touched = new Uint16Array(BUCKET_COUNT)
  private touchedCount = 0
  // Since creation, for the fast guard (never reset: it reads differences).
  private totalRequests = 0
  private totalErrors = 0
  private consecutiveErrors = 0

  // Sealed seconds, at slot second % SLOTS; -Infinity marks an empty slot.
  private readonly slotSecond = new Float64Array(SLOTS).fill(-Infinity)
  private readonly slotRequests = new Uint32Array(SLOTS)
  private readonly slotErrors = new Uint32Array(SLOTS)
  private readonly slotStart = new Uint32Array(SLOTS)
  private readonly slotLength = new Uint32Array(SLOTS)

  // The circular log: `used` words end just before `head`.
  private log = new Uint16Array(INITIAL_LOG_WORDS)
  private head = 0
  private used = 0

  // Totals of the sealed seconds of a clock minute, at slot minute % MINUTES. Null until a
  // second with requests is sealed: a version that never takes traffic does not pay for them.
  private minuteCounts: Uint32Array | null = null
  private readonly minuteOf = new Float64Array(MINUTES).fill(-Infinity)
  private readonly minuteRequests = new Float64Array(MINUTES)
  private readonly minuteErrors = new Float64Array(MINUTES)

  constructor (options: RollingStatsOptions = {}) {
    this.now = options.now ?? defaultClock
    this.second = Math.floor(this.now() / 1000)
  }

  /**
   * Counts one finished request. Latencies in ms; NaN and negative values count as 0.
   * Constant time: once a second it also seals the previous second (≤ 469 buckets) and empties
   * the seconds skipped since (≤ 599, or one reset after 10 idle minutes).
   */
  record (latencyMs: number, isError: boolean): void {
    const second = Math.floor(this.now() / 1000)
    if (second !== this.second) this.advance(second)
    const bucket = bucketOf(latencyMs)
    const count = this.counts[bucket] as number
    this.counts[bucket] = count + 1
    if (count === 0) this.touched[this.touchedCount++] = bucket
    this.requests++
    this.totalRequests++
    if (isError) {
      this.errors++
      this.totalErrors++
      this.consecutiveErrors++
    } else {
      this.consecutiveErrors = 0
    }
  }

  /**
   * Counts requests another process recorded (a worker's readings, readings.ts) in the current
   * second: the merged window is the sum of the workers' windows, up to the shipping delay.
   * The error run continues when every request of the delta failed, else restarts at its tail.
   */
  add (delta: { readonly requests: number; readonly errors: number; readonly trailingErrors: number; readonly buckets: readonly number[] }): void {
    if (!(delta.requests > 0)) return
    const second = Math.floor(this.now() / 1000)
    if (second !== this.second) this.advance(second)
    const buckets = delta.buckets
    for (let i = 0; i + 1 < buckets.length; i += 2) {
      const bucket = buckets[i] as number
      const added = buckets[i + 1] as number
      if (!Number.isInteger(bucket) || bucket < 0 || bucket >= BUCKET_COUNT || !(added > 0)) continue
      const count = this.counts[bucket] as number
      this.counts[bucket] = count + added
      if (count === 0) this.touched[this.touchedCount++] = bucket
    }
    this.requests += delta.requests
    this.errors += delta.errors
    this.totalRequests += delta.requests
    this.totalErrors += delta.errors
    this.consecutiveErrors = delta.errors === delta.requests ? this.consecutiveErrors + delta.errors : delta.trailingErrors
  }

  /** Totals and latency quantiles over the last `windowSeconds` (1–600) clock seconds. */
  snapshot (windowSeconds: number): WindowStats {
    const { requests, errors } = this.accumulate(windowSeconds)
    return statsOfScratch(requests, errors)
  }

  /**
   * The window of `snapshot(windowSeconds)` cut into intervals of `intervalSeconds` (1–600),
   * oldest first: interval k holds the clock seconds [k·i, k·i + i), so successive calls cut at
   * the same seconds. The first interval is clipped to the window's start; the last holds the
   * current second and is still counting. Their totals add up to the snapshot's. Walks every
   * second of the window (≤ 600 sealed seconds' log words): for readers, not the data path.
   */
  series (windowSeconds: number, intervalSeconds: number): IntervalStats[] {
    checkWindow(windowSeconds)
    checkWindow(intervalSeconds)
    const nowSeconds = this.now() / 1000
    const current = Math.max(Math.floor(nowSeconds), this.second)
    const first = current - windowSeconds + 1
    const out: IntervalStats[] = []
    for (let k = Math.floor(first / intervalSeconds); k * intervalSeconds <= current; k++) {
      const from = Math.max(k * intervalSeconds, first)
      const to = Math.min((k + 1) * intervalSeconds - 1, current)
      let requests = 0
      let errors = 0
      for (let s = from; s <= to; s++) {
        if (s === this.second) {
          requests += this.requests
          errors += this.errors
          this.addCurrentSecond()
          continue
        }
        const slot = s > this.second ? -1 : this.addLoggedSecond(s)
        if (slot === -1) continue
        requests += this.slotRequests[slot] as number
        errors += this.slotErrors[slot] as number
      }
      // The current second counts for the part of it gone (a clock that went back: a sliver).
      const seconds = to < current ? to - from + 1 : current - from + Math.min(1, Math.max(0.001, nowSeconds - current))
      out.push({ end: (k + 1) * intervalSeconds, seconds, ...statsOfScratch(requests, errors) })
    }
    return out
  }

  /** Adds the current (unsealed) second's histogram to the scratch. */
  private addCurrentSecond (): void {
    for (let j = 0; j < this.touchedCount; j++) {
      const bucket = this.touched[j] as number
      scratch[bucket] = (scratch[bucket] as number) + (this.counts[bucket] as number)
    }
  }

  /** Adds sealed second `s`'s histogram from the log to the scratch; its slot, or -1 when the log does not hold it. */
  private addLoggedSecond (s: number): number {
    const slot = slotOf(s, SLOTS)
    if (this.slotSecond[slot] !== s) return -1
    this.addLogWords(this.slotStart[slot] as number, this.slotLength[slot] as number)
    return slot
  }

  /**
   * Adds the window's histogram into `scratch` (which the caller must zero again) and returns
   * its totals.
   */
  private accumulate (windowSeconds: number): { requests: number; errors: number } {
    checkWindow(windowSeconds)
    // Read-only: time that passed since the last record is accounted for here, not stored.
    const current = Math.max(Math.floor(this.now() / 1000), this.second)
    const first = current - windowSeconds + 1
    let requests = 0
    let errors = 0
    if (this.second >= first) {
      requests = this.requests
      errors = this.errors
      this.addCurrentSecond()
    }
    const minuteCounts = this.minuteCounts
    // Nothing was ever sealed with requests in it: nothing but the current second to read.
    if (minuteCounts !== null) {
      // Sealed seconds are those before this.second. Whole minutes inside the window come from
      // the minute totals (a minute's totals hold only its sealed seconds); the seconds of the
      // partial minute the window starts in come from the log.
      const firstWholeMinute = Math.ceil(first / 60)
      const logEnd = Math.min(firstWholeMinute * 60, this.second)
      for (let s = first; s < logEnd; s++) {
        const slot = this.addLoggedSecond(s)
        if (slot === -1) continue
        requests += this.slotRequests[slot] as number
        errors += this.slotErrors[slot] as number
      }
      const lastMinute = Math.floor((this.second - 1) / 60)
      for (let minute = firstWholeMinute; minute <= lastMinute; minute++) {
        const slot = slotOf(minute, MINUTES)
        if (this.minuteOf[slot] !== minute || this.minuteRequests[slot] === 0) continue
        requests += this.minuteRequests[slot] as number
        errors += this.minuteErrors[slot] as number
        const base = slot * BUCKET_COUNT
        for (let bucket = 0; bucket < BUCKET_COUNT; bucket++) scratch[bucket] = (scratch[bucket] as number) + (minuteCounts[base + bucket] as number)
      }
    }
    return { requests, errors }
  }

  /**
   * The window's latency histogram (counts per bucket, see bucketValue) with its totals, for the
   * controller's rank tests. Allocates one array per call: for readers once per check, not the
   * data path.
   */
  histogram (windowSeconds: number): LatencyHistogram {
    const { requests, errors } = this.accumulate(windowSeconds)
    const counts = new Float64Array(BUCKET_COUNT)
    counts.set(scratch)
    scratch.fill(0)
    return { requests, errors, counts }
  }

  /** Requests and errors since this instance was created, and the errors since the last success: the fast guard's reading. */
  get totals (): { requests: number; errors: number; consecutiveErrors: number } {
    return { requests: this.totalRequests, errors: this.totalErrors, consecutiveErrors: this.consecutiveErrors }
  }

  /** Bytes of typed-array storage this instance holds now (the log grows with traffic, see above). */
  get byteLength (): number {
    return this.counts.byteLength + this.touched.byteLength + this.slotSecond.byteLength +
      this.slotRequests.byteLength + this.slotErrors.byteLength + this.slotStart.byteLength +
      this.slotLength.byteLength + this.log.byteLength + (this.minuteCounts?.byteLength ?? 0) +
      this.minuteOf.byteLength + this.minuteRequests.byteLength + this.minuteErrors.byteLength
  }

  /** Adds one sealed second's log words into the scratch histogram. */
  private addLogWords (start: number, length: number): void {
    const log = this.log
    const capacity = log.length
    let pos = start
    for (let n = length; n > 0; n--) {
      const word = log[pos] as number
      if (++pos === capacity) pos = 0
      const bucket = word & BUCKET_MASK
      let count = word >>> BUCKET_BITS
      if (count === 0) {
        count = log[pos] as number
        if (++pos === capacity) pos = 0
        n--
        if (count === LONG_COUNT_MARKER) {
          const low = log[pos] as number
          if (++pos === capacity) pos = 0
          const high = log[pos] as number
          if (++pos === capacity) pos = 0
          count = low + high * 0x10000
          n -= 2
        }
      }
      scratch[bucket] = (scratch[bucket] as number) + count
    }
  }

  /** Moves the current second to `second`: seals the old one and empties the seconds skipped. */
  private advance (second: number): void {
    if (second < this.second) return
    if (second - this.second >= SLOTS) {
      // Idle for a whole window: nothing recorded is visible any more; clear everything once.
      // (Minute totals are zeroed when their slot is next used.)
      this.clearCurrent()
      this.slotSecond.fill(-Infinity)
      this.slotLength.fill(0)
      this.minuteOf.fill(-Infinity)
      this.head = 0
      this.used = 0
      this.second = second
      return
    }
    this.seal()
    // Only the seconds skipped since the last record: at most SLOTS - 1 of them.
    for (let s = this.second + 1; s < second; s++) this.evict(slotOf(s, SLOTS))
    this.second = second
  }

  /** Writes the current second into its slot, the log (sparse) and its minute's totals, and empties it. */
  private seal (): void {
    const slot = slotOf(this.second, SLOTS)
    this.evict(slot)
    if (this.requests === 0) return
    const counts = this.counts
    const touched = this.touched
    let needed = 0
    for (let j = 0; j < this.touchedCount; j++) {
      const count = counts[touched[j] as number] as number
      needed += count < SHORT_COUNT_LIMIT ? 1 : count < LONG_COUNT_MARKER ? 2 : 4
    }
    if (this.log.length - this.used < needed) this.grow(this.used + needed)
    const minuteCounts = this.minuteCounts ?? (this.minuteCounts = new Uint32Array(MINUTES * BUCKET_COUNT))
    const minute = Math.floor(this.second / 60)
    const minuteSlot = slotOf(minute, MINUTES)
    const base = minuteSlot * BUCKET_COUNT
    if (this.minuteOf[minuteSlot] !== minute) {
      minuteCounts.fill(0, base, base + BUCKET_COUNT)
      this.minuteOf[minuteSlot] = minute
      this.minuteRequests[minuteSlot] = 0
      this.minuteErrors[minuteSlot] = 0
    }
    this.minuteRequests[minuteSlot] = (this.minuteRequests[minuteSlot] as number) + this.requests
    this.minuteErrors[minuteSlot] = (this.minuteErrors[minuteSlot] as number) + this.errors

    const log = this.log
    const capacity = log.length
    const start = this.head
    let pos = start
    for (let j = 0; j < this.touchedCount; j++) {
      const bucket = touched[j] as number
      const count = counts[bucket] as number
      counts[bucket] = 0
      minuteCounts[base + bucket] = (minuteCounts[base + bucket] as number) + count
      if (count < SHORT_COUNT_LIMIT) {
        log[pos] = (count << BUCKET_BITS) | bucket
        if (++pos === capacity) pos = 0
      } else {
        log[pos] = bucket
        if (++pos === capacity) pos = 0
        if (count < LONG_COUNT_MARKER) {
          log[pos] = count
          if (++pos === capacity) pos = 0
        } else {
          log[pos] = LONG_COUNT_MARKER
          if (++pos === capacity) pos = 0
          log[pos] = count & 0xffff
          if (++pos === capacity) pos = 0
          log[pos] = count >>> 16
          if (++pos === capacity) pos = 0
        }
      }
    }
    this.head = pos
    this.used += needed
    this.slotSecond[slot] = this.second
    this.slotRequests[slot] = this.requests
    this.slotErrors[slot] = this.errors
    this.slotStart[slot] = start
    this.slotLength[slot] = needed
    this.touchedCount = 0
    this.requests = 0
    this.errors = 0
  }

  /** Frees a slot's log words. Slots leave in time order, so theirs are always the oldest words. */
  private evict (slot: number): void {
    this.used -= this.slotLength[slot] as number
    this.slotLength[slot] = 0
    this.slotSecond[slot] = -Infinity
  }

  private clearCurrent (): void {
    for (let j = 0; j < this.touchedCount; j++) this.counts[this.touched[j] as number] = 0
    this.touchedCount = 0
    this.requests = 0
    this.errors = 0
  }

  /** Moves the live words to the start of a larger log (a bounded number of times per instance). */
  private grow (minimum: number): void {
    const old = this.log
    const oldCapacity = old.length
    const log = new Uint16Array(Math.max(Math.ceil(oldCapacity * 1.5), minimum))
    const tail = (this.head - this.used + oldCapacity) % oldCapacity
    const firstPart = Math.min(this.used, oldCapacity - tail)
    log.set(old.subarray(tail, tail + firstPart), 0)
    log.set(old.subarray(0, this.used - firstPart), firstPart)
    for (let slot = 0; slot < SLOTS; slot++) {
      if (this.slotLength[slot] !== 0) this.slotStart[slot] = ((this.slotStart[slot] as number) - tail + oldCapacity) % oldCapacity
    }
    this.log = log
    this.head = this.used
  }
}

/** Totals and nearest-rank quantiles of the histogram in `scratch`, which it leaves zeroed. */
function statsOfScratch (requests: number, errors: number): WindowStats {
  if (requests === 0) return { requests: 0, errors: 0, errorRate: 0, p50: null, p90: null, p99: null }
  // Nearest rank: the value at rank ⌈q·n⌉. `n · percent / 100` keeps the product exact, so
  // ceil does not turn 99.00000000000001 into 100.
  const rank50 = Math.ceil((requests * 50) / 100)
  const rank90 = Math.ceil((requests * 90) / 100)
  const rank99 = Math.ceil((requests * 99) / 100)
  let p50 = -1
  let p90 = -1
  let p99 = -1
  let seen = 0
  for (let bucket = 0; bucket < BUCKET_COUNT; bucket++) {
    const count = scratch[bucket] as number
    if (count === 0) continue
    scratch[bucket] = 0 // leaves the scratch zeroed for the next reader
    seen += count
    if (p50 < 0 && seen >= rank50) p50 = VALUE[bucket] as number
    if (p90 < 0 && seen >= rank90) p90 = VALUE[bucket] as number
    if (p99 < 0 && seen >= rank99) p99 = VALUE[bucket] as number
  }
  return { requests, errors, errorRate: errors / requests, p50, p90, p99 }
}

function checkWindow (windowSeconds: number): void {
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > MAX_WINDOW_SECONDS) {
    throw new RangeError(`window must be a whole number of seconds from 1 to ${MAX_WINDOW_SECONDS}, got ${windowSeconds}`)
  }
}

/** `n mod size`, never negative (a clock may start below 0). */
function slotOf (n: number, size: number): number {
  const slot = n % size
  return slot < 0 ? slot + size : slot
}

// ---- registry -----------------------------------------------------------------------------------

export interface RouteStats {
  window: number
  /** Every version of the route that has stats (see StatsRegistry.get), in creation order. */
  versions: Partial<Record<UpstreamName, WindowStats>>
}

/**
 * The RollingStats of every route × version, created on first use. The data path should hold
 * on to the instance it gets (bind it when the route table is built), not look it up per request.
 */
export class StatsRegistry {
  private readonly now: Clock
  private readonly routes = new Map<string, Map<UpstreamName, RollingStats>>()

  constructor (options: RollingStatsOptions = {}) {
    this.now = options.now ?? defaultClock
  }

  /** The stats of one route × version; the same instance on every call. */
  get (route: string, version: UpstreamName): RollingStats {
    let versions = this.routes.get(route)
    if (versions === undefined) {
      versions = new Map()
      this.routes.set(route, versions)
    }
    let stats = versions.get(version)
    if (stats === undefined) {
      stats = new RollingStats({ now: this.now })
      versions.set(version, stats)
    }
    return stats
  }

  /** Every version of a route over the same window: the shape of GET /api/v1/routes/:route/stats. */
  forRoute (route: string, windowSeconds: number): RouteStats {
    checkWindow(windowSeconds)
    const versions: Partial<Record<UpstreamName, WindowStats>> = {}
    const byVersion = this.routes.get(route)
    if (byVersion !== undefined) {
      for (const [version, stats] of byVersion) versions[version] = stats.snapshot(windowSeconds)
    }
    return { window: windowSeconds, versions }
  }

  /** Every version's `series` of a route: the same intervals for each (see RollingStats.series). */
  seriesForRoute (route: string, windowSeconds: number, intervalSeconds: number): Partial<Record<UpstreamName, IntervalStats[]>> {
    const out: Partial<Record<UpstreamName, IntervalStats[]>> = {}
    for (const [version, stats] of this.routes.get(route) ?? []) out[version] = stats.series(windowSeconds, intervalSeconds)
    return out
  }

  /** Every version's latency histogram of a route over the window (for merging across replicas). */
  histograms (route: string, windowSeconds: number): Partial<Record<UpstreamName, LatencyHistogram>> {
    checkWindow(windowSeconds)
    const out: Partial<Record<UpstreamName, LatencyHistogram>> = {}
    for (const [version, stats] of this.routes.get(route) ?? []) out[version] = stats.histogram(windowSeconds)
    return out
  }

  /** Forgets a route (removed from the config); a later `get` starts it from zero. */
  delete (route: string): boolean {
    return this.routes.delete(route)
  }
}
