// The TypeBox schemas of the admin API's parameters (the handlers check them by these) and of
// its replies: route, rollout, stats, mismatches, events, workers, fleet, error (docs/admin-api.md,
// "Shapes"). The OpenAPI document (openapi.ts) publishes them with the request bodies' schemas.

import { Type, type TOptional, type TSchema } from '@sinclair/typebox'
import { AnalysisSchema, DurationSchema, RolloutPolicySchema, RouteSchema, RuleSchema, RulesSchema, ShadowSchema } from '../config/schema.ts'
import { MISMATCH_SAMPLE_SIZE } from '../shadow/mismatch-log.ts'
import {
  BUCKETS, DECISION_REASONS, MAX_WINDOW_SECONDS, MISMATCH_KINDS, ROLLOUT_PHASES, STRATEGIES, UPSTREAM_NAMES, VERSIONS, WEBHOOK_TYPES,
} from '../vocabulary.ts'

const literals = <T extends string>(values: readonly T[], options: Record<string, unknown> = {}) =>
  Type.Union(values.map((v) => Type.Literal(v)), options)
const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
/** Closed objects: a field the document does not name fails the tests that check replies against it. */
const object = <P extends Parameters<typeof Type.Object>[0]>(properties: P, description?: string) =>
  Type.Object(properties, { additionalProperties: false, ...(description === undefined ? {} : { description }) })
const Iso = Type.String({ format: 'date-time' })
const Count = Type.Integer({ minimum: 0 })
const Ms = Type.Integer({ minimum: 0, description: 'Milliseconds.' })

// ---- parameters ---------------------------------------------------------------------------------

export const RouteNameParamSchema = RouteSchema.properties.name
export const WindowParamSchema = Type.Integer({ minimum: 1, maximum: MAX_WINDOW_SECONDS, default: 60, description: 'Seconds, counting the current partial one.' })
export const SeriesParamSchema = Type.Integer({
  minimum: 1,
  maximum: MAX_WINDOW_SECONDS,
  description: 'Seconds per interval: the window cut into intervals at unix multiples of it (series=10&window=600: the last 10 minutes in 10-s points). Absent: no series. Not with scope=fleet.',
})
export const EventLimitParamSchema = Type.Integer({ minimum: 1, maximum: 1000, default: 1000, description: 'Events per page at most.' })
export const EventSinceParamSchema = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Events with a greater id, oldest first; absent: the newest.' })
export const MismatchLimitParamSchema = Type.Integer({ minimum: 1, maximum: MISMATCH_SAMPLE_SIZE, default: MISMATCH_SAMPLE_SIZE, description: 'Samples at most, newest first.' })
export const ScopeParamSchema = literals(['self', 'fleet'], { default: 'self', description: 'fleet: over every replica of the fleet (docs/fleet.md).' })
/** `true` or `false`; absent is false. */
export const FlagParamSchema = Type.Boolean({ default: false })
/** A route revision, plain, quoted or weak (`7`, `"7"`, `W/"7"`); the pattern is what writeOptions reads. */
export const IfMatchHeaderSchema = Type.String({
  pattern: '^\\s*(?:W/)?"?([0-9]{1,15})"?\\s*$',
  description: 'Refuse the write with 412 unless the route is still at this revision (its ETag).',
})

// ---- replies ------------------------------------------------------------------------------------

const Percent = Type.Number({ minimum: 0, maximum: 100 })
export const PhaseSchema = literals(ROLLOUT_PHASES, { description: 'A rollout\'s phase.' })
const StrategySchema = literals(STRATEGIES)
const VerdictSchema = literals(['pass', 'fail', 'hold'])
const UrlListSchema = Type.Array(Type.String(), { minItems: 1 })

export const ErrorReplySchema = object({
  error: Type.String({ pattern: '^WEIR_ERR_[A-Z0-9_]+$', description: 'A code of the README\'s errors table.' }),
  message: Type.String(),
  problems: Type.Optional(Type.Array(object({ path: Type.String(), reason: Type.String() }), { description: 'The fields at fault, named as in the body or the query.' })),
  requestId: Type.Optional(Type.String()),
}, 'Every refusal and failure.')

export const WeightsViewSchema = object(Object.fromEntries(VERSIONS.map((v) => [v, Percent])) as Record<typeof VERSIONS[number], typeof Percent>,
  'Percent per version; they sum to 100.')

