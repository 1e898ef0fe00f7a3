// The retry budget of one route × version (Linkerd's and Finagle's model): over a sliding window,
// retries may add at most budgetPercent of the requests, plus minRetries whatever the traffic, so a
// failing host can never multiply the load on the others. Ten slots per window; per request one
// clock read and two increments.

import type { RetryConfig } from '../config/model.ts'

const SLOTS = 10

export class RetryBudget {
  private readonly config: RetryConfig
  private readonly slotMs: number
  private readonly requests = new Float64Array(SLOTS)
  private readonly retries = new Float64Array(SLOTS)
  /** The slot (a count of slotMs since the time origin) the arrays were last advanced to. */
  private current = 0

  constructor (config: RetryConfig) {
    this.config = config
    this.slotMs = config.windowMs / SLOTS
  }

  /** Whether this budget was made for `config` (a snapshot with the same settings keeps it). */
  isFor (config: RetryConfig): boolean {
    return config.budgetPercent === this.config.budgetPercent && config.minRetries === this.config.minRetries && config.windowMs === this.config.windowMs
  }

  /** A first attempt went out. */
  request (): void {
    const slot = this.advance()
    this.requests[slot] = (this.requests[slot] as number) + 1
  }

  /** Takes one retry from the budget; false when the window's retries are used up. */
  take (): boolean {
    const slot = this.advance()
    let requests = 0
    let retries = 0
    for (let i = 0; i < SLOTS; i++) {
      requests += this.requests[i] as number
      retries += this.retries[i] as number
    }
    // This retry too must fit: the window's retries never exceed the allowance.
    if (retries + 1 > this.config.minRetries + requests * this.config.budgetPercent / 100) return false
    this.retries[slot] = (this.retries[slot] as number) + 1
    return true
  }

  /** Zeroes the slots that fell out of the window since the last call; answers the current one's index. */
  private advance (): number {
    const now = Math.floor(performance.now() / this.slotMs)
    const passed = now - this.current
    if (passed > 0) {
      for (let i = 1; i <= Math.min(passed, SLOTS); i++) {
        const slot = (this.current + i) % SLOTS
        this.requests[slot] = 0
        this.retries[slot] = 0
      }
      this.current = now
    }
    return now % SLOTS
  }
}
