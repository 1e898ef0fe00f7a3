// The rollout state machine, pure: (rollout state × observation) → new state + one route change
// + webhooks to notify. Every phase change of every strategy is here, in one function per
// observation kind; controller.ts owns the clock, the stats and all I/O.

import type { RuleCondition, WeightsBp } from '../config/model.ts'
import { WeirError } from '../errors.ts'
import { ACTIVE_PHASES, type Command, type Phase, type Strategy, type WebhookType } from '../vocabulary.ts'
import type { CheckOutcome, Verdict } from './analysis.ts'
import { stepWeightBp, type RolloutPlan } from './policy.ts'

/** The gates: webhooks whose refusal holds the rollout where it is (never a failed check). */
export type GateType = 'confirm-rollout' | 'confirm-traffic-increase' | 'confirm-promotion'

/** A gate's answer: every webhook of its type agreed (ok), or the first refusal. */
export interface GateAnswer {
  /** Absent in checks persisted before there were several gates: confirm-promotion. */
  type?: GateType
  ok: boolean
  detail: string
}

/** One check: analysis and webhooks together, with the answer of the gate that was asked, if any. */
export interface CheckResult {
  /** Epoch ms. */
  at: number
  verdict: Verdict
  checks: CheckOutcome[]
  /**
   * confirm-rollout before the first step (a refusal: no checks ran); else the gate the move this
   * check could make needs (gateOnAdvance), asked only when the checks passed.
   */
  gate?: GateAnswer
}

export interface HistoryEntry {
  at: number
  phase: Phase
  /** Canary step index (-1 before the first); 0 for blue/green. */
  step: number
  /** The weight, in percent, the rollout gave its version after this entry. */
  weight: number
  note: string
}

/** A rollout as persisted in the route's live state (RouteState.rollout). Times in epoch ms. */
export interface RolloutState {
  id: string
  strategy: Strategy
  plan: RolloutPlan
  phase: Phase
  /** Index into plan.steps (canary); -1 before the first step (pre-rollout webhooks). */
  step: number
  /** Percent of traffic the rollout gives its version (canary or green) now. */
  weight: number
  /** Failed checks so far (the rollout reverts at plan.analysis.failureThreshold). */
  failures: number
  startedAt: number
  startedBy: string
  /** Where the current check window starts: the clock second in which the step's weights took effect. */
  windowStart: number
  nextCheckAt: number
  /** Blue/green: when the watch window ends (null before the switch). */
  watchUntil: number | null
  /** The phase a paused rollout returns to, and when it was paused. */
  pausedFrom: Phase | null
  pausedAt: number | null
  /** Set while a gate holds the rollout, or a pause step pauses it (`pause`). */
  waitingFor: GateType | 'pause' | null
  /** A pause step: when it ends (null: when resumed). Absent in rollouts persisted before pause steps. */
  pauseUntil?: number | null
  /**
   * A match-rule step's conditions, in force from its step until the next weight step: the data
   * path sends requests that match to the canary (live-routes.ts). Absent: none.
   */
  match?: RuleCondition[] | null
  /** When the rollout last made progress (progressDeadline). Absent in older rollouts: startedAt. */
  progressAt?: number
  /** The route's weights before the rollout: what a revert returns to. */
  baseline: WeightsBp
  lastCheck: CheckResult | null
  /** Why it holds, failed or succeeded, in words. */
  reason: string | null
  finishedAt: number | null
  history: HistoryEntry[]
}

export type Observation =
  /** A check that was due (isCheckDue), with what the controller measured and asked. */
  | { kind: 'check'; now: number; result: CheckResult }
  /** The fast guard's reading over the last second. */
  | { kind: 'guard'; now: number; tripped: CheckOutcome }
  /**
   * Time passed (isTickDue): finishes a promotion, ends a timed pause step (with the answer of the
   * gate the next move needs, tickGate) or fails the rollout at its progressDeadline.
   */
  | { kind: 'tick'; now: number; gate?: GateAnswer }
  | { kind: 'command'; now: number; command: Command; actor: string }
  /** The process restarted: the stats windows are empty, so the current step's window starts again. */
  | { kind: 'restart'; now: number }

/** The route change that goes with a transition, applied in the same write as the new state. */
export type Effect =
  | { kind: 'none' }
  | { kind: 'weights'; weights: WeightsBp }
  /** Stable's upstreams become `from`'s; stable takes 100 %. */
  | { kind: 'promote'; from: 'canary' | 'green'; weights: WeightsBp }