export const UpstreamsViewSchema = object({
  stable: UrlListSchema,
  canary: Type.Optional(UrlListSchema),
  green: Type.Optional(UrlListSchema),
  shadow: Type.Optional(UrlListSchema),
}, 'The upstreams in force per version (config or live).')

export const RolloutSummarySchema = object({
  id: Type.String(),
  strategy: StrategySchema,
  phase: PhaseSchema,
  step: Type.Integer({ minimum: -1 }),
  weight: Percent,
  reason: nullable(Type.String()),
}, 'The rollout driving the route, or the last one that ran.')

export const RouteViewSchema = object({
  name: Type.String(),
  upstreams: UpstreamsViewSchema,
  weights: WeightsViewSchema,
  revision: Count,
  rollout: nullable(RolloutSummarySchema),
  shadow: ShadowSchema,
  rules: RulesSchema,
  source: literals(['config', 'live']),
  updatedAt: nullable(Iso),
}, 'A route: GET /routes/{route}, and the answer of every write to it.')

export const CohortSchema = object({
  route: Type.String(),
  userId: nullable(Type.String({ description: 'The user id asked about; null when a bucket cookie was.' })),
  bucket: Type.Integer({ minimum: 0, maximum: BUCKETS - 1 }),
  version: literals(VERSIONS),
  reason: literals(DECISION_REASONS.filter((r) => r === 'user' || r === 'cookie'), { description: 'user: the bucket is the user id\'s hash; cookie: the bucket cookie\'s.' }),
}, 'GET /routes/{route}/cohort: the version the weights in force give a user id or a bucket cookie (override and rules are not applied: they need a request).')

export const CohortUserIdParamSchema = Type.String({ minLength: 1, maxLength: 1024, description: 'A user id, as the route\'s stickiness reads it from the header or cookie.' })
export const CohortCookieParamSchema = Type.String({ minLength: 1, maxLength: 1024, description: 'The value of the route\'s bucket cookie (signed).' })

const CheckOutcomeSchema = object({
  name: Type.String({ description: 'requests, error-rate, error-ratio, p99, p99-ratio, smoke, webhook:<name>, metric:<name>, guard.' }),
  verdict: VerdictSchema,
  value: nullable(Type.Number()),
  threshold: nullable(Type.Number({ description: 'A metric check: its max, else its min (both in range).' })),
  pValue: Type.Optional(nullable(Type.Number())),
  range: Type.Optional(object({ min: nullable(Type.Number()), max: nullable(Type.Number()) }, 'A metric check\'s thresholdRange; null: no such bound.')),
  queryErrors: Type.Optional(Type.Integer({ minimum: 1, description: 'A metric check whose query failed: failures in a row, this one included.' })),
  detail: Type.String(),
})

const CheckResultSchema = object({
  at: Iso,
  verdict: VerdictSchema,
  checks: Type.Array(CheckOutcomeSchema),
  gate: Type.Optional(object({
    type: Type.Optional(literals(['confirm-rollout', 'confirm-traffic-increase', 'confirm-promotion'])),
    ok: Type.Boolean(),
    detail: Type.String(),
  })),
})

const PauseSchema = Type.Union([DurationSchema, Type.Literal(true)], { description: 'As written; true: until resumed.' })

const HistoryEntrySchema = object({ at: Iso, phase: PhaseSchema, step: Type.Integer({ minimum: -1 }), weight: Percent, note: Type.String() })

