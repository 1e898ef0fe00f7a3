// The rules of a rollout policy the schema cannot express: increasing weight steps of at most two
// decimals, match steps checked as a route rule's match, pause and match steps only in canary
// rollouts, intervals of at least a second, unique webhook and metric names, URLs without
// credentials, metric queries with known template variables, ranges with min ≤ max. Shared by
// the config file's `rollout` and POST .../rollout.

import type { Problem } from '../errors.ts'
import { unknownQueryVariables, QUERY_VARIABLES } from './query-template.ts'
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
    urlProblems(hook.url, `${path}.webhooks[${i}].url`, 'use a token in metadata or the query', problems)
  })
  metricProblems(policy.analysis, `${path}.analysis`, problems)
}

function metricProblems (analysis: RolloutPolicy['analysis'], path: string, problems: Problem[]): void {
  const prometheus = analysis.prometheus
  if (prometheus !== undefined) {
    urlProblems(prometheus.url, `${path}.prometheus.url`, 'use bearerTokenEnv', problems)
    if (durationMs(prometheus.timeout) === 0) problems.push({ path: `${path}.prometheus.timeout`, reason: 'must be more than 0' })
  }
  if (analysis.metrics.length > 0 && prometheus === undefined) {
    problems.push({ path: `${path}.prometheus`, reason: 'is required by analysis.metrics (the Prometheus their queries go to)' })
  }
  const names = new Set<string>()
  analysis.metrics.forEach((metric, i) => {
    const at = `${path}.metrics[${i}]`
    if (names.has(metric.name)) problems.push({ path: `${at}.name`, reason: `"${metric.name}" is used by another metric` })
    names.add(metric.name)
    const unknown = unknownQueryVariables(metric.query)
    if (unknown.length > 0) {
      problems.push({ path: `${at}.query`, reason: `unknown template variable${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `{{${u}}}`).join(', ')} (known: ${QUERY_VARIABLES.map((v) => `{{${v}}}`).join(', ')})` })
    }
    const { min, max } = metric.thresholdRange
    if (min === undefined && max === undefined) problems.push({ path: `${at}.thresholdRange`, reason: 'needs min, max or both' })
    if (min !== undefined && max !== undefined && min > max) problems.push({ path: `${at}.thresholdRange`, reason: `min (${min}) must not be greater than max (${max})` })
  })
}

function urlProblems (value: string, path: string, instead: string, problems: Problem[]): void {
  try {
    const url = new URL(value)
    if (url.username !== '' || url.password !== '') problems.push({ path, reason: `must not carry credentials (${instead})` })
  } catch {
    problems.push({ path, reason: 'is not a valid URL' })
  }
}