export interface Transition {
  state: RolloutState
  effect: Effect
  /** The event-log action: `rollout.step`, `rollout.failed`, ... */
  action: string
  /** Details for the event (the failed check with its value and threshold, ...). */
  reason: unknown
  /** Webhooks to notify after the write (their answers change nothing). */
  notify: WebhookType[]
}

/** A command that does not apply to the rollout's phase (→ 409 WEIR_ERR_ADMIN_ROLLOUT_STATE). */
function refused (command: Command, why: string): WeirError {
  return new WeirError('WEIR_ERR_ADMIN_ROLLOUT_STATE', `${command}: ${why}`)
}

const HISTORY_LIMIT = 100

/** The version a strategy moves traffic to. */
export function targetOf (state: Pick<RolloutState, 'strategy'>): 'canary' | 'green' {
  return state.strategy === 'canary' ? 'canary' : 'green'
}

/**
 * The start of the clock second holding `t`: where a check window that begins at `t` starts, as
 * the stats count whole seconds. So a window also holds up to a second from before its step
 * (the same versions, at the previous weights).
 */
function secondOf (t: number): number {
  return Math.floor(t / 1000) * 1000
}

/** The first state of a rollout, and the weights it writes (none before smoke or pre-rollout webhooks). */
export function start (plan: RolloutPlan, weights: WeightsBp, now: number, actor: string, id: string): Transition {
  // Checks or gates before the first step: the rollout starts at step -1 and its first check asks them.
  const hasPreRollout = plan.webhooks.some((h) => h.type === 'pre-rollout' || h.type === 'confirm-rollout' || h.type === 'confirm-traffic-increase')
  const base: RolloutState = {
    id,
    strategy: plan.strategy,
    plan,
    phase: plan.strategy === 'canary' ? 'progressing' : 'smoke',
    step: -1,
    weight: 0,
    failures: 0,
    startedAt: now,
    startedBy: actor,
    windowStart: secondOf(now),
    nextCheckAt: now,
    watchUntil: null,
    pausedFrom: null,
    pausedAt: null,
    waitingFor: null,
    pauseUntil: null,
    match: null,
    progressAt: now,
    baseline: { ...weights },
    lastCheck: null,
    reason: null,
    finishedAt: null,
    history: [],
  }
  if (plan.strategy === 'canary' && !hasPreRollout) {
    const state = enterStep(base, 0, now, `started by ${actor}`)
    return { state, effect: { kind: 'weights', weights: weightsFor(state, state.weight) }, action: 'rollout.started', reason: null, notify: [] }
  }
  const note = plan.strategy === 'canary' ? `started by ${actor}: pre-rollout checks first` : `started by ${actor}: smoke checks on green first`
  return { state: record(base, now, note), effect: { kind: 'none' }, action: 'rollout.started', reason: null, notify: [] }
}

/** Whether a check is due now (the controller then measures and calls webhooks). */
export function isCheckDue (state: RolloutState, now: number): boolean {
  return (state.phase === 'progressing' || state.phase === 'smoke' || state.phase === 'watching') && now >= state.nextCheckAt
}

/** Whether a check before the first step asks confirm-rollout first (before the pre-rollout webhooks and the smoke check). */
export function asksConfirmRollout (state: RolloutState): boolean {
  const before = state.strategy === 'canary' ? state.phase === 'progressing' && state.step < 0 : state.phase === 'smoke'
  return before && hasHook(state, 'confirm-rollout')
}

/**
 * The gate the rollout's next move needs, when it has webhooks of that type: confirm-promotion
 * before a promotion, confirm-traffic-increase before a weight step above the current weight
 * (and blue/green's switch); null when the next move needs none, or is not up to a check.
 */
export function gateOnAdvance (state: RolloutState, now: number): GateType | null {
  let needed: GateType | null = null
  if (state.strategy === 'canary') {
    const next = state.step + 1
    if (next >= state.plan.steps.length) needed = 'confirm-promotion'
    else {
      const weight = stepWeightBp(state.plan.steps[next])
      if (weight !== null && weight / 100 > state.weight) needed = 'confirm-traffic-increase'
    }
  } else if (state.phase === 'smoke') {
    needed = 'confirm-traffic-increase'
  } else if (state.phase === 'watching' && state.watchUntil !== null && now >= state.watchUntil) {
    needed = 'confirm-promotion'
  }
  return needed !== null && hasHook(state, needed) ? needed : null
}