export const RolloutPlanSchema = object({
  strategy: StrategySchema,
  steps: Type.Array(Type.Union([
    Type.Integer({ minimum: 1, maximum: 10_000, description: 'A weight in hundredths of a percent.' }),
    object({ pause: PauseSchema, pauseMs: nullable(Ms) }),
    object({
      match: RuleSchema.properties.match,
      conditions: Type.Array(object({
        source: literals(['header', 'cookie', 'query']),
        name: Type.String(),
        op: literals(['exact', 'prefix', 'regex', 'present']),
        value: Type.Optional(Type.String()),
      })),
    }),
  ])),
  intervalMs: Ms,
  analysis: object({
    minRequests: Type.Integer(),
    maxErrorRate: Type.Number(),
    maxErrorRatio: Type.Number(),
    maxP99Ms: Type.Number(),
    maxP99Ratio: Type.Number(),
    p99ToleranceMs: Type.Number(),
    significance: Type.Number(),
    failureThreshold: Type.Integer(),
    prometheus: Type.Optional(nullable(object({
      url: Type.String(),
      timeoutMs: Ms,
      maxQueryErrors: Type.Integer({ minimum: 1 }),
      bearerTokenEnv: nullable(Type.String()),
      headers: Type.Record(Type.String(), Type.String()),
    }))),
    metrics: Type.Optional(Type.Array(object({
      name: Type.String(),
      query: Type.String(),
      thresholdRange: object({ min: Type.Optional(Type.Number()), max: Type.Optional(Type.Number()) }),
    }))),
  } satisfies Record<keyof typeof AnalysisSchema.properties, TSchema>),
  guard: object({ maxErrorRate: Type.Number(), minRequests: Type.Integer() }),
  smoke: nullable(object({ path: Type.String(), timeoutMs: Ms })),
  watchMs: Ms,
  webhooks: Type.Array(object({
    name: Type.String(),
    type: literals(WEBHOOK_TYPES),
    url: Type.String(),
    timeoutMs: Ms,
    metadata: Type.Record(Type.String(), Type.String()),
    format: Type.Optional(literals(['json', 'slack'] as const)),
  })),
  progressDeadline: Type.Optional(nullable(object({ ms: Ms, text: Type.String(), action: literals(['fail', 'pause']) }))),
}, 'The plan a rollout runs, in numbers.')

export const FailSafeSchema = object({
  rollout: Type.String(),
  since: Iso,
  detail: Type.String(),
  weights: WeightsViewSchema,
  failedWrites: Count,
}, 'This replica serves a fast guard\'s revert the store does not hold yet (docs/fleet.md).')

export const RolloutViewSchema = object({
  route: Type.String(),
  phase: Type.Union([PhaseSchema, Type.Literal('idle')]),
  weights: WeightsViewSchema,
  revision: Count,
  rollout: nullable(object({
    ...RolloutSummarySchema.properties,
    steps: Type.Array(Type.Union([Percent, object({ pause: PauseSchema }), object({ match: RuleSchema.properties.match })]),
      { description: 'Weights in percent, pause steps, match-rule steps (as written).' }),
    failures: Count,
    failureThreshold: Type.Integer({ minimum: 1 }),
    startedAt: Iso,
    startedBy: Type.String(),
    nextCheckAt: nullable(Iso),
    watchUntil: nullable(Iso),
    waitingFor: nullable(Type.String({ description: 'A gate (confirm-rollout, confirm-traffic-increase, confirm-promotion) or pause (a pause step).' })),
    pauseUntil: nullable(Iso),
    finishedAt: nullable(Iso),
    lastCheck: nullable(CheckResultSchema),
    history: Type.Array(HistoryEntrySchema, { maxItems: 100 }),
    policy: RolloutPlanSchema,
  })),
  leader: nullable(Type.String({ description: 'The replica whose controller drives rollouts.' })),
  failSafe: nullable(FailSafeSchema),
}, 'A route\'s rollout: GET /routes/{route}/rollout, and the answer of every rollout command.')

const WindowStatsSchema = object({
  requests: Count,
  errors: Count,
  errorRate: Type.Number({ minimum: 0, maximum: 1 }),
  p50: nullable(Type.Number({ minimum: 0, description: 'Milliseconds, 3 significant digits; null without requests.' })),
  p90: nullable(Type.Number({ minimum: 0 })),
  p99: nullable(Type.Number({ minimum: 0 })),
})

const SeriesPointSchema = object({
  t: Type.Integer({ description: 'Unix seconds the interval ends at (exclusive).' }),
  seconds: Type.Number({ minimum: 0, description: 'Seconds of the interval the window covers: less for the first (clipped to the window) and the current one.' }),
  requests: Count,
  rps: Type.Number({ minimum: 0, description: 'requests / seconds.' }),
  errors: Count,
  errorRate: Type.Number({ minimum: 0, maximum: 1 }),
  p99: nullable(Type.Number({ minimum: 0, description: 'Milliseconds, 3 significant digits; null without requests.' })),
})

