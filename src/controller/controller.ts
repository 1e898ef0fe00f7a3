// The built-in rollout controller: owns the clock, reads the rolling stats, calls webhooks and
// the smoke check, and writes what the state machine (rollout/step.ts) decides through the same
// route writer as the admin API (same validation, revisions and events, actor `controller`).

import { randomBytes } from 'node:crypto'
import type { Config, RouteConfig, WeightsBp } from '../config/model.ts'
import type { LatencyHistogram, StatsRegistry } from '../metrics/rolling-stats.ts'
import { renderQuery } from '../config/query-template.ts'
import { analyze, judgeMetric, overall, type CheckOutcome } from '../rollout/analysis.ts'
import { guardVerdict, keepGuardWindow, type GuardSample } from '../rollout/guard.ts'
import { commandChange, rollbackChange, startChange, transitionChange } from '../rollout/rollout-changes.ts'
import { readRollout, rolloutView, type FailSafeView, type RolloutView } from '../rollout/rollout-view.ts'
import { advance, asksConfirmRollout, gateOnAdvance, isCheckDue, isTickDue, targetOf, tickGate, type GateAnswer, type GateType, type RolloutState, type Transition } from '../rollout/step.ts'
import type { EventLog } from '../state/event-log.ts'
import { effectiveUpstreams, liveRoute, percentOf } from '../state/live-routes.ts'
import type { Caller, RouteWriter, Written, WriteOptions } from '../state/route-writer.ts'
import type { RouteState, StateStore } from '../state/store.ts'
import type { WebhookPlan } from '../rollout/policy.ts'
import { ACTIVE_PHASES, MAX_WINDOW_SECONDS, type Command, type Phase, type UpstreamName, type WebhookType } from '../vocabulary.ts'
import { Notifier, NOTIFY_RETRY } from './notifier.ts'
import { queryPrometheus } from './prometheus-query.ts'
import { slackMessage, webhookPayload, type PhaseChange } from './webhook-payload.ts'
import { callWebhook, smokeCheck, type CallResult } from './webhooks.ts'

const CONTROLLER: Caller = { actor: 'controller' }

/** How often the controller looks at every rollout: the fast guard's cadence, and the lateness bound of a check. */
export const TICK_MS = 100

/** How often a fast guard's revert that could not be written is tried again. */
const REVERT_RETRY_MS = 500

/** What the fast guard watches on a route: one rollout's target on one set of upstreams. */
interface GuardWatch {
  readonly rollout: string
  /** The target's upstreams when the watch began, joined. */
  readonly upstreams: string
  /** The target's errors total when the watch began: its error run counts from here. */
  readonly errorsAtStart: number
  readonly samples: GuardSample[]
}

interface FailSafe {
  readonly rollout: string
  readonly since: number
  readonly tripped: CheckOutcome
  readonly weights: Readonly<WeightsBp>
  nextAttemptAt: number
  failedWrites: number
}

export interface ControllerOptions {
  writer: RouteWriter
  store: StateStore
  stats: StatsRegistry
  events: EventLog
  config: () => Config
  /** Epoch milliseconds, monotonic: the clock the stats count seconds on. */
  now: () => number
  /** weir's own proxy origin for smoke checks, once it listens. */
  proxyOrigin: () => string | null
  /** The data path's smoke token (snapshot.ts): the smoke check's way to green through the proxy. */
  smokeToken: string
  log: { error: (obj: object, msg: string) => void }
  /**
   * Whether this replica leads its fleet (docs/fleet.md): only the leader runs checks, steps and
   * promotions; every replica runs the fast guard. Default: always (a single replica).
   */
  leadership?: { isLeader (): boolean; onLeadership (listener: (leader: boolean) => void): void }
  /** A route's per-version histograms over a window, over the whole fleet. Default: this replica's. */
  histograms?: (route: string, windowSeconds: number) => Promise<Partial<Record<UpstreamName, LatencyHistogram>>>
  /**
   * Told whenever the set of routes held at a fast guard's revert changes (route → the weights
   * this replica's data path must serve instead of the store's); see #holdRevert.
   */
  onFailSafe?: (held: ReadonlyMap<string, Readonly<WeightsBp>>) => void
}

/** The webhooks told of what happened, whose answers change nothing: queued and retried (notifier.ts). */
const NOTIFICATIONS: ReadonlySet<WebhookType> = new Set<WebhookType>(['event', 'post-rollout', 'rollback'])