/** Whether time alone moves the rollout now: a promotion to finish, a timed pause step that ended, a progress deadline passed. */
export function isTickDue (state: RolloutState, now: number): boolean {
  return state.phase === 'promoting' || pauseEnded(state, now) || deadlinePassed(state, now)
}

/** The gate a tick must have asked (a timed pause step ends into a move that needs one), or null. */
export function tickGate (state: RolloutState, now: number): GateType | null {
  return pauseEnded(state, now) && !deadlinePassed(state, now) ? gateOnAdvance(state, now) : null
}

function hasHook (state: RolloutState, type: GateType): boolean {
  return state.plan.webhooks.some((h) => h.type === type)
}

/** A timed pause step (or the gate it ended at, asked again each interval) is over. */
function pauseEnded (state: RolloutState, now: number): boolean {
  const until = state.pauseUntil ?? null
  return state.phase === 'paused' && until !== null && now >= until && now >= state.nextCheckAt && state.waitingFor !== null
}

/**
 * Whether the rollout made no progress for its progressDeadline. Progress: it starts, takes a
 * step, switches, passes a check or resumes. Holds for lack of data, failed checks below the
 * threshold and gate refusals are no progress; pauses (a pause step, POST .../pause) do not count.
 */
function deadlinePassed (state: RolloutState, now: number): boolean {
  const deadline = state.plan.progressDeadline ?? null
  if (deadline === null) return false
  const counts = state.phase === 'progressing' || state.phase === 'smoke' || state.phase === 'watching' ||
    (state.phase === 'paused' && state.waitingFor !== null && state.waitingFor !== 'pause')
  return counts && now - (state.progressAt ?? state.startedAt) >= deadline.ms
}

/** The next state for an observation. A check that is not due, or a guard outside a watched phase, changes nothing (action `none`). */
export function advance (state: RolloutState, obs: Observation): Transition {
  switch (obs.kind) {
    case 'check': return onCheck(state, obs.now, obs.result)
    case 'guard': return onGuard(state, obs.now, obs.tripped)
    case 'tick': return onTick(state, obs.now, obs.gate)
    case 'command': return onCommand(state, obs.now, obs.command, obs.actor)
    case 'restart': return onRestart(state, obs.now)
  }
}

function unchanged (state: RolloutState): Transition {
  return { state, effect: { kind: 'none' }, action: 'none', reason: null, notify: [] }
}

function onCheck (state: RolloutState, now: number, result: CheckResult): Transition {
  if (!isCheckDue(state, now)) return unchanged(state)
  const checked: RolloutState = { ...state, lastCheck: result }
  if (result.gate?.type === 'confirm-rollout' && !result.gate.ok) return heldAtGate(checked, now, 'confirm-rollout', result.gate)
  const failed = result.checks.find((c) => c.verdict === 'fail')
  const held = result.checks.find((c) => c.verdict === 'hold')
  if (result.verdict === 'fail' && failed !== undefined) {
    const failures = state.failures + 1
    const limit = state.plan.analysis.failureThreshold
    const why = `${failed.name}: ${failed.detail}`
    if (failures >= limit) return fail({ ...checked, failures }, now, `check failed ${failures} of ${limit} allowed: ${why}`, failed)
    // A fresh window for the next check, so it judges new traffic only.
    const next = { ...checked, failures, reason: `check failed (${failures} of ${limit}): ${why}`, windowStart: secondOf(now), nextCheckAt: nextCheckAfter(state, now) }
    return { state: record(next, now, next.reason), effect: { kind: 'none' }, action: 'rollout.check-failed', reason: checkReason(failed), notify: [] }
  }
  if (result.verdict === 'hold' && held !== undefined) {
    // The window keeps growing from the step's start: more data, until the check is conclusive.
    const reason = `holding: ${held.name}: ${held.detail}`
    const next = { ...checked, reason, nextCheckAt: nextCheckAfter(state, now) }
    const noted = state.reason === reason ? next : record(next, now, reason)
    return { state: noted, effect: { kind: 'none' }, action: 'rollout.held', reason: checkReason(held), notify: [] }
  }
  return onPass(checked, now, result)
}

