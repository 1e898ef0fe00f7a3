// A real rollout state (as the controller persists it) for tests that need a route a rollout
// drives without running one: a canary at the given step of [10, 50, 100], checks an hour apart.

import { Value } from '@sinclair/typebox/value'
import { RolloutPolicySchema, type RolloutPolicy } from '../../src/config/schema.ts'
import { planOf } from '../../src/rollout/policy.ts'
import { advance, start, type RolloutState } from '../../src/rollout/step.ts'

export function runningRollout (step = 1, now = Date.now()): RolloutState {
  const policy = Value.Default(RolloutPolicySchema, { steps: [10, 50, 100], interval: '1h' }) as RolloutPolicy
  let state = start(planOf(policy), { stable: 10_000, canary: 0, green: 0 }, now, 'test', 'test-rollout').state
  for (let i = 0; i < step; i++) state = advance(state, { kind: 'command', command: 'promote', now, actor: 'test' }).state
  return state
}
