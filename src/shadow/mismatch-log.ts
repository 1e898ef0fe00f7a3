// What a route's shadow comparisons found: a bounded sample of recent mismatches (for
// GET /api/v1/routes/:route/shadow/mismatches) and per-second counts of comparisons and
// mismatches (for the mismatch rate in GET .../stats). One per route name, kept across reloads.

import { MAX_WINDOW_SECONDS, MISMATCH_KINDS, type MismatchKind } from '../vocabulary.ts'
import type { DiffEntry } from './compare.ts'

/** Mismatches kept per route: enough to see a pattern, small enough to return in one reply. */
export const MISMATCH_SAMPLE_SIZE = 100
/** Seconds of comparison counts kept: the stats API's longest window. */
const SECONDS = MAX_WINDOW_SECONDS
/** Request targets longer than this are cut in samples. */
const MAX_URL_CHARS = 2048

export interface MismatchSample {
  /** ISO time the comparison was made. */
  readonly at: string
  readonly requestId: string
  readonly method: string
  /** Path and query, as the client sent them (cut at 2 048 characters). */
  readonly url: string
  readonly primary: { readonly status: number }
  readonly shadow: { readonly status: number }
  readonly kinds: readonly MismatchKind[]
  readonly diff: readonly DiffEntry[]
}

export interface MismatchSummary {
  /** Copies whose shadow and primary responses both completed and were compared. */
  compared: number
  /** Compared copies with at least one difference. */
  mismatches: number
  /** mismatches / compared; 0 when nothing was compared. */
  mismatchRate: number
  byKind: Record<MismatchKind, number>
}

export class MismatchLog {
  private readonly samples: (MismatchSample | undefined)[] = new Array(MISMATCH_SAMPLE_SIZE)
  private next = 0
  private total = 0
  // Per clock second (slot second % SECONDS): comparisons, mismatches and mismatches by kind.
  private readonly slotSecond = new Float64Array(SECONDS).fill(-Infinity)
  private readonly slotCompared = new Float64Array(SECONDS)
  private readonly slotMismatches = new Float64Array(SECONDS)
  private readonly slotKinds = { status: new Float64Array(SECONDS), headers: new Float64Array(SECONDS), body: new Float64Array(SECONDS) }
  private readonly now: () => number

  /** `now`: milliseconds from a fixed origin (default performance.now()), only whole seconds matter. */
  constructor (now: () => number = () => performance.now()) {
    this.now = now
  }

  /** Counts one comparison; a mismatch (non-empty `sample.kinds`) also enters the sample. */
  record (sample: MismatchSample | null): void {
    const slot = this.slot()
    this.slotCompared[slot] = (this.slotCompared[slot] as number) + 1
    if (sample === null) return
    this.slotMismatches[slot] = (this.slotMismatches[slot] as number) + 1
    for (const kind of sample.kinds) this.slotKinds[kind][slot] = (this.slotKinds[kind][slot] as number) + 1
    this.keep(sample)
    this.total++
  }

  /**
   * Counts comparisons another process made (a worker's readings) in the current second, and
   * keeps its samples (oldest first) as if recorded now.
   */
  add (delta: { readonly compared: number; readonly mismatches: number; readonly byKind: Readonly<Record<MismatchKind, number>>; readonly samples: readonly MismatchSample[] }): void {
    const slot = this.slot()
    this.slotCompared[slot] = (this.slotCompared[slot] as number) + delta.compared
    this.slotMismatches[slot] = (this.slotMismatches[slot] as number) + delta.mismatches
    for (const kind of MISMATCH_KINDS) this.slotKinds[kind][slot] = (this.slotKinds[kind][slot] as number) + (delta.byKind[kind] ?? 0)
    for (const sample of delta.samples.slice(-MISMATCH_SAMPLE_SIZE)) this.keep(sample)
    this.total += delta.mismatches
  }

  private keep (sample: MismatchSample): void {
    this.samples[this.next] = sample.url.length > MAX_URL_CHARS ? { ...sample, url: sample.url.slice(0, MAX_URL_CHARS) + '…' } : sample
    this.next = (this.next + 1) % MISMATCH_SAMPLE_SIZE
  }

  /** The most recent mismatches, newest first. */
  recent (limit = MISMATCH_SAMPLE_SIZE): MismatchSample[] {
    const out: MismatchSample[] = []
    const count = Math.min(limit, this.total, MISMATCH_SAMPLE_SIZE)
    for (let i = 1; i <= count; i++) {
      out.push(this.samples[(this.next - i + MISMATCH_SAMPLE_SIZE) % MISMATCH_SAMPLE_SIZE] as MismatchSample)
    }
    return out
  }

  /** Mismatches recorded since start (the sample holds the last MISMATCH_SAMPLE_SIZE). */
  get recorded (): number {
    return this.total
  }

  /** Counts over the current clock second and the `windowSeconds − 1` before it (1–600). */
  summary (windowSeconds: number): MismatchSummary {
    const current = Math.floor(this.now() / 1000)
    const out: MismatchSummary = { compared: 0, mismatches: 0, mismatchRate: 0, byKind: { status: 0, headers: 0, body: 0 } }
    for (let second = current - Math.min(windowSeconds, SECONDS) + 1; second <= current; second++) {
      const slot = modulo(second)
      if (this.slotSecond[slot] !== second) continue
      out.compared += this.slotCompared[slot] as number
      out.mismatches += this.slotMismatches[slot] as number
      out.byKind.status += this.slotKinds.status[slot] as number
      out.byKind.headers += this.slotKinds.headers[slot] as number
      out.byKind.body += this.slotKinds.body[slot] as number
    }
    out.mismatchRate = out.compared === 0 ? 0 : out.mismatches / out.compared
    return out
  }

  /** The slot of the current second, emptied when it last held an older second. */
  private slot (): number {
    const second = Math.floor(this.now() / 1000)
    const slot = modulo(second)
    if (this.slotSecond[slot] !== second) {
      this.slotSecond[slot] = second
      this.slotCompared[slot] = 0
      this.slotMismatches[slot] = 0
      this.slotKinds.status[slot] = 0
      this.slotKinds.headers[slot] = 0
      this.slotKinds.body[slot] = 0
    }
    return slot
  }
}

function modulo (second: number): number {
  const slot = second % SECONDS
  return slot < 0 ? slot + SECONDS : slot
}