/** A check passed (or a manual promote, `gated` false: the operator's word needs no gate): the next move. */
function onPass (state: RolloutState, now: number, result: CheckResult, gated = true): Transition {
  if (state.phase === 'watching' && state.watchUntil !== null && now < state.watchUntil) {
    return { state: { ...state, reason: null, progressAt: now, nextCheckAt: nextCheckAfter(state, now) }, effect: { kind: 'none' }, action: 'rollout.checked', reason: null, notify: [] }
  }
  const needed = gated ? gateOnAdvance(state, now) : null
  if (needed !== null && !gateAgrees(result.gate, needed)) return heldAtGate(state, now, needed, result.gate)
  if (state.phase === 'smoke') {
    const switched = record({
      ...state,
      phase: 'watching',
      step: 0,
      weight: 100,
      reason: null,
      waitingFor: null,
      progressAt: now,
      windowStart: secondOf(now),
      nextCheckAt: nextCheckAfter(state, now),
      watchUntil: now + state.plan.watchMs,
    }, now, 'smoke checks passed: switched 100 % to green')
    return { state: switched, effect: { kind: 'weights', weights: weightsFor(switched, 100) }, action: 'rollout.switched', reason: null, notify: [] }
  }
  if (state.strategy === 'canary' && state.step < state.plan.steps.length - 1) {
    const next = enterStep(state, state.step + 1, now, `step ${state.step + 1} passed its check`)
    return { state: next, effect: { kind: 'weights', weights: weightsFor(next, next.weight) }, action: 'rollout.step', reason: null, notify: [] }
  }
  // The last step (or the end of the watch) passed: promote.
  return promoting(state, now, 'analysis passed')
}

/** Whether a gate's answer lets the move that needs `needed` go on. */
function gateAgrees (gate: GateAnswer | undefined, needed: GateType): boolean {
  return gate !== undefined && gate.ok && (gate.type ?? 'confirm-promotion') === needed
}

/** Held where it is until the gate agrees; asked again at the next check (or tick). No progress. */
function heldAtGate (state: RolloutState, now: number, gate: GateType, answer: GateAnswer | undefined): Transition {
  const reason = `waiting for ${gate}: ${answer?.detail ?? 'not asked'}`
  const next = { ...state, waitingFor: gate, reason, nextCheckAt: nextCheckAfter(state, now) }
  return { state: state.reason === reason ? next : record(next, now, reason), effect: { kind: 'none' }, action: 'rollout.held', reason: { check: gate, detail: answer?.detail ?? null }, notify: [] }
}

function promoting (state: RolloutState, now: number, why: string): Transition {
  const next = record({ ...state, phase: 'promoting', waitingFor: null, reason: null, pausedFrom: null, pausedAt: null, pauseUntil: null, progressAt: now }, now, `promoting: ${why}`)
  return { state: next, effect: { kind: 'none' }, action: 'rollout.promoting', reason: null, notify: [] }
}

function onTick (state: RolloutState, now: number, gate: GateAnswer | undefined): Transition {
  if (deadlinePassed(state, now)) return onDeadline(state, now)
  if (pauseEnded(state, now)) {
    const needed = gateOnAdvance(state, now)
    if (needed !== null && !gateAgrees(gate, needed)) {
      // The pause is over; the time waiting for the gate is no progress.
      const progressAt = state.waitingFor === 'pause' ? now : (state.progressAt ?? state.startedAt)
      return heldAtGate({ ...state, progressAt }, now, needed, gate)
    }
    return leavePauseStep(state, now, `pause step ${state.step} ended`, 'rollout.step')
  }
  if (state.phase !== 'promoting') return unchanged(state)
  const from = targetOf(state)
  const done = record({ ...state, phase: 'succeeded', weight: 0, match: null, reason: `${from} promoted: stable now runs its upstreams`, finishedAt: now }, now, `promoted ${from} to stable`)
  return {
    state: done,
    effect: { kind: 'promote', from, weights: { stable: 10_000, canary: 0, green: 0 } },
    action: 'rollout.succeeded',
    reason: null,
    notify: ['post-rollout'],
  }
}

/** The progress deadline passed: the rollout fails and reverts, or pauses (onProgressDeadline). */
function onDeadline (state: RolloutState, now: number): Transition {
  const deadline = state.plan.progressDeadline as NonNullable<RolloutPlan['progressDeadline']>
  const why = `progress deadline ${deadline.text} passed: ${state.reason ?? `no progress since ${new Date(state.progressAt ?? state.startedAt).toISOString()}`}`
  if (deadline.action === 'fail') return fail(state, now, why, null)
  const pausedFrom = state.phase === 'paused' ? state.pausedFrom : state.phase
  const next = record({ ...state, phase: 'paused', pausedFrom, pausedAt: now, waitingFor: null, reason: why }, now, `paused: ${why}`)
  return { state: next, effect: { kind: 'none' }, action: 'rollout.paused', reason: { detail: why }, notify: [] }
}

