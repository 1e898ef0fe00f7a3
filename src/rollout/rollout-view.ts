// A persisted rollout read back (checked, since the state file is outside our control) and shown
// by the admin API: the summary in a route, the full view of GET .../rollout.

import { ROLLOUT_PHASES, STRATEGIES, type Phase, type Strategy, type Version } from '../vocabulary.ts'
import { stepView } from './policy.ts'
import type { CheckResult, HistoryEntry, RolloutState } from './step.ts'

/**
 * The rollout of a route's live state, or null when there is none or it is not one this weir
 * wrote (a state file edited by hand, or from an older version): such a value is kept, unread.
 */
export function readRollout (value: unknown): RolloutState | null {
  if (typeof value !== 'object' || value === null) return null
  const r = value as Partial<RolloutState>
  const ok = typeof r.id === 'string' && r.strategy !== undefined && STRATEGIES.includes(r.strategy) &&
    r.phase !== undefined && ROLLOUT_PHASES.includes(r.phase) && typeof r.plan === 'object' && r.plan !== null &&
    Array.isArray(r.plan.steps) && typeof r.step === 'number' && typeof r.weight === 'number' &&
    typeof r.failures === 'number' && typeof r.windowStart === 'number' && typeof r.nextCheckAt === 'number' &&
    typeof r.baseline === 'object' && r.baseline !== null && Array.isArray(r.history)
  return ok ? value as RolloutState : null
}

/** What a route shows of its rollout. */
export interface RolloutSummary {
  id: string
  strategy: Strategy
  phase: Phase
  step: number
  weight: number
  reason: string | null
}

export function rolloutSummary (state: RolloutState | null): RolloutSummary | null {
  if (state === null) return null
  return { id: state.id, strategy: state.strategy, phase: state.phase, step: state.step, weight: state.weight, reason: state.reason }
}

/** GET .../rollout's `failSafe`: this replica serves the fast guard's revert although the store does not hold it yet (docs/fleet.md). */
export interface FailSafeView {
  /** The rollout the guard reverted. */
  readonly rollout: string
  /** ISO time the guard tripped. */
  readonly since: string
  /** What the guard saw. */
  readonly detail: string
  /** The weights this replica serves meanwhile, in percent. */
  readonly weights: Readonly<Record<Version, number>>
  /** Attempts to write the revert that failed so far. */
  readonly failedWrites: number
}

/** GET .../rollout: the phase, where it stands, the last check with values and thresholds, the history. */
export interface RolloutView {
  route: string
  phase: Phase | 'idle'
  /** The route's weights now, in percent. */
  weights: Record<Version, number>
  /** The route's revision (also the ETag). */
  revision: number
  rollout: null | (RolloutSummary & {
    steps: ReturnType<typeof stepView>[]
    failures: number
    failureThreshold: number
    startedAt: string
    startedBy: string
    nextCheckAt: string | null
    watchUntil: string | null
    waitingFor: string | null
    /** A timed pause step: when it ends. */
    pauseUntil: string | null
    finishedAt: string | null
    lastCheck: (Omit<CheckResult, 'at'> & { at: string }) | null
    history: (Omit<HistoryEntry, 'at'> & { at: string })[]
    policy: RolloutState['plan']
  })
}

export function rolloutView (route: string, state: RolloutState | null, weights: Record<Version, number>, revision: number): RolloutView {
  if (state === null) return { route, phase: 'idle', weights, revision, rollout: null }
  const iso = (t: number | null): string | null => t === null ? null : new Date(t).toISOString()
  const running = state.phase !== 'succeeded' && state.phase !== 'failed' && state.phase !== 'paused'
  return {
    route,
    phase: state.phase,
    weights,
    revision,
    rollout: {
      ...(rolloutSummary(state) as RolloutSummary),
      steps: state.plan.steps.map(stepView),
      failures: state.failures,
      failureThreshold: state.plan.analysis.failureThreshold,
      startedAt: iso(state.startedAt) as string,
      startedBy: state.startedBy,
      nextCheckAt: running ? iso(state.nextCheckAt) : null,
      watchUntil: iso(state.watchUntil),
      waitingFor: state.waitingFor,
      pauseUntil: iso(state.pauseUntil ?? null),
      finishedAt: iso(state.finishedAt),
      lastCheck: state.lastCheck === null ? null : { ...state.lastCheck, at: iso(state.lastCheck.at) as string },
      history: state.history.map((h) => ({ ...h, at: iso(h.at) as string })),
      policy: state.plan,
    },
  }
}
