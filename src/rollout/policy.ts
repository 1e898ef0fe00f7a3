// A rollout policy from its input form (config file or POST body, durations as strings) to the
// plan the controller runs (numbers only): the body merged over the route's policy, defaults from
// the schema, and the rules the schema cannot express.

import { Value } from '@sinclair/typebox/value'
import type { RuleCondition } from '../config/model.ts'
import { rolloutPolicyProblems } from '../config/rollout-policy-rules.ts'
import { ruleConditions } from '../config/rules.ts'
import { RolloutPolicySchema, type RolloutPolicy, type RuleInput } from '../config/schema.ts'
import { durationMs } from '../config/units.ts'
import type { Problem } from '../errors.ts'
import { isPlainObject } from '../is-plain-object.ts'
import type { Strategy, WebhookType } from '../vocabulary.ts'

export interface WebhookPlan {
  name: string
  type: WebhookType
  url: string
  timeoutMs: number
  metadata: Record<string, string>
  /** The body's shape (absent in plans persisted before formats existed: json). Never the secret (see secretOf). */
  format?: 'json' | 'slack'
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
  /** Absent in plans persisted before metric checks existed: read as none. */
  prometheus?: PrometheusPlan | null
  metrics?: MetricPlan[]
}

export interface PrometheusPlan {
  url: string
  timeoutMs: number
  maxQueryErrors: number
  /** The environment variable holding the bearer token, read at each query; null: none. */
  bearerTokenEnv: string | null
  headers: Record<string, string>
}

/** A custom check: a templated PromQL query and the range its one sample must fall in. */
export interface MetricPlan {
  name: string
  query: string
  thresholdRange: { min?: number; max?: number }
}

/**
 * A canary step as planned: a weight in basis points; a pause (`pauseMs` null: until resumed;
 * `pause` as written, for the API); or a match-rule step (its conditions, and `match` as written).
 * Rollouts persisted before pause and match steps existed have weights only.
 */
export type PlanStep =
  | number
  | { pause: string | number | true; pauseMs: number | null }
  | { match: RuleInput['match']; conditions: RuleCondition[] }

export interface ProgressDeadlinePlan {
  ms: number
  /** As written (`30s`), for reasons and the API. */
  text: string
  /** What passing it does. */
  action: 'fail' | 'pause'
}

/** A complete, checked policy: what a rollout runs and keeps in its persisted state. */
export interface RolloutPlan {
  strategy: Strategy
  /** Canary steps; the weight steps increase. */
  steps: PlanStep[]
  intervalMs: number
  analysis: AnalysisPlan
  guard: { maxErrorRate: number; minRequests: number }
  smoke: { path: string; timeoutMs: number } | null
  watchMs: number
  webhooks: WebhookPlan[]
  /** Absent in rollouts persisted before it existed: none. */
  progressDeadline?: ProgressDeadlinePlan | null
}

/** The plan of a valid policy (see rolloutPolicyProblems). */
export function planOf (policy: RolloutPolicy): RolloutPlan {
  return {
    strategy: policy.strategy,
    steps: policy.steps.map(planStep),
    intervalMs: durationMs(policy.interval),
    analysis: analysisPlanOf(policy.analysis),
    guard: { ...policy.guard },
    smoke: policy.smoke === undefined ? null : { path: policy.smoke.path, timeoutMs: durationMs(policy.smoke.timeout) },
    watchMs: durationMs(policy.watch),
    webhooks: policy.webhooks.map((h) => ({ name: h.name, type: h.type, url: h.url, timeoutMs: durationMs(h.timeout), metadata: { ...h.metadata }, format: h.format })),
    progressDeadline: policy.progressDeadline === undefined
      ? null
      : { ms: durationMs(policy.progressDeadline), text: durationText(policy.progressDeadline), action: policy.onProgressDeadline },
  }
}

function analysisPlanOf ({ prometheus, metrics, ...limits }: RolloutPolicy['analysis']): AnalysisPlan {
  return {
    ...limits,
    prometheus: prometheus === undefined
      ? null
      : {
          url: prometheus.url,
          timeoutMs: durationMs(prometheus.timeout),
          maxQueryErrors: prometheus.maxQueryErrors,
          bearerTokenEnv: prometheus.bearerTokenEnv ?? null,
          headers: { ...prometheus.headers },
        },
    metrics: metrics.map((m) => ({ name: m.name, query: m.query, thresholdRange: { ...m.thresholdRange } })),
  }
}

function planStep (step: RolloutPolicy['steps'][number]): PlanStep {
  if (typeof step === 'number') return Math.round(step * 100)
  if ('pause' in step) return { pause: step.pause, pauseMs: step.pause === true ? null : durationMs(step.pause) }
  return { match: step.match, conditions: ruleConditions(step.match, 'match', []) }
}

/** A duration as the operator reads it: `30s` stays `30s`, a number of milliseconds gets `ms`. */
function durationText (d: string | number): string {
  return typeof d === 'number' ? `${d}ms` : d
}

/** A step's weight in basis points, or null for a pause or match step. */
export function stepWeightBp (step: PlanStep | undefined): number | null {
  return typeof step === 'number' ? step : null
}

/** A step as GET .../rollout shows it: a weight in percent, `{ pause: "5m" }`, `{ pause: true }` or `{ match: … }`. */
export function stepView (step: PlanStep): number | { pause: string | number | true } | { match: RuleInput['match'] } {
  if (typeof step === 'number') return step / 100
  if ('pause' in step) return { pause: step.pause }
  return { match: step.match }
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
  const secretProblems = bodySecrets(given)
  if (secretProblems.length > 0) return { policy: null, problems: secretProblems }
  const merged: Record<string, unknown> = Value.Clone(configured ?? {}) as Record<string, unknown>
  for (const [key, value] of Object.entries(given)) {
    const base = merged[key]
    merged[key] = MERGED_KEYS.has(key) && isPlainObject(value) && isPlainObject(base) ? { ...base, ...value } : value
  }
  const withDefaults = Value.Default(RolloutPolicySchema, merged)
  const problems = schemaProblems(withDefaults)
  if (problems.length > 0) return { policy: null, problems }
  const policy = withDefaults as RolloutPolicy
  rolloutPolicyProblems(policy, 'rollout', problems)
  return problems.length > 0 ? { policy: null, problems } : { policy, problems: [] }
}

/**
 * A webhook's secret comes from the config file only (where `${ENV}` fills it): a request body
 * would put it in the persisted state, and the admin API never takes nor shows one. A webhook
 * of the body with the configured one's name and URL is signed with its secret.
 */
function bodySecrets (given: object): Problem[] {
  const webhooks = (given as { webhooks?: unknown }).webhooks
  if (!Array.isArray(webhooks)) return []
  return webhooks.flatMap((hook, i) => isPlainObject(hook) && 'secret' in hook
    ? [{ path: `rollout.webhooks[${i}].secret`, reason: 'is read from the config file only (the route\'s rollout.webhooks or webhookSecret): a webhook of the same name and URL is signed with it' }]
    : [])
}