/** Whether the rollout stands at a pause step (paused by it, or at the gate its end needs). */
function atPauseStep (state: RolloutState): boolean {
  const step = state.plan.steps[state.step]
  return state.phase === 'paused' && typeof step === 'object' && 'pause' in step
}

/** Out of a pause step: the next step, or the promotion after the last. */
function leavePauseStep (state: RolloutState, now: number, why: string, action: string): Transition {
  const resumed: RolloutState = { ...state, phase: 'progressing', pausedFrom: null, pausedAt: null, pauseUntil: null, waitingFor: null }
  if (state.step >= state.plan.steps.length - 1) return { ...promoting(resumed, now, why), action }
  const next = enterStep(resumed, state.step + 1, now, why)
  return { state: next, effect: { kind: 'weights', weights: weightsFor(next, next.weight) }, action, reason: null, notify: [] }
}

function onGuard (state: RolloutState, now: number, tripped: CheckOutcome): Transition {
  if (!ACTIVE_PHASES.has(state.phase) || state.phase === 'promoting' || (state.weight === 0 && !hasMatch(state))) return unchanged(state)
  return fail({ ...state, failures: state.failures + 1 }, now, `fast guard: ${tripped.detail}`, tripped)
}

function onCommand (state: RolloutState, now: number, command: Command, actor: string): Transition {
  if (!ACTIVE_PHASES.has(state.phase)) throw refused(command, `the rollout has ${state.phase}; start a new one`)
  switch (command) {
    case 'abort':
      return fail(state, now, `aborted by ${actor}`, null, 'rollout.aborted')
    case 'pause': {
      if (state.phase === 'paused') throw refused(command, 'the rollout is already paused')
      if (state.phase === 'promoting') throw refused(command, 'the rollout is being promoted')
      const next = record({ ...state, phase: 'paused', pausedFrom: state.phase, pausedAt: now, reason: `paused by ${actor}` }, now, `paused by ${actor}`)
      return { state: next, effect: { kind: 'none' }, action: 'rollout.paused', reason: null, notify: [] }
    }
    case 'resume': {
      if (state.phase !== 'paused' || state.pausedFrom === null) throw refused(command, 'the rollout is not paused')
      // Resuming a pause step takes the next step at once (the operator's word: no gate asked).
      if (atPauseStep(state)) return leavePauseStep(state, now, `resumed by ${actor}`, 'rollout.resumed')
      const pausedFor = now - (state.pausedAt ?? now)
      const next = record({
        ...state,
        phase: state.pausedFrom,
        pausedFrom: null,
        pausedAt: null,
        reason: null,
        waitingFor: null,
        progressAt: now,
        // The paused time does not count: a fresh window, and the watch is extended by the pause.
        windowStart: secondOf(now),
        nextCheckAt: nextCheckAfter(state, now),
        watchUntil: state.watchUntil === null ? null : state.watchUntil + pausedFor,
      }, now, `resumed by ${actor}`)
      return { state: next, effect: { kind: 'none' }, action: 'rollout.resumed', reason: null, notify: [] }
    }
    case 'promote': {
      if (state.phase === 'promoting') throw refused(command, 'the rollout is already being promoted')
      const phase = state.phase === 'paused' ? (state.pausedFrom ?? 'progressing') : state.phase
      const resumed = { ...state, phase, pausedFrom: null, pausedAt: null, pauseUntil: null, waitingFor: null }
      if (phase === 'smoke') return onPass({ ...resumed, failures: state.failures }, now, { at: now, verdict: 'pass', checks: [] }, false)
      if (state.strategy === 'canary' && state.step < state.plan.steps.length - 1) {
        const next = enterStep(resumed, state.step + 1, now, `promoted to the next step by ${actor}`)
        return { state: next, effect: { kind: 'weights', weights: weightsFor(next, next.weight) }, action: 'rollout.step', reason: null, notify: [] }
      }
      return promoting(resumed, now, `promoted by ${actor}`)
    }
    case 'promote-full':
      if (state.phase === 'promoting') throw refused(command, 'the rollout is already being promoted')
      return promoting(state, now, `promoted fully by ${actor}`)
  }
}

