// The built-in rollout controller: owns the clock, reads the rolling stats, calls webhooks and
// the smoke check, and writes what the state machine (step.ts) decides through the same route
// service as the admin API (same validation, revisions and events, actor `controller`).

import { randomBytes } from 'node:crypto'
import type { Config, RouteConfig } from '../config/load.ts'
import type { WebhookType } from '../config/schema.ts'
import { AdminError, type Caller, type RouteService, type RouteView, type WriteOptions } from '../admin/route-service.ts'
import { MAX_WINDOW_SECONDS, type StatsRegistry } from '../metrics/window.ts'
import type { EventLog } from '../state/event-log.ts'
import { liveRoute } from '../state/live-routes.ts'
import type { StateStore } from '../state/store.ts'
import { analyze, overall, type CheckOutcome } from './analysis.ts'
import { readRollout, type RolloutView } from './rollout-view.ts'
import { ACTIVE, advance, checkCanPromote, isCheckDue, targetOf, type Command, type RolloutState, type Transition } from './step.ts'
import { callWebhook, smokeCheck, type CallResult } from './webhooks.ts'

const CONTROLLER: Caller = { actor: 'controller' }

/** How often the controller looks at every rollout: the fast guard's cadence, and the lateness bound of a check. */
export const TICK_MS = 100
/** The fast guard judges the last second of traffic. */
const GUARD_WINDOW_MS = 1000

export interface ControllerOptions {
  service: RouteService
  store: StateStore
  stats: StatsRegistry
  events: EventLog
  config: () => Config
  /** Epoch milliseconds, monotonic: the clock the stats count seconds on. */
  now: () => number
  /** weir's own proxy origin for smoke checks, once it listens. */
  proxyOrigin: () => string | null
  log: { error: (obj: object, msg: string) => void }
}

interface GuardSample { at: number; requests: number; errors: number }

export class RolloutController {
  readonly #o: ControllerOptions
  #timer: NodeJS.Timeout | null = null
  /** Routes with a check in flight (webhooks can take seconds; the guard keeps running meanwhile). */
  readonly #checking = new Set<string>()
  /** Routes with a controller write in flight. */
  readonly #writing = new Set<string>()
  /** Per route, the target version's totals over the last second or so, oldest first. */
  readonly #guard = new Map<string, { rollout: string; samples: GuardSample[] }>()
  readonly #pending = new Set<Promise<unknown>>()

  constructor (options: ControllerOptions) {
    this.#o = options
  }

  /** Resumes the rollouts the state file holds (each at its step, with a fresh window), then ticks. */
  async start (): Promise<void> {
    for (const route of this.#o.config().routes) {
      const state = this.#o.store.get(route.name)
      const rollout = readRollout(state?.rollout)
      if (state === undefined || rollout === null || !ACTIVE.has(rollout.phase)) continue
      await this.#apply(route.name, state.revision, advance(rollout, { kind: 'restart', now: this.#o.now() }))
    }
    this.#timer = setInterval(() => this.#tick(), TICK_MS)
    this.#timer.unref()
  }

