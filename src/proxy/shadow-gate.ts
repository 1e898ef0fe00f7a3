// A route's shadow gate, kept across snapshots: copies in flight (bounded by maxInFlight) and a
// circuit breaker. A shadow that gives no complete answer (refused, reset, cut mid-body, timed
// out) five times in a row is sent no copies for a pause (1 s, doubling while it keeps failing,
// at most 30 s; copies sampled meanwhile are dropped and counted): every copy to a dead shadow
// would otherwise cost a connection attempt and an error on the proxy's event loop. A 5xx is an
// answer, worth comparing, and does not count.

/** Consecutive failed copies that pause copying. */
export const PAUSE_AFTER_FAILURES = 5
/** The first pause; each pause that ends in failure again doubles the next, up to the last. */
export const FIRST_PAUSE_MS = 1000
export const LONGEST_PAUSE_MS = 30_000

export class ShadowGate {
  inFlight = 0
  /** performance.now() until which copies are paused (0: not paused). */
  pausedUntil = 0
  private failures = 0
  private nextPauseMs = FIRST_PAUSE_MS

  /** Whether a copy sampled now is dropped: a pause is running. */
  paused (now: number): boolean {
    return this.pausedUntil !== 0 && now < this.pausedUntil
  }

  /** A copy got a complete answer (any status): the shadow works again. */
  answered (): void {
    this.failures = 0
    this.nextPauseMs = FIRST_PAUSE_MS
  }

  /** A copy got no complete answer; returns true when this failure started a pause. */
  failed (): boolean {
    if (++this.failures < PAUSE_AFTER_FAILURES) return false
    this.failures = 0
    this.pausedUntil = performance.now() + this.nextPauseMs
    this.nextPauseMs = Math.min(this.nextPauseMs * 2, LONGEST_PAUSE_MS)
    return true
  }
}