export class RolloutController {
  readonly #o: ControllerOptions
  #timer: NodeJS.Timeout | null = null
  /** Routes with a check in flight (webhooks can take seconds; the guard keeps running meanwhile). */
  readonly #checking = new Set<string>()
  /** Routes with a controller write in flight. */
  readonly #writing = new Set<string>()
  /** Per route, the target version's totals over the last second or so, oldest first. */
  readonly #guard = new Map<string, GuardWatch>()
  /** Routes whose fast guard tripped and whose revert the store does not hold yet. */
  readonly #failSafe = new Map<string, FailSafe>()
  readonly #pending = new Set<Promise<unknown>>()
  readonly #notifier: Notifier

  constructor (options: ControllerOptions) {
    this.#o = options
    this.#notifier = new Notifier(options.log)
  }

  /** Resumes the rollouts the state holds (each at its step, with a fresh window) when leading, then ticks. */
  async start (): Promise<void> {
    // A replica that becomes the leader takes the rollouts over where they were persisted.
    this.#o.leadership?.onLeadership((leader) => { if (leader && this.#timer !== null) this.#track(this.#resume()) })
    if (this.#leads()) await this.#resume()
    this.#timer = setInterval(() => this.#tick(), TICK_MS)
    this.#timer.unref()
  }

  #leads (): boolean {
    return this.#o.leadership?.isLeader() ?? true
  }