  async close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await Promise.allSettled([...this.#pending])
  }

  /** POST .../rollout. */
  async startRollout (name: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RolloutView> {
    const { view } = await this.#o.service.startRollout(name, body, options, caller, this.#o.now(), randomBytes(6).toString('hex'))
    return view
  }

  /** POST .../rollout/{pause,resume,promote,abort}. */
  async command (name: string, command: Command, caller: Caller): Promise<RolloutView> {
    const { view, transition } = await this.#o.service.commandRollout(name, command, caller, this.#o.now())
    this.#notify(name, transition.state, transition.notify)
    return view
  }

  /** POST .../rollback: the route service's rollback, plus the rollback webhooks of a rollout it ended. */
  async rollback (name: string, options: WriteOptions, caller: Caller): Promise<RouteView> {
    const before = readRollout(this.#o.store.get(name)?.rollout)
    const view = await this.#o.service.rollback(name, options, caller, this.#o.now())
    const after = readRollout(this.#o.store.get(name)?.rollout)
    if (before !== null && ACTIVE.has(before.phase) && after !== null) {
      this.#notify(name, after, ['rollback'])
    }
    return view
  }

  #tick (): void {
    const now = this.#o.now()
    for (const route of this.#o.config().routes) {
      const state = this.#o.store.get(route.name)
      const rollout = readRollout(state?.rollout)
      if (state === undefined || rollout === null || !ACTIVE.has(rollout.phase)) {
        this.#guard.delete(route.name)
        continue
      }
      if (this.#writing.has(route.name)) continue
      const tripped = this.#guardReading(route.name, rollout, now)
      if (tripped !== null) {
        this.#track(this.#apply(route.name, state.revision, advance(rollout, { kind: 'guard', now, tripped })))
      } else if (rollout.phase === 'promoting') {
        this.#track(this.#apply(route.name, state.revision, advance(rollout, { kind: 'tick', now })))
      } else if (isCheckDue(rollout, now) && !this.#checking.has(route.name)) {
        this.#checking.add(route.name)
        this.#track(this.#check(route, state.revision, rollout, now).finally(() => this.#checking.delete(route.name)))
      }
    }
  }

  /**
   * The fast guard: over the last second, the version's error rate above guard.maxErrorRate over
   * at least guard.minRequests requests, or guard.minRequests failures in a row. Null when it holds.
   */
  #guardReading (name: string, rollout: RolloutState, now: number): CheckOutcome | null {
    const target = targetOf(rollout)
    const totals = this.#o.stats.get(name, target).totals
    let guard = this.#guard.get(name)
    if (guard === undefined || guard.rollout !== rollout.id) {
      guard = { rollout: rollout.id, samples: [] }
      this.#guard.set(name, guard)
    }
    const samples = guard.samples
    samples.push({ at: now, requests: totals.requests, errors: totals.errors })
    while (samples.length > 2 && (samples[1] as GuardSample).at <= now - GUARD_WINDOW_MS) samples.shift()
    const oldest = samples[0] as GuardSample
    if (samples.length < 2 || rollout.weight === 0 || rollout.phase === 'promoting') return null
    const requests = totals.requests - oldest.requests
    const errors = totals.errors - oldest.errors
    const { maxErrorRate, minRequests } = rollout.plan.guard
    const seconds = Math.max(0.001, (now - oldest.at) / 1000).toFixed(2)
    if (requests >= minRequests && errors / requests > maxErrorRate) {
      return {
        name: 'guard',
        verdict: 'fail',
        value: Number((errors / requests).toPrecision(4)),
        threshold: maxErrorRate,
        detail: `${target} error rate ${(errors / requests).toPrecision(3)} (${errors} of ${requests} in the last ${seconds}s) is above the guard's maxErrorRate ${maxErrorRate}`,
      }
    }
    if (errors > 0 && totals.consecutiveErrors >= minRequests) {
      return {
        name: 'guard',
        verdict: 'fail',
        value: totals.consecutiveErrors,
        threshold: minRequests,
        detail: `${target} failed ${totals.consecutiveErrors} requests in a row (the guard allows fewer than ${minRequests})`,
      }
    }
    return null
  }

  /** Measures, asks the webhooks (and the smoke check), and writes what the state machine decides. */
  async #check (route: RouteConfig, revision: number, rollout: RolloutState, now: number): Promise<void> {
    const checks: CheckOutcome[] = []
    const hooks = (type: WebhookType) => rollout.plan.webhooks.filter((h) => h.type === type)
    const ask = async (type: WebhookType): Promise<void> => {
      const results = await Promise.all(hooks(type).map(async (h) => [h.name, await callWebhook(h, this.#payload(route.name, rollout, type, h.metadata))] as const))
      for (const [hookName, r] of results) checks.push(outcome(`webhook:${hookName}`, r))
    }
    if (rollout.phase === 'smoke') {
      const smoke = rollout.plan.smoke
      if (smoke !== null) {
        // With its live upstreams: the smoke check may need green's.
        const live = liveRoute(route, this.#o.store.get(route.name))
        checks.push(outcome('smoke', await smokeCheck({ proxyOrigin: this.#o.proxyOrigin(), route: live, path: smoke.path, timeoutMs: smoke.timeoutMs })))
      }
      await ask('pre-rollout')
    } else if (rollout.strategy === 'canary' && rollout.step < 0) {
      await ask('pre-rollout')
    } else {
      checks.push(...this.#analysis(route.name, rollout, now))
      await ask('rollout')
    }
    let gate: { ok: boolean; detail: string } | undefined
    if (overall(checks) === 'pass' && checkCanPromote(rollout, now)) {
      const answers = await Promise.all(hooks('confirm-promotion').map((h) => callWebhook(h, this.#payload(route.name, rollout, 'confirm-promotion', h.metadata))))
      const refused = answers.find((a) => !a.ok)
      gate = refused === undefined ? { ok: true, detail: answers.map((a) => a.detail).join('; ') } : { ok: false, detail: refused.detail }
    }
    const result = { at: now, verdict: overall(checks), checks, ...(gate === undefined ? {} : { gate }) }
    await this.#apply(route.name, revision, advance(rollout, { kind: 'check', now, result }))
  }

  /** Canary (or green) against stable over the check window; only absolute limits while stable has no weight. */
  #analysis (name: string, rollout: RolloutState, now: number): CheckOutcome[] {
    const target = targetOf(rollout)
    const window = windowSeconds(rollout.windowStart, now)
    const stableWeight = this.#o.store.get(name)?.weights.stable ?? 0
    return analyze({
      subject: this.#o.stats.get(name, target).histogram(window),
      baseline: stableWeight === 0 ? null : this.#o.stats.get(name, 'stable').histogram(window),
      subjectName: target,
      window,
    }, rollout.plan.analysis)
  }

  async #apply (name: string, revision: number, transition: Transition): Promise<void> {
    if (transition.action === 'none') return
    this.#writing.add(name)
    try {
      await this.#o.service.applyRollout(name, revision, transition, CONTROLLER)
    } catch (err) {
      // Someone else changed the route meanwhile (an operator, the guard): look again next tick.
      if (err instanceof AdminError && err.code === 'WEIR_ERR_ADMIN_STALE_REVISION') return
      this.#o.log.error({ err, route: name, action: transition.action }, 'the rollout controller could not write its decision; it will try again')
      return
    } finally {
      this.#writing.delete(name)
    }
    this.#notify(name, transition.state, transition.notify)
  }

  /** Fires the rollout's webhooks of these types; a failure is logged as an event, it changes nothing. */
  #notify (name: string, rollout: RolloutState, types: readonly WebhookType[]): void {
    for (const type of types) {
      for (const hook of rollout.plan.webhooks.filter((h) => h.type === type)) {
        this.#track(callWebhook(hook, this.#payload(name, rollout, type, hook.metadata)).then(async (r) => {
          if (r.ok) return
          await this.#o.events.append({ actor: 'controller', route: name, action: 'rollout.webhook-failed', reason: { webhook: hook.name, type, detail: r.detail } })
        }).catch((err: unknown) => this.#o.log.error({ err, route: name }, 'could not log a failed webhook')))
      }
    }
  }

  #payload (name: string, rollout: RolloutState, type: WebhookType, metadata: Record<string, string>): unknown {
    const weights = this.#o.store.get(name)?.weights
    return {
      route: name,
      type,
      rollout: rollout.id,
      strategy: rollout.strategy,
      phase: rollout.phase,
      step: rollout.step,
      weight: rollout.weight,
      weights: weights === undefined ? null : { stable: weights.stable / 100, canary: weights.canary / 100, green: weights.green / 100 },
      failures: rollout.failures,
      reason: rollout.reason,
      lastCheck: rollout.lastCheck,
      metadata,
    }
  }

  #track (work: Promise<unknown>): void {
    this.#pending.add(work)
    void work.finally(() => this.#pending.delete(work))
  }
}

function outcome (name: string, r: CallResult): CheckOutcome {
  return { name, verdict: r.ok ? 'pass' : 'fail', value: r.status, threshold: null, detail: r.detail }
}

/** Whole seconds of stats from `from` (a second boundary) up to and including the current second. */
function windowSeconds (from: number, now: number): number {
  return Math.min(MAX_WINDOW_SECONDS, Math.max(1, Math.floor((now - from) / 1000) + 1))
}
