// Notification webhooks (event, post-rollout, rollback) delivered in the background: one queue
// per webhook, in order, each retried with exponential backoff on no answer, a timeout, 429 or
// 5xx. Their answers change nothing, so nothing waits for them; gates and checks are not queued
// here (they are judged on their first answer). A queue is bounded: a dead receiver cannot grow
// memory, the oldest waiting notification is dropped and counted.

import type { CallResult } from './webhooks.ts'

export interface RetryPolicy {
  /** Attempts of one notification, the first included. */
  attempts: number
  /** The wait before the second attempt; each next wait doubles. */
  firstDelayMs: number
  /** No attempt starts later than this after the first. */
  maxElapsedMs: number
  /** Notifications waiting per webhook, the one in flight not counted. */
  queueLimit: number
}

/** 0.5 s, 1 s, 2 s, 4 s, 8 s between six attempts (about 16 s plus their timeouts), within 60 s. */
export const NOTIFY_RETRY: RetryPolicy = { attempts: 6, firstDelayMs: 500, maxElapsedMs: 60_000, queueLimit: 100 }

export interface Notification {
  /** One attempt (a fresh signature each time). */
  send: () => Promise<CallResult>
  /** The last answer after the final failed attempt (or one that is not worth repeating). */
  failed: (last: CallResult, attempts: number) => Promise<void>
  /** This notification was dropped for a newer one: `dropped` of its webhook since its queue last ran empty. */
  dropped: (dropped: number) => Promise<void>
}

/** Whether a failed answer may be a passing problem: no answer (refused, reset, timeout), 429 or 5xx. */
export function isRetryable (r: CallResult): boolean {
  return r.status === null || r.status === 429 || r.status >= 500
}

interface Queue { waiting: Notification[]; running: boolean; dropped: number }

export class Notifier {
  readonly #policy: RetryPolicy
  readonly #log: { error: (obj: object, msg: string) => void }
  readonly #queues = new Map<string, Queue>()
  readonly #running = new Set<Promise<void>>()
  readonly #sleeps = new Set<() => void>()
  #closed = false

  constructor (log: { error: (obj: object, msg: string) => void }, policy: RetryPolicy = NOTIFY_RETRY) {
    this.#log = log
    this.#policy = policy
  }

  /** Queues a notification behind the others of webhook `key`; never waits. */
  enqueue (key: string, notification: Notification): void {
    if (this.#closed) return
    let queue = this.#queues.get(key)
    if (queue === undefined) {
      queue = { waiting: [], running: false, dropped: 0 }
      this.#queues.set(key, queue)
    }
    queue.waiting.push(notification)
    if (queue.waiting.length > this.#policy.queueLimit) {
      const oldest = queue.waiting.shift() as Notification
      queue.dropped++
      void this.#guard(oldest.dropped(queue.dropped), key)
    }
    if (!queue.running) {
      queue.running = true
      const run = this.#drain(key, queue)
      this.#running.add(run)
      void run.finally(() => this.#running.delete(run))
    }
  }

  /** Stops retrying: attempts in flight end (within their timeouts), waiting ones are dropped and logged. */
  async close (): Promise<void> {
    this.#closed = true
    for (const wake of this.#sleeps) wake()
    await Promise.allSettled([...this.#running])
    const left = [...this.#queues.values()].reduce((n, q) => n + q.waiting.length, 0)
    if (left > 0) this.#log.error({ notifications: left }, `${left} webhook notification(s) not delivered: weir is stopping`)
    this.#queues.clear()
  }

  async #drain (key: string, queue: Queue): Promise<void> {
    try {
      while (!this.#closed) {
        const next = queue.waiting.shift()
        if (next === undefined) break
        await this.#deliver(next, key)
      }
    } finally {
      queue.running = false
      if (queue.waiting.length === 0) this.#queues.delete(key)
    }
  }

  async #deliver (n: Notification, key: string): Promise<void> {
    const startedAt = Date.now()
    let delay = this.#policy.firstDelayMs
    for (let attempt = 1; ; attempt++) {
      const result = await n.send()
      if (result.ok) return
      const last = attempt >= this.#policy.attempts || !isRetryable(result) ||
        Date.now() + delay - startedAt > this.#policy.maxElapsedMs || this.#closed
      if (last) {
        if (!this.#closed) await this.#guard(n.failed(result, attempt), key)
        return
      }
      await this.#sleep(delay)
      if (this.#closed) return
      delay *= 2
    }
  }

  #sleep (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer)
        this.#sleeps.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      timer.unref()
      this.#sleeps.add(wake)
    })
  }

  async #guard (work: Promise<void>, key: string): Promise<void> {
    try {
      await work
    } catch (err) {
      this.#log.error({ err, webhook: key }, 'could not log an undelivered webhook notification')
    }
  }
}
