// Rollout decisions as route changes, pure: starting a rollout, a manual command, a transition the
// controller computed, and a rollback. Each returns the fields the route writer
// (state/route-writer.ts) writes in one compare-and-set, or throws a WeirError to refuse.

import type { RouteConfig } from '../config/model.ts'
import { schemaProblems } from '../config/problems.ts'
import { RolloutPolicySchema, type RolloutPolicy } from '../config/schema.ts'
import { WeirError } from '../errors.ts'
import { effectiveUpstreams } from '../state/live-routes.ts'
import { problemsOrThrow } from '../state/route-changes.ts'
import type { ChangeResult } from '../state/route-writer.ts'
import type { RouteState } from '../state/store.ts'
import { isActiveRollout, type Command } from '../vocabulary.ts'
import { planOf, resolvePolicy } from './policy.ts'
import { readRollout } from './rollout-view.ts'
import { startProblems } from './start-rules.ts'
import { advance, start, type Transition } from './step.ts'

/**
 * POST rollout: the policy (body over the route's configured policy, then defaults) and the
 * route must allow it; the first state is written, with the first step's weights when nothing
 * has to be checked first.
 */
export function startChange (
  body: unknown, route: RouteConfig, state: RouteState | undefined, now: number, actor: string, id: string
): { change: ChangeResult; transition: Transition } {
  if (isActiveRollout(state?.rollout)) {
    throw new WeirError('WEIR_ERR_ADMIN_ROLLOUT_ACTIVE', 'a rollout already drives this route: abort it first')
  }
  const resolved = resolvePolicy(route.rollout, body, (value) => schemaProblems(RolloutPolicySchema, value, 'rollout'))
  problemsOrThrow(resolved.problems)
  const policy = resolved.policy as RolloutPolicy
  const weights = state?.weights ?? route.weights
  problemsOrThrow(startProblems(policy, route, effectiveUpstreams(route, state), weights))
  const transition = start(planOf(policy), weights, now, actor, id)
  return { change: transitionChange(transition, route, state), transition }
}

/** A manual gate (pause, resume, promote, promote-full, abort), judged by the state machine. */
export function commandChange (
  command: Command, route: RouteConfig, state: RouteState | undefined, now: number, actor: string
): { change: ChangeResult; transition: Transition } {
  const rollout = readRollout(state?.rollout)
  if (rollout === null) throw new WeirError('WEIR_ERR_ADMIN_ROLLOUT_STATE', 'no rollout has run on this route: start one with POST .../rollout')
  const transition = advance(rollout, { kind: 'command', command, now, actor })
  return { change: transitionChange(transition, route, state), transition }
}

/** A transition as a route change: the new rollout state plus its weights or promotion. */
export function transitionChange (transition: Transition, route: RouteConfig, state: RouteState | undefined): ChangeResult {
  const { effect } = transition
  const base = { rollout: transition.state as unknown, action: transition.action, eventReason: transition.reason }
  if (effect.kind === 'none') return { ...base, weights: state?.weights ?? route.weights }
  if (effect.kind === 'weights') return { ...base, weights: effect.weights }
  // Promotion: stable's upstreams become the promoted version's, in the same write as the weights.
  const from = effectiveUpstreams(route, state)[effect.from]
  if (from === undefined) throw new WeirError('WEIR_ERR_ADMIN_ROLLOUT_STATE', `${effect.from} has no upstream to promote`)
  return { ...base, weights: effect.weights, upstreams: { ...state?.upstreams, stable: from } }
}

/**
 * POST rollback: stable 100 % at once, and a rollout that drives the route ends failed — the
 * same end as an abort, in the rollback's own write. A persisted rollout this weir cannot read
 * but that is in an active phase is marked failed as it is.
 */
export function rollbackChange (state: RouteState | undefined, now: number, actor: string): ChangeResult {
  const current = readRollout(state?.rollout)
  let rollout = state?.rollout ?? null
  if (current !== null && isActiveRollout(current)) {
    const aborted = advance(current, { kind: 'command', command: 'abort', now, actor }).state
    rollout = { ...aborted, reason: `rolled back by ${actor}` }
  } else if (isActiveRollout(rollout)) {
    rollout = { ...(rollout as object), phase: 'failed', reason: `rolled back by ${actor}` }
  }
  return { weights: { stable: 10_000, canary: 0, green: 0 }, rollout }
}
