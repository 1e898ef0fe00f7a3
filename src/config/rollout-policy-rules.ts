// The rules of a rollout policy the schema cannot express: increasing weight steps of at most two
// decimals, match steps checked as a route rule's match, pause and match steps only in canary
// rollouts, intervals of at least a second, unique webhook names, URLs without credentials.
// Shared by the config file's `rollout` and POST .../rollout.

import type { Problem } from '../errors.ts'
import { hasAtMostTwoDecimals, ruleConditions, TWO_DECIMALS } from './rules.ts'
import type { RolloutPolicy } from './schema.ts'
import { durationMs } from './units.ts'

/** The smallest interval: the rolling stats count whole seconds. */
const MIN_INTERVAL_MS = 1000

/** The rules of a schema-valid policy the schema cannot express; appends one problem per broken rule. */
export function rolloutPolicyProblems (policy: RolloutPolicy, path: string, problems: Problem[]): void {
  let before: { at: number; weight: number } | undefined
  policy.steps.forEach((step, i) => {
    const at = `${path}.steps[${i}]`
    if (typeof step !== 'number') {
      if (policy.strategy === 'bluegreen') {
        problems.push({ path: at, reason: 'a blue/green rollout switches at once: pause and match steps are for canary rollouts (use watch, or POST .../rollout/pause)' })
      } else if ('match' in step) {
        ruleConditions(step.match, `${at}.match`, problems)
      } else if (step.pause !== true && durationMs(step.pause) < MIN_INTERVAL_MS) {
        problems.push({ path: `${at}.pause`, reason: 'must be at least 1s, or true (until resumed)' })
      }
      return
    }
    if (!hasAtMostTwoDecimals(step)) problems.push({ path: at, reason: TWO_DECIMALS })
    if (before !== undefined && step <= before.weight) {
      problems.push({ path: at, reason: `must be greater than the ${before.at === i - 1 ? '' : 'weight '}step before it (${before.weight})` })
    }
    before = { at: i, weight: step }
  })
  if (policy.progressDeadline !== undefined && durationMs(policy.progressDeadline) < MIN_INTERVAL_MS) {
    problems.push({ path: `${path}.progressDeadline`, reason: 'must be at least 1s' })
  }
  if (durationMs(policy.interval) < MIN_INTERVAL_MS) problems.push({ path: `${path}.interval`, reason: 'must be at least 1s (stats are kept per second)' })
  if (durationMs(policy.watch) < MIN_INTERVAL_MS) problems.push({ path: `${path}.watch`, reason: 'must be at least 1s' })
  if (policy.smoke !== undefined && durationMs(policy.smoke.timeout) === 0) problems.push({ path: `${path}.smoke.timeout`, reason: 'must be more than 0' })
  const names = new Set<string>()
  policy.webhooks.forEach((hook, i) => {
    if (names.has(hook.name)) problems.push({ path: `${path}.webhooks[${i}].name`, reason: `"${hook.name}" is used by another webhook` })
    names.add(hook.name)
    if (durationMs(hook.timeout) === 0) problems.push({ path: `${path}.webhooks[${i}].timeout`, reason: 'must be more than 0' })
    try {
      const url = new URL(hook.url)
      if (url.username !== '' || url.password !== '') problems.push({ path: `${path}.webhooks[${i}].url`, reason: 'must not carry credentials (use a token in metadata or the query)' })
    } catch {
      problems.push({ path: `${path}.webhooks[${i}].url`, reason: 'is not a valid URL' })
    }
  })
}