/** One optional entry per upstream name (the versions that have stats). */
const perUpstream = (schema: TSchema) =>
  object(Object.fromEntries(UPSTREAM_NAMES.map((v) => [v, Type.Optional(schema)])) as Record<typeof UPSTREAM_NAMES[number], TOptional<TSchema>>)

export const RouteStatsSchema = object({
  window: WindowParamSchema,
  scope: Type.Optional(Type.Literal('fleet')),
  replicas: Type.Optional(Type.Array(Type.String(), { description: 'scope=fleet: the replicas counted.' })),
  missing: Type.Optional(Type.Array(Type.String(), { description: 'scope=fleet: the replicas that did not answer in time.' })),
  versions: perUpstream(WindowStatsSchema),
  series: Type.Optional(object({
    interval: SeriesParamSchema,
    versions: perUpstream(Type.Array(SeriesPointSchema, { description: 'Oldest first, the same intervals for every version; the last holds the current second and is still counting.' })),
  }, '?series=N: this replica\'s window cut into N-second intervals.')),
  shadow: object({
    compared: Count,
    mismatches: Count,
    mismatchRate: Type.Number({ minimum: 0, maximum: 1 }),
    byKind: object(Object.fromEntries(MISMATCH_KINDS.map((k) => [k, Count])) as Record<typeof MISMATCH_KINDS[number], typeof Count>),
    pausedForMs: Ms,
  }),
}, 'GET /routes/{route}/stats: per version over the window.')

export const RouteHistogramsSchema = object({
  window: WindowParamSchema,
  replica: Type.String({ description: 'The replica (fleet.id) that answered: a fleet member asking another checks it reached the one it meant.' }),
  histograms: perUpstream(object({
    requests: Count,
    errors: Count,
    buckets: Type.Array(Count, { description: '[bucket, count, …] for the buckets in use (rolling-stats.ts).' }),
  })),
}, 'GET /routes/{route}/stats?histograms=true: this replica\'s latency histograms, exact.')

export const MismatchesSchema = object({
  route: Type.String(),
  recorded: Count,
  samples: Type.Array(object({
    at: Iso,
    requestId: Type.String(),
    method: Type.String(),
    url: Type.String(),
    primary: object({ status: Type.Integer() }),
    shadow: object({ status: Type.Integer() }),
    kinds: Type.Array(literals(MISMATCH_KINDS)),
    diff: Type.Array(object({ path: Type.String(), primary: Type.String(), shadow: Type.String() }), { maxItems: 10 }),
  })),
}, 'GET /routes/{route}/shadow/mismatches.')

export const EventsSchema = object({
  events: Type.Array(object({
    id: Type.Integer({ minimum: 1 }),
    time: Iso,
    actor: Type.String(),
    route: Type.Optional(Type.String()),
    action: Type.String(),
    old: Type.Optional(Type.Unknown()),
    new: Type.Optional(Type.Unknown()),
    reason: Type.Optional(Type.Unknown()),
    requestId: Type.Optional(Type.String()),
    replica: Type.Optional(Type.String()),
  })),
  lastId: Count,
}, 'GET /events (docs/state.md#event-log).')

export const WorkersSchema = object({
  workers: Type.Array(object({
    worker: Type.Integer({ minimum: 1 }),
    pid: nullable(Type.Integer()),
    state: literals(['starting', 'running', 'draining', 'stopped']),
    requests: Count,
    restarts: Count,
    startedAt: nullable(Iso),
  })),
}, 'GET /workers: empty in the single-process mode.')

export const FleetSchema = object({
  self: Type.String(),
  leader: nullable(Type.String()),
  members: Type.Array(object({ id: Type.String(), admin: Type.String() })),
}, 'GET /fleet.')

export const HealthSchema = object({ status: Type.Literal('ok') })
export const ReadySchema = object({ status: literals(['ready', 'draining']) })

/** What the blue/green and canary bodies of POST .../rollout may hold: any field of a policy, the merged ones field by field. */
const policy = RolloutPolicySchema.properties
export const RolloutBodySchema = Type.Partial(Type.Object({
  ...policy,
  analysis: Type.Partial(AnalysisSchema),
  guard: Type.Partial(policy.guard),
  smoke: Type.Partial(Type.Object(policy.smoke.properties, { additionalProperties: false })),
}, { additionalProperties: false, description: 'A rollout policy; omitted fields come from the route\'s configured policy, then the defaults.' }))