function onRestart (state: RolloutState, now: number): Transition {
  if (!ACTIVE_PHASES.has(state.phase) || state.phase === 'promoting') return unchanged(state)
  const next = record({
    ...state,
    windowStart: secondOf(now),
    // The process was away: the progress deadline counts from the restart.
    progressAt: now,
    nextCheckAt: state.phase === 'paused' ? state.nextCheckAt : Math.max(now, nextCheckAfter(state, now)),
    watchUntil: state.watchUntil === null ? null : Math.max(state.watchUntil, now + state.plan.intervalMs),
  }, now, `resumed after a restart at step ${state.step} (${state.weight} %); the check window starts again`)
  return { state: next, effect: { kind: 'none' }, action: 'rollout.restarted', reason: null, notify: [] }
}

/** Fails the rollout and reverts: the version's weight back to stable at once. */
function fail (state: RolloutState, now: number, reason: string, check: CheckOutcome | null, action = 'rollout.failed'): Transition {
  const reverted = revertWeights(state)
  const next = record({ ...state, phase: 'failed', weight: 0, match: null, waitingFor: null, pausedFrom: null, pausedAt: null, pauseUntil: null, reason, finishedAt: now }, now, `reverted: ${reason}`)
  return { state: next, effect: { kind: 'weights', weights: reverted }, action, reason: check === null ? { detail: reason } : checkReason(check), notify: ['rollback'] }
}

function checkReason (check: CheckOutcome): Record<string, unknown> {
  return { check: check.name, value: check.value, threshold: check.threshold, ...(check.pValue === undefined ? {} : { pValue: check.pValue }), detail: check.detail }
}

/**
 * Takes step `step`: a weight step sets the weight (and ends a match step's rule); a pause step
 * pauses at the weight it has; a match step sends the requests that match to the canary.
 */
function enterStep (state: RolloutState, step: number, now: number, why: string): RolloutState {
  const planned = state.plan.steps[step]
  const target = targetOf(state)
  const fresh = { phase: 'progressing' as const, step, reason: null, waitingFor: null, pauseUntil: null, progressAt: now, windowStart: secondOf(now), nextCheckAt: nextCheckAfter(state, now) }
  const base: RolloutState = { ...state, ...fresh }
  if (typeof planned === 'number' || planned === undefined) {
    const weight = (planned ?? 0) / 100
    return record({ ...base, weight, match: null }, now, `${why}: ${target} at ${weight} %`)
  }
  if ('pause' in planned) {
    const until = planned.pauseMs === null ? null : now + planned.pauseMs
    const reason = until === null
      ? `pause step ${step}: until resumed (POST .../rollout/resume)`
      : `pause step ${step} (${String(planned.pause)}): until ${new Date(until).toISOString()}`
    const paused = { ...base, phase: 'paused' as const, pausedFrom: 'progressing' as const, pausedAt: now, waitingFor: 'pause' as const, pauseUntil: until, nextCheckAt: until ?? now, reason }
    return record(paused, now, `${why}: ${reason}, ${target} at ${state.weight} %`)
  }
  return record({ ...base, match: planned.conditions }, now,
    `${why}: requests matching ${JSON.stringify(planned.match)} reach ${target} (otherwise at ${state.weight} %)`)
}

/** Whether a match step's rule is in force. */
function hasMatch (state: RolloutState): boolean {
  return (state.match ?? null) !== null
}

/** When the next check is due: one interval from now. */
function nextCheckAfter (state: RolloutState, now: number): number {
  return now + state.plan.intervalMs
}

/** The route's weights with the rollout's version at `percent`: the rest goes to (or comes from) stable. */
function weightsFor (state: RolloutState, percent: number): WeightsBp {
  const target = targetOf(state)
  const bp = Math.round(percent * 100)
  const other = target === 'canary' ? 'green' : 'canary'
  const w: WeightsBp = { stable: 0, canary: 0, green: 0 }
  w[target] = bp
  // Blue/green takes everything; a canary leaves the other version's share where it was.
  w[other] = target === 'green' && bp === 10_000 ? 0 : Math.min(state.baseline[other], 10_000 - bp)
  w.stable = 10_000 - bp - w[other]
  return w
}

/** The weights before the rollout, with the rollout's version at 0 (its share back on stable). */
function revertWeights (state: RolloutState): WeightsBp {
  const target = targetOf(state)
  const w = { ...state.baseline }
  w.stable += w[target]
  w[target] = 0
  return w
}

function record (state: RolloutState, at: number, note: string): RolloutState {
  const entry: HistoryEntry = { at, phase: state.phase, step: state.step, weight: state.weight, note }
  const history = [...state.history, entry]
  return { ...state, history: history.length > HISTORY_LIMIT ? history.slice(-HISTORY_LIMIT) : history }
}
