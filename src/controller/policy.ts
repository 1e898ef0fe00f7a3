// A rollout policy from its input form (config file or POST body, durations as strings) to the
// plan the controller runs (numbers only): the body merged over the route's policy, defaults from
// the schema, and the rules the schema cannot express.

import { Value } from '@sinclair/typebox/value'
import type { Problem } from '../config/rules.ts'
import { RolloutPolicySchema, type RolloutPolicy, type WebhookType } from '../config/schema.ts'
import { durationMs } from '../config/units.ts'

export interface WebhookPlan {
  name: string
  type: WebhookType
  url: string
  timeoutMs: number
  metadata: Record<string, string>
}

export interface AnalysisPlan {
  minRequests: number
  maxErrorRate: number
  maxErrorRatio: number
  maxP99Ms: number
  maxP99Ratio: number
  p99ToleranceMs: number
  significance: number
  failureThreshold: number
}

/** A complete, checked policy: what a rollout runs and keeps in its persisted state. */
export interface RolloutPlan {
  strategy: 'canary' | 'bluegreen'
  /** Canary weights in basis points, increasing. */
  steps: number[]
  intervalMs: number
  analysis: AnalysisPlan
  guard: { maxErrorRate: number; minRequests: number }
  smoke: { path: string; timeoutMs: number } | null
  watchMs: number
  webhooks: WebhookPlan[]
}

/** The smallest interval: the rolling stats count whole seconds. */
const MIN_INTERVAL_MS = 1000

/** The rules of a schema-valid policy the schema cannot express; appends one problem per broken rule. */
export function rolloutPolicyProblems (policy: RolloutPolicy, path: string, problems: Problem[]): void {
  policy.steps.forEach((step, i) => {
    if (Math.abs(step * 100 - Math.round(step * 100)) > 1e-6) problems.push({ path: `${path}.steps[${i}]`, reason: 'must have at most two decimals' })
    const before = policy.steps[i - 1]
    if (before !== undefined && step <= before) problems.push({ path: `${path}.steps[${i}]`, reason: `must be greater than the step before it (${before})` })
  })
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

/** The plan of a valid policy (see rolloutPolicyProblems). */
export function planOf (policy: RolloutPolicy): RolloutPlan {
  return {
    strategy: policy.strategy,
    steps: policy.steps.map((s) => Math.round(s * 100)),
    intervalMs: durationMs(policy.interval),
    analysis: { ...policy.analysis },
    guard: { ...policy.guard },
    smoke: policy.smoke === undefined ? null : { path: policy.smoke.path, timeoutMs: durationMs(policy.smoke.timeout) },
    watchMs: durationMs(policy.watch),
    webhooks: policy.webhooks.map((h) => ({ name: h.name, type: h.type, url: h.url, timeoutMs: durationMs(h.timeout), metadata: { ...h.metadata } })),
  }
}

/** Keys whose objects merge field by field; any other given key replaces the route's value whole. */
const MERGED_KEYS: ReadonlySet<string> = new Set(['analysis', 'guard', 'smoke'])

/**
 * The policy of a POST .../rollout: the body's fields over the route's configured policy, the
 * schema's defaults under both. Returns the problems instead when the result is not valid.
 */
export function resolvePolicy (configured: RolloutPolicy | undefined, body: unknown, schemaProblems: (value: unknown) => Problem[]):
  { policy: RolloutPolicy; problems: [] } | { policy: null; problems: Problem[] } {
  const given = body ?? {}
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    return { policy: null, problems: [{ path: 'rollout', reason: 'must be a JSON object (a rollout policy; {} for the route\'s own)' }] }
  }
  const merged: Record<string, unknown> = Value.Clone(configured ?? {}) as Record<string, unknown>
  for (const [key, value] of Object.entries(given)) {
    const base = merged[key]
    merged[key] = MERGED_KEYS.has(key) && isObject(value) && isObject(base) ? { ...base, ...value } : value
  }
  const withDefaults = Value.Default(RolloutPolicySchema, merged)
  const problems = schemaProblems(withDefaults)
  if (problems.length > 0) return { policy: null, problems }
  const policy = withDefaults as RolloutPolicy
  rolloutPolicyProblems(policy, 'rollout', problems)
  return problems.length > 0 ? { policy: null, problems } : { policy, problems: [] }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
