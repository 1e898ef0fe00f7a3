// The fast guard's rule, pure: over the last second, a version's error rate above
// guard.maxErrorRate over at least guard.minRequests requests, or guard.minRequests failures in a
// row, fails the rollout at once, whatever the check interval. The controller samples the
// version's running totals every tick and asks this rule.

import type { CheckOutcome } from './analysis.ts'
import { targetOf, type RolloutState } from './step.ts'

/** The guard judges the last second of traffic. */
export const GUARD_WINDOW_MS = 1000

/** A version's running totals at one tick. */
export interface GuardSample { readonly at: number; readonly requests: number; readonly errors: number }

/** The totals the rolling stats keep for a version (requests and errors since start, the current run of errors). */
export interface GuardTotals { readonly requests: number; readonly errors: number; readonly consecutiveErrors: number }

/** Appends the sample and drops those older than the window (two are always kept, to have a span). */
export function keepGuardWindow (samples: GuardSample[], sample: GuardSample): void {
  samples.push(sample)
  while (samples.length > 2 && (samples[1] as GuardSample).at <= sample.at - GUARD_WINDOW_MS) samples.shift()
}

/** Whether the guard trips over `samples` (oldest first, the newest taken now); null when it holds. */
export function guardVerdict (rollout: RolloutState, samples: readonly GuardSample[], totals: GuardTotals, now: number): CheckOutcome | null {
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
