// The fast guard's rule, pure: over the last second, a version's error rate above
// guard.maxErrorRate over at least guard.minRequests requests, or guard.minRequests failures in a
// row, fails the rollout at once, whatever the check interval. The controller samples the
// version's running totals every tick and asks this rule. A run of errors counts only from when
// the guard began watching (this rollout, this upstream): the stats keep the run since the
// process started, and a run that reverted the last rollout must not revert the next one.

import type { CheckOutcome } from './analysis.ts'
import { targetOf, type RolloutState } from './step.ts'

/** The guard judges the last second of traffic. */
export const GUARD_WINDOW_MS = 1000

/** A version's running totals at one tick. */
export interface GuardSample { readonly at: number; readonly requests: number; readonly errors: number }

/** The totals the rolling stats keep for a version (requests and errors since start, the current run of errors). */
export interface GuardTotals { readonly requests: number; readonly errors: number; readonly consecutiveErrors: number }

/**
 * The run of errors the guard judges: the stats' current run, cut at the version's errors total
 * `errorsAtStart` (taken when the guard began watching). Exact either way: a run that began
 * later is all counted after it; one that began earlier has failed every request since, so
 * the errors since are its part after the start.
 */
export function streakSince (totals: GuardTotals, errorsAtStart: number): number {
  return Math.max(0, Math.min(totals.consecutiveErrors, totals.errors - errorsAtStart))
}

/** Appends the sample and drops those older than the window (two are always kept, to have a span). */
export function keepGuardWindow (samples: GuardSample[], sample: GuardSample): void {
  samples.push(sample)
  while (samples.length > 2 && (samples[1] as GuardSample).at <= sample.at - GUARD_WINDOW_MS) samples.shift()
}

/**
 * Whether the guard trips over `samples` (oldest first, the newest taken now); null when it
 * holds. `errorsAtStart`: the version's errors total when the guard began watching it.
 */
export function guardVerdict (rollout: RolloutState, samples: readonly GuardSample[], totals: GuardTotals, errorsAtStart: number, now: number): CheckOutcome | null {
  const oldest = samples[0]
  if (oldest === undefined || samples.length < 2 || (rollout.weight === 0 && (rollout.match ?? null) === null) || rollout.phase === 'promoting') return null
  const target = targetOf(rollout)
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
  const streak = streakSince(totals, errorsAtStart)
  if (errors > 0 && streak >= minRequests) {
    return {
      name: 'guard',
      verdict: 'fail',
      value: streak,
      threshold: minRequests,
      detail: `${target} failed ${streak} requests in a row (the guard allows fewer than ${minRequests})`,
    }
  }
  return null
}