  async #resume (): Promise<void> {
    for (const route of this.#o.config().routes) {
      const state = this.#o.store.get(route.name)
      const rollout = readRollout(state?.rollout)
      if (state === undefined || rollout === null || !ACTIVE_PHASES.has(rollout.phase)) continue
      await this.#apply(route.name, state.revision, advance(rollout, { kind: 'restart', now: this.#o.now() }))
    }
  }

  async close (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await Promise.allSettled([...this.#pending])
    await this.#notifier.close()
  }

  /** POST .../rollout. */
  async startRollout (name: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RolloutView> {
    const now = this.#o.now()
    const id = randomBytes(6).toString('hex')
    let transition: Transition | undefined
    const written = await this.#o.writer.write(name, 'rollout.started', { ...options, force: true }, caller, (route, state) => {
      const started = startChange(body, route, state, now, caller.actor, id)
      transition = started.transition
      return started.change
    })
    const done = transition as Transition
    this.#notify(name, done, null, now)
    return viewOf(name, written, done)
  }

  /** POST .../rollout/{pause,resume,promote,abort}. */
  async command (name: string, command: Command, caller: Caller): Promise<RolloutView> {
    const now = this.#o.now()
    let transition: Transition | undefined
    let from: Phase | null = null
    const written = await this.#o.writer.write(name, `rollout.${command}`, { force: true }, caller, (route, state) => {
      from = readRollout(state?.rollout)?.phase ?? null
      const commanded = commandChange(command, route, state, now, caller.actor)
      transition = commanded.transition
      return commanded.change
    })
    const done = transition as Transition
    this.#notify(name, done, from, now)
    return viewOf(name, written, done)
  }

  /** POST .../rollback: stable 100 % at once, plus the rollback webhooks of a rollout it ended. Allowed during a rollout. */
  async rollback (name: string, options: WriteOptions, caller: Caller): Promise<Written> {
    const before = readRollout(this.#o.store.get(name)?.rollout)
    const now = this.#o.now()
    const written = await this.#o.writer.write(name, 'rollback', { ...options, force: true }, caller, (_route, state) => rollbackChange(state, now, caller.actor))
    const after = readRollout(written.state.rollout)
    if (before !== null && ACTIVE_PHASES.has(before.phase) && after !== null) {
      this.#notify(name, { state: after, notify: ['rollback'], action: 'rollback' }, before.phase, now)
    }
    return written
  }

  /** The routes this replica serves at a fast guard's revert the store does not hold yet (GET .../rollout). */
  failSafe (route: string): FailSafeView | null {
    const held = this.#failSafe.get(route)
    if (held === undefined) return null
    return { rollout: held.rollout, since: new Date(held.since).toISOString(), detail: held.tripped.detail, weights: percentOf(held.weights), failedWrites: held.failedWrites }
  }

  #tick (): void {
    const now = this.#o.now()
    const leads = this.#leads()
    for (const route of this.#o.config().routes) {
      const state = this.#o.store.get(route.name)
      const rollout = readRollout(state?.rollout)
      const held = this.#failSafe.get(route.name)
      if (held !== undefined) {
        // Held until the store no longer drives that rollout: the revert was written (here or by
        // another replica), or someone ended the rollout otherwise.
        if (rollout?.id !== held.rollout || !ACTIVE_PHASES.has(rollout.phase)) this.#release(route.name)
        else {
          if (!this.#writing.has(route.name) && now >= held.nextAttemptAt) this.#track(this.#writeRevert(route.name, state?.revision ?? 0, rollout, held, now))
          continue
        }
      }
      if (state === undefined || rollout === null || !ACTIVE_PHASES.has(rollout.phase)) {
        this.#guard.delete(route.name)
        continue
      }
      if (this.#writing.has(route.name)) continue
      const tripped = this.#guardReading(route, state, rollout, now)
      if (tripped !== null) {
        const transition = advance(rollout, { kind: 'guard', now, tripped })
        if (transition.action === 'none' || transition.effect.kind !== 'weights') continue
        // This replica stops sending traffic to the failing version at once, whatever the store
        // does; then any replica's guard may write the revert (compare-and-set, not fenced), and
        // the others follow through the store.
        const hold: FailSafe = { rollout: rollout.id, since: now, tripped, weights: transition.effect.weights, nextAttemptAt: now, failedWrites: 0 }
        this.#failSafe.set(route.name, hold)
        this.#failSafeChanged()
        this.#track(this.#writeRevert(route.name, state.revision, rollout, hold, now))
      } else if (!leads) {
        continue
      } else if (isTickDue(rollout, now)) {
        if (this.#checking.has(route.name)) continue
        const gate = tickGate(rollout, now)
        if (gate === null) this.#track(this.#apply(route.name, state.revision, advance(rollout, { kind: 'tick', now })))
        else {
          // A timed pause step ended into a move that needs a gate: asked like a check's.
          this.#checking.add(route.name)
          this.#track(this.#askGate(route.name, rollout, gate)
            .then((answer) => this.#apply(route.name, state.revision, advance(rollout, { kind: 'tick', now, gate: answer })))
            .finally(() => this.#checking.delete(route.name)))
        }
      } else if (isCheckDue(rollout, now) && !this.#checking.has(route.name)) {
        this.#checking.add(route.name)
        this.#track(this.#check(route, state.revision, rollout, now).finally(() => this.#checking.delete(route.name)))
      }
    }
  }

  /**
   * Writes a held revert against the rollout as the store has it now. While the store is away
   * (or the write fails for any reason) the route stays held, and the write is tried again every
   * REVERT_RETRY_MS; the event it writes then says how long this replica held it alone.
   */
  async #writeRevert (name: string, revision: number, rollout: RolloutState, held: FailSafe, now: number): Promise<void> {
    held.nextAttemptAt = now + REVERT_RETRY_MS
    const tripped = held.failedWrites === 0
      ? held.tripped
      : { ...held.tripped, detail: `${held.tripped.detail} (this replica served the revert alone from ${new Date(held.since).toISOString()} until the store took it)` }
    const transition = advance(rollout, { kind: 'guard', now: held.since, tripped })
    if (transition.action === 'none') {
      this.#release(name)
      return
    }
    const outcome = await this.#apply(name, revision, transition, false, held.failedWrites === 0)
    if (outcome === 'written') this.#release(name)
    else if (outcome === 'failed') {
      if (held.failedWrites === 0) {
        this.#o.log.error({ route: name, rollout: held.rollout },
          `the fast guard's revert of route ${name} could not be written: this replica serves the revert's weights alone and writes it once the store answers`)
      }
      held.failedWrites++
    }
  }

  #release (name: string): void {
    if (this.#failSafe.delete(name)) this.#failSafeChanged()
  }

  #failSafeChanged (): void {
    this.#o.onFailSafe?.(new Map([...this.#failSafe].map(([route, held]) => [route, held.weights])))
  }

  /**
   * Samples the target version's totals for the fast guard and asks its rule; null when it holds.
   * The guard starts afresh (no samples, the error run counted from now) for a new rollout and
   * when the target's upstreams change: neither inherits the last one's failures.
   */
  #guardReading (route: RouteConfig, state: RouteState, rollout: RolloutState, now: number): CheckOutcome | null {
    const target = targetOf(rollout)
    const totals = this.#o.stats.get(route.name, target).totals
    const upstreams = (effectiveUpstreams(route, state)[target] ?? []).join(' ')
    let guard = this.#guard.get(route.name)
    if (guard === undefined || guard.rollout !== rollout.id || guard.upstreams !== upstreams) {
      guard = { rollout: rollout.id, upstreams, errorsAtStart: totals.errors, samples: [] }
      this.#guard.set(route.name, guard)
    }
    keepGuardWindow(guard.samples, { at: now, requests: totals.requests, errors: totals.errors })
    return guardVerdict(rollout, guard.samples, totals, guard.errorsAtStart, now)
  }

  /** Measures, asks the webhooks (and the smoke check), and writes what the state machine decides. */
  async #check (route: RouteConfig, revision: number, rollout: RolloutState, now: number): Promise<void> {
    const checks: CheckOutcome[] = []
    const hooks = (type: WebhookType) => rollout.plan.webhooks.filter((h) => h.type === type)
    if (asksConfirmRollout(rollout)) {
      // Before anything else of the first step: a refusal holds the rollout at its start.
      const confirmed = await this.#askGate(route.name, rollout, 'confirm-rollout')
      if (!confirmed.ok) {
        await this.#apply(route.name, revision, advance(rollout, { kind: 'check', now, result: { at: now, verdict: 'pass', checks: [], gate: confirmed } }))
        return
      }
    }
    const ask = async (type: WebhookType): Promise<void> => {
      const results = await Promise.all(hooks(type).map(async (h) => [h.name, await this.#call(route.name, rollout, h)] as const))
      for (const [hookName, r] of results) checks.push(outcome(`webhook:${hookName}`, r))
    }
    if (rollout.phase === 'smoke') {
      const smoke = rollout.plan.smoke
      if (smoke !== null) {
        // With its live upstreams: the smoke check may need green's.
        const live = liveRoute(route, this.#o.store.get(route.name))
        checks.push(outcome('smoke', await smokeCheck({ proxyOrigin: this.#o.proxyOrigin(), smokeToken: this.#o.smokeToken, route: live, path: smoke.path, timeoutMs: smoke.timeoutMs })))
      }
      await ask('pre-rollout')
    } else if (rollout.strategy === 'canary' && rollout.step < 0) {
      await ask('pre-rollout')
    } else {
      checks.push(...await this.#analysis(route.name, rollout, now))
      await ask('rollout')
    }
    const needed = overall(checks) === 'pass' ? gateOnAdvance(rollout, now) : null
    const gate = needed === null ? undefined : await this.#askGate(route.name, rollout, needed)
    const result = { at: now, verdict: overall(checks), checks, ...(gate === undefined ? {} : { gate }) }
    await this.#apply(route.name, revision, advance(rollout, { kind: 'check', now, result }))
  }

  /** Asks every webhook of a gate: it agrees when all answer 2xx; else the first refusal. */
  async #askGate (name: string, rollout: RolloutState, type: GateType): Promise<GateAnswer> {
    const hooks = rollout.plan.webhooks.filter((h) => h.type === type)
    const answers = await Promise.all(hooks.map(async (h) => await this.#call(name, rollout, h)))
    const refused = answers.find((a) => !a.ok)
    return refused === undefined ? { type, ok: true, detail: answers.map((a) => a.detail).join('; ') } : { type, ok: false, detail: refused.detail }
  }

  /** Canary (or green) against stable over the check window; only absolute limits while stable has no weight. */
  async #analysis (name: string, rollout: RolloutState, now: number): Promise<CheckOutcome[]> {
    const target = targetOf(rollout)
    const window = windowSeconds(rollout.windowStart, now)
    const stableWeight = this.#o.store.get(name)?.weights.stable ?? 0
    const fleet = this.#o.histograms === undefined ? null : await this.#o.histograms(name, window)
    const histogram = (version: UpstreamName): LatencyHistogram => fleet?.[version] ?? this.#o.stats.get(name, version).histogram(window)
    const builtIn = analyze({
      subject: histogram(target),
      baseline: stableWeight === 0 ? null : histogram('stable'),
      subjectName: target,
      window,
    }, rollout.plan.analysis)
    return [...builtIn, ...await this.#metricChecks(name, rollout)]
  }

  /** The policy's custom checks: each query filled in and sent to its Prometheus, all at once. */
  async #metricChecks (name: string, rollout: RolloutState): Promise<CheckOutcome[]> {
    const { metrics = [], prometheus = null } = rollout.plan.analysis
    if (metrics.length === 0 || prometheus === null) return []
    const target = targetOf(rollout)
    const values = { route: name, target, version: target, interval: `${Math.max(1, Math.round(rollout.plan.intervalMs / 1000))}s` }
    const before = rollout.lastCheck?.checks ?? []
    return await Promise.all(metrics.map(async (metric) => {
      const reading = await queryPrometheus(prometheus, renderQuery(metric.query, values))
      const errorsBefore = before.find((c) => c.name === `metric:${metric.name}`)?.queryErrors ?? 0
      return judgeMetric(metric, reading, errorsBefore, prometheus.maxQueryErrors)
    }))
  }

  /**
   * Writes a decision pinned to `revision`; `fenced` (the leader's decisions): only while this
   * replica still leads. `stale`: someone else changed the route meanwhile (an operator, the
   * guard), so the controller looks again next tick; `failed`: the write failed (logged when
   * `logFailure`), and it will be decided and tried again.
   */
  async #apply (name: string, revision: number, transition: Transition, fenced = true, logFailure = true): Promise<'none' | 'written' | 'stale' | 'failed'> {
    if (transition.action === 'none') return 'none'
    this.#writing.add(name)
    let from: Phase | null = null
    try {
      const written = await this.#o.writer.writeAt(name, revision, transition.action, CONTROLLER, (route, state) => {
        from = readRollout(state?.rollout)?.phase ?? null
        return transitionChange(transition, route, state)
      }, fenced)
      if (written === null) return 'stale'
    } catch (err) {
      if (logFailure) this.#o.log.error({ err, route: name, action: transition.action }, 'the rollout controller could not write its decision; it will try again')
      return 'failed'
    } finally {
      this.#writing.delete(name)
    }
    this.#notify(name, transition, from, this.#o.now())
    return 'written'
  }

  /**
   * Queues the notification webhooks of a written transition (retried in the background; a
   * delivery that finally fails is an event, it changes nothing): its own types, plus `event`
   * when the phase changed or the rollout reverted. `from`: the phase before the write.
   */
  #notify (name: string, transition: Pick<Transition, 'state' | 'notify' | 'action'>, from: Phase | null, at: number): void {
    const rollout = transition.state
    const types = new Set(transition.notify)
    if (from !== rollout.phase || types.has('rollback')) types.add('event')
    const change: PhaseChange = { previousPhase: from, action: transition.action, at }
    for (const hook of rollout.plan.webhooks) {
      if (!types.has(hook.type) || !NOTIFICATIONS.has(hook.type)) continue
      // The payload is taken now (the weights just written), the signature at each attempt.
      const payload = this.#body(name, rollout, hook, hook.type === 'event' ? change : undefined)
      const delivery = randomBytes(8).toString('hex')
      const failed = async (detail: string, extra: Record<string, unknown>): Promise<void> => {
        await this.#o.events.append({ actor: 'controller', route: name, action: 'rollout.webhook-failed', reason: { webhook: hook.name, type: hook.type, detail, delivery, ...extra } })
      }
      this.#notifier.enqueue(`${name} ${hook.name} ${hook.url}`, {
        send: async () => await callWebhook(hook, payload, { secret: this.#secretOf(name, hook), delivery }),
        failed: async (r, attempts) => await failed(r.detail, { attempts }),
        dropped: async (dropped) => await failed(`dropped undelivered: more than ${NOTIFY_RETRY.queueLimit} notifications waited for this webhook`, { dropped }),
      })
    }
  }

  /** A gate or check webhook: asked once, its answer judged. */
  async #call (name: string, rollout: RolloutState, hook: WebhookPlan): Promise<CallResult> {
    return await callWebhook(hook, this.#body(name, rollout, hook), { secret: this.#secretOf(name, hook) })
  }

  #body (name: string, rollout: RolloutState, hook: WebhookPlan, change?: PhaseChange): unknown {
    const payload = webhookPayload(name, rollout, hook.type, hook.metadata, this.#o.store.get(name)?.weights, change)
    return hook.format === 'slack' ? slackMessage(payload) : payload
  }

  /**
   * A webhook's HMAC key, read from the running config at each call (so a reload rotates it; it
   * is never in the rollout's persisted plan): the route's configured webhook of that name and
   * URL, else the top-level webhookSecret; undefined: unsigned.
   */
  #secretOf (name: string, hook: WebhookPlan): string | undefined {
    const config = this.#o.config()
    const configured = config.routes.find((r) => r.name === name)?.rollout?.webhooks.find((h) => h.name === hook.name && h.url === hook.url)
    return configured?.secret ?? config.webhookSecret
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

/** GET .../rollout's view of the route right after a rollout write. */
function viewOf (name: string, written: Written, transition: Transition): RolloutView {
  return rolloutView(name, readRollout(transition.state), percentOf(written.state.weights), written.state.revision)
}
