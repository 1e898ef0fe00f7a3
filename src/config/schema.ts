// THE config schema: validation, TypeScript types, defaults and the generated
// config/weir.schema.json all come from here. Cross-field rules live in rules.ts.

import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { PROXIED_METHODS, STRATEGIES, WEBHOOK_TYPES } from '../vocabulary.ts'

/** `errorMessage` replaces TypeBox's generic text ("Expected union value") in `weir validate`. */
function described<T extends TSchema> (schema: T, errorMessage: string): T {
  return Object.assign(schema, { errorMessage })
}

export const DurationSchema = described(Type.Union([
  Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$' }),
  Type.Integer({ minimum: 0 }),
], { description: 'A duration: "250ms", "30s", "5m", "1h", or a number of milliseconds.' }),
'must be a duration like 250ms, 30s, 5m, 1h or a whole number of milliseconds')

export const ByteSizeSchema = described(Type.Union([
  Type.String({ pattern: '^[0-9]+(b|kb|mb|gb)$' }),
  Type.Integer({ minimum: 0 }),
], { description: 'A size: "512kb", "10mb" (binary multiples), or a number of bytes.' }),
'must be a size like 512kb, 10mb or a whole number of bytes')

export const UpstreamUrlSchema = Type.String({
  pattern: '^https?://',
  description: 'An upstream origin, http:// or https://, without a path.',
})

export const UpstreamSchema = described(Type.Union([
  UpstreamUrlSchema,
  Type.Array(UpstreamUrlSchema, { minItems: 1, maxItems: 64 }),
], { description: 'One upstream URL, or a list balanced round-robin within the version.' }),
'must be an http(s):// URL or a non-empty list of them')

export const UpstreamsSchema = Type.Object({
  stable: UpstreamSchema,
  canary: Type.Optional(UpstreamSchema),
  green: Type.Optional(UpstreamSchema),
  shadow: Type.Optional(UpstreamSchema),
}, { additionalProperties: false })

export const WeightSchema = Type.Number({ minimum: 0, maximum: 100, description: 'Percent, at most two decimals.' })

export const WeightsSchema = Type.Object({
  stable: Type.Optional(WeightSchema),
  canary: Type.Optional(WeightSchema),
  green: Type.Optional(WeightSchema),
}, { additionalProperties: false, description: 'Percent of traffic per version; must sum to 100.' })

const HeaderNameSchema = Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', maxLength: 128 })
const CookieNameSchema = Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$', maxLength: 128 })

const withDefault = <T extends TSchema>(schema: T, value: unknown): T => ({ ...schema, default: value })

/** Per-route timeouts: each unset one falls back to the top-level `timeouts`. */
export const TimeoutsSchema = Type.Object({
  connect: Type.Optional(DurationSchema),
  headers: Type.Optional(DurationSchema),
  bodyIdle: Type.Optional(DurationSchema),
  requestBody: Type.Optional(DurationSchema),
}, { additionalProperties: false })

/** Top-level timeouts: the defaults of every route. */
export const DefaultTimeoutsSchema = Type.Object({
  connect: withDefault(DurationSchema, '2s'),
  headers: withDefault(DurationSchema, '30s'),
  bodyIdle: withDefault(DurationSchema, '60s'),
  requestBody: withDefault(DurationSchema, '30s'),
  clientHeaders: withDefault(DurationSchema, '30s'),
  clientIdle: withDefault(DurationSchema, '5s'),
}, { additionalProperties: false, default: {}, description: 'Defaults of every route; clientHeaders bounds how long a client may take to send its headers, clientIdle how long an idle keep-alive connection stays open.' })

export const StickinessSchema = Type.Object({
  userId: Type.Optional(Type.Object({
    header: Type.Optional(HeaderNameSchema),
    cookie: Type.Optional(CookieNameSchema),
  }, { additionalProperties: false, description: 'Where the user id is read from; the header wins when both are set.' })),
  cookie: Type.Optional(Type.Object({
    name: Type.String({ ...CookieNameSchema, default: 'weir_b' }),
    maxAge: Type.Integer({ minimum: 1, default: 86400, description: 'Seconds.' }),
  }, { additionalProperties: false, default: {}, description: 'The signed bucket cookie for clients without a user id.' })),
}, { additionalProperties: false, default: {} })

/** How a rule tests one value: exactly one of these. */
const ValueTestSchema = {
  exact: Type.Optional(Type.String({ maxLength: 4096 })),
  prefix: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  regex: Type.Optional(Type.String({ minLength: 1, description: 'Matched on V8\'s linear-time engine; patterns that backtrack exponentially elsewhere are refused.' })),
  present: Type.Optional(Type.Literal(true)),
}

export const RuleSchema = Type.Object({
  match: Type.Object({
    header: Type.Optional(Type.Object({ name: HeaderNameSchema, ...ValueTestSchema }, { additionalProperties: false })),
    cookie: Type.Optional(Type.Object({ name: CookieNameSchema, ...ValueTestSchema }, { additionalProperties: false })),
    query: Type.Optional(Type.Object({ name: Type.String({ minLength: 1, maxLength: 256 }), ...ValueTestSchema }, { additionalProperties: false })),
  }, { additionalProperties: false, description: 'Every condition given must hold.' }),
  version: Type.Union([Type.Literal('stable'), Type.Literal('canary'), Type.Literal('green')]),
}, { additionalProperties: false })

export const RulesSchema = Type.Array(RuleSchema, { maxItems: 64, description: 'Before the weights, the first rule that matches sends the request to its version.' })

export const OverrideSchema = Type.Object({
  header: Type.Optional(HeaderNameSchema),
  cookie: Type.Optional(CookieNameSchema),
  secret: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'When set, an override counts only with this value in the x-weir-override-secret header (compared in constant time).' })),
  from: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 256, description: 'When set, an override counts only from these client addresses or CIDRs (the client address X-Forwarded-For gives through trustedProxies).' })),
}, { additionalProperties: false, description: 'Opt-in: lets testers force a version that has an upstream, even at weight 0. A route without it ignores the override header.' })

/** Methods the proxy forwards; a shadow copies only those its route lists. */
export const ShadowMethodSchema = Type.Union(PROXIED_METHODS.map((m) => Type.Literal(m)),
  { errorMessage: `must be one of ${PROXIED_METHODS.join(', ')}` })

export const ShadowSchema = Type.Object({
  percent: Type.Number({ minimum: 0, maximum: 100, default: 0, description: 'Percent of requests also copied to the shadow upstream (at most two decimals).' }),
  maxInFlight: Type.Integer({ minimum: 1, maximum: 100_000, default: 100, description: 'Copies in flight at once; more are dropped (and counted).' }),
  maxBodyBytes: withDefault(ByteSizeSchema, '64kb'),
  methods: Type.Array(ShadowMethodSchema, {
    minItems: 1,
    uniqueItems: true,
    default: ['GET', 'HEAD', 'OPTIONS'],
    description: 'Methods copied; by default only the safe ones. PUT, DELETE, PATCH, POST are copied only when listed.',
  }),
  timeout: withDefault(DurationSchema, '5s'),
  compare: Type.Boolean({ default: false, description: 'Compare each shadow response with the served one (status, headers, body digest).' }),
  ignore: Type.Object({
    headers: Type.Array(HeaderNameSchema, { default: [], maxItems: 256, description: 'Response headers left out of the comparison (besides Date, Server and the other volatile ones).' }),
    json: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { default: [], maxItems: 256, description: 'JSON fields left out of the body comparison: $.meta.time, items[*].id, ["a.b"].' }),
  }, { additionalProperties: false, default: {} }),
}, { additionalProperties: false, description: 'Copies of a share of requests sent to the shadow upstream; never served to clients.' })

export const AnalysisSchema = Type.Object({
  minRequests: Type.Integer({ minimum: 1, default: 50, description: 'Requests per version per check below which the check holds (no data means halt, not promote).' }),
  maxErrorRate: Type.Number({ minimum: 0, maximum: 1, default: 0.01, description: 'Canary error rate, absolute (0..1).' }),
  maxErrorRatio: Type.Number({ minimum: 1, default: 2, description: 'Canary error rate / stable error rate.' }),
  maxP99Ms: Type.Number({ exclusiveMinimum: 0, default: 500, description: 'Canary p99 latency in ms, absolute.' }),
  maxP99Ratio: Type.Number({ minimum: 1, default: 1.5, description: 'Canary p99 / stable p99.' }),
  p99ToleranceMs: Type.Number({ minimum: 0, default: 5, description: 'A canary p99 within this many ms of stable\'s passes the ratio check (sub-millisecond p99s jitter by more than any ratio).' }),
  significance: Type.Number({ exclusiveMinimum: 0, maximum: 0.5, default: 0.01, description: 'p-value below which a limit counts as broken; above it, a check over its limit holds (inconclusive).' }),
  failureThreshold: Type.Integer({ minimum: 1, default: 2, description: 'Failed checks before an automatic revert.' }),
  prometheus: Type.Optional(Type.Object({
    url: Type.String({ pattern: '^https?://', description: 'The Prometheus server (or a compatible API: Thanos, Mimir, VictoriaMetrics); queried at GET <url>/api/v1/query.' }),
    timeout: withDefault(DurationSchema, '5s'),
    maxQueryErrors: Type.Integer({ minimum: 1, default: 3, description: 'Consecutive query errors of a metric check after which it fails instead of holding.' }),
    bearerTokenEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Name of an environment variable of weir holding a bearer token sent with every query (the token itself is never stored or shown).' })),
    headers: Type.Optional(Type.Record(HeaderNameSchema, Type.String({ maxLength: 4096 }), { description: 'Sent with every query (e.g. X-Scope-OrgID); stored and shown with the rollout, so no secrets here.' })),
  }, { additionalProperties: false, description: 'The Prometheus the metric checks query.' })),
  metrics: Type.Array(Type.Object({
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'The check is named metric:<name>.' }),
    query: Type.String({ minLength: 1, maxLength: 8192, description: 'PromQL with {{route}}, {{target}} (or {{version}}: canary or green) and {{interval}} (the policy interval, e.g. 30s); must give one sample.' }),
    thresholdRange: Type.Object({
      min: Type.Optional(Type.Number()),
      max: Type.Optional(Type.Number()),
    }, { additionalProperties: false, description: 'The value passes when min ≤ value ≤ max; either bound may be left out, not both.' }),
  }, { additionalProperties: false }), { default: [], maxItems: 16, description: 'Custom checks against analysis.prometheus, judged at every check beside the built-in ones.' }),
}, { additionalProperties: false, default: {} })

/** Shortest HMAC key a webhook is signed with (the file's `secret`/`webhookSecret`, or WEIR_WEBHOOK_SECRET). */
export const WEBHOOK_SECRET_MIN_LENGTH = 16

export const WebhookSchema = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
  type: Type.Union(WEBHOOK_TYPES.map((t) => Type.Literal(t)), { errorMessage: `must be one of ${WEBHOOK_TYPES.join(', ')}` }),
  url: Type.String({ pattern: '^https?://', description: 'Called with POST and a JSON payload; 2xx passes.' }),
  timeout: withDefault(DurationSchema, '5s'),
  metadata: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Sent as-is in the payload.' })),
  secret: Type.Optional(Type.String({
    minLength: WEBHOOK_SECRET_MIN_LENGTH,
    description: 'HMAC-SHA256 key of the X-Weir-Signature header (e.g. ${HOOK_SECRET}); config file only, never shown; default: webhookSecret, else $WEIR_WEBHOOK_SECRET.',
  })),
  format: Type.Union([Type.Literal('json'), Type.Literal('slack')], {
    default: 'json',
    errorMessage: 'must be json or slack',
    description: 'json: weir\'s payload; slack: a Slack incoming-webhook body ({ text, blocks }) describing it in words.',
  }),
}, { additionalProperties: false })

export const RolloutPolicySchema = Type.Object({
  strategy: Type.Union(STRATEGIES.map((s) => Type.Literal(s)), { default: 'canary' }),
  steps: Type.Array(Type.Union([
    Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'The canary\'s weight in percent.' }),
    Type.Object({
      pause: Type.Union([DurationSchema, Type.Literal(true)], { description: 'Wait this long, then take the next step; true: until POST .../rollout/resume.' }),
    }, { additionalProperties: false }),
    Type.Object({
      match: RuleSchema.properties.match,
    }, { additionalProperties: false, description: 'Only requests that match reach the canary (its weight stays as it was) until the next weight step.' }),
  ], { errorMessage: 'must be a weight in percent (0 < w ≤ 100), { pause: DURATION | true } or { match: { header | cookie | query: … } }' }), {
    minItems: 1,
    maxItems: 100,
    default: [1, 5, 10, 25, 50, 100],
    description: 'Canary steps: weights in percent, increasing, pauses and match-rule steps; after the last one passes, the canary is promoted.',
  }),
  interval: withDefault(DurationSchema, '30s'),
  analysis: AnalysisSchema,
  guard: Type.Object({
    maxErrorRate: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'Over the last second; more reverts at once.' }),
    minRequests: Type.Integer({ minimum: 1, default: 20, description: 'Requests the error rate needs; this many failures in a row also revert.' }),
  }, { additionalProperties: false, default: {}, description: 'The fast guard, checked ten times a second whatever the interval.' }),
  smoke: Type.Optional(Type.Object({
    path: Type.String({ pattern: '^/', description: 'GET through the proxy, forced to green with the controller\'s own smoke token (whatever the route\'s override); 2xx passes.' }),
    timeout: withDefault(DurationSchema, '5s'),
  }, { additionalProperties: false })),
  watch: withDefault(DurationSchema, '1m'),
  webhooks: Type.Array(WebhookSchema, { default: [], maxItems: 32 }),
  progressDeadline: Type.Optional(DurationSchema),
  onProgressDeadline: Type.Union([Type.Literal('fail'), Type.Literal('pause')], { default: 'fail', description: 'What a passed progressDeadline does: fail (revert) or pause the rollout.' }),
}, { additionalProperties: false, description: 'Default policy for POST /api/v1/routes/:route/rollout.' })

const HealthCheckSchema = Type.Object({
  path: Type.String({ pattern: '^/', description: 'GET this path on each host of the version (the Host header is the upstream URL\'s host).' }),
  interval: withDefault(DurationSchema, '5s'),
  timeout: withDefault(DurationSchema, '2s'),
  healthyThreshold: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'Passes in a row that bring an unhealthy host back.' }),
  unhealthyThreshold: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'Failures in a row that take a host out.' }),
  expectedStatuses: Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, maxItems: 100, default: [200], description: 'Statuses that pass (any other, a timeout or a connection failure fails).' }),
}, { additionalProperties: false, description: 'Active health checks of every host of the version; hosts start healthy.' })

const VersionHostsSchema = Type.Object({
  balance: Type.Optional(Type.Union([Type.Literal('round-robin'), Type.Literal('least-request')], { description: 'How requests spread over the version\'s hosts; default: the route\'s hosts.balance.' })),
  healthCheck: Type.Optional(HealthCheckSchema),
}, { additionalProperties: false })

export const UpstreamPolicySchema = Type.Object({
  balance: Type.Union([Type.Literal('round-robin'), Type.Literal('least-request')], { default: 'round-robin', description: 'round-robin takes the hosts in turn; least-request picks the less busy of two random hosts.' }),
  outlierDetection: Type.Union([Type.Object({
    consecutiveFailures: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'Failed attempts in a row (connection failures, resets, timeouts, 5xx) that eject a host.' }),
    baseEjectionTime: withDefault(DurationSchema, '30s'),
    maxEjectionTime: withDefault(DurationSchema, '5m'),
    maxEjectedPercent: Type.Integer({ minimum: 0, maximum: 100, default: 50, description: 'Most of a version\'s hosts out at once (at least one may be; stable always keeps one).' }),
  }, { additionalProperties: false }), Type.Literal(false)], { default: {}, description: 'Passive health: hosts that keep failing are ejected for a time that grows with each ejection; false: never.' }),
  retry: Type.Union([Type.Object({
    budgetPercent: Type.Number({ minimum: 0, maximum: 100, default: 20, description: 'Retries allowed, in percent of the version\'s requests over the window.' }),
    minRetries: Type.Integer({ minimum: 0, maximum: 10000, default: 3, description: 'Retries allowed per window whatever the traffic (so a quiet route can retry too).' }),
    window: withDefault(DurationSchema, '10s'),
  }, { additionalProperties: false }), Type.Literal(false)], { default: {}, description: 'One retry on another host of the same version for an idempotent request without a body that failed before any response byte; false: none.' }),
  stable: Type.Optional(VersionHostsSchema),
  canary: Type.Optional(VersionHostsSchema),
  green: Type.Optional(VersionHostsSchema),
}, { additionalProperties: false, description: 'How a version\'s hosts are balanced, checked, ejected and retried.' })

export const RouteSchema = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9-]+$', maxLength: 63 }),
  match: Type.Optional(Type.Object({
    host: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })],
      { description: 'Host names (case-insensitive, port ignored); "*.example.com" matches any subdomain.' })),
    pathPrefix: Type.String({ pattern: '^/', default: '/' }),
  }, { additionalProperties: false, default: {} })),
  upstreams: UpstreamsSchema,
  weights: Type.Optional(withDefault(WeightsSchema, { stable: 100 })),
  stickiness: StickinessSchema,
  override: Type.Optional(Type.Union([OverrideSchema, Type.Literal(false)], { description: 'No override key (or false): no override.' })),
  rules: Type.Optional(RulesSchema),
  shadow: withDefault(ShadowSchema, {}),
  upstreamPolicy: withDefault(UpstreamPolicySchema, {}),
  failover: Type.Boolean({ default: true, description: 'Fail an idempotent canary/green request over to stable once when it fails before any response byte.' }),
  passHost: Type.Boolean({ default: true, description: 'Send the client Host header upstream (false: the upstream URL host).' }),
  vary: Type.Boolean({ default: true, description: 'Add to every response the request headers this route\'s version choice reads (Vary: Cookie, the user-id header, the override and rule headers), merged with the upstream\'s Vary; only on routes with a canary or green upstream.' }),
  tls: Type.Optional(Type.Object({
    insecureSkipVerify: Type.Boolean({ default: false }),
    ca: Type.Optional(Type.String({ description: 'Path of a PEM file of extra CA certificates for https upstreams.' })),
  }, { additionalProperties: false })),
  timeouts: Type.Optional(TimeoutsSchema),
  maxBodyBytes: Type.Optional(ByteSizeSchema),
  rollout: Type.Optional(RolloutPolicySchema),
}, { additionalProperties: false })

export const ConfigSchema = Type.Object({
  listen: Type.Object({
    host: Type.String({ default: '0.0.0.0' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    tls: Type.Optional(Type.Object({
      cert: Type.String({ description: 'Path of the PEM certificate chain.' }),
      key: Type.String({ description: 'Path of the PEM private key.' }),
    }, { additionalProperties: false })),
  }, { additionalProperties: false, default: {} }),
  admin: Type.Object({
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 9901 }),
    token: Type.Optional(Type.String({ description: 'Bearer token of /api/v1 (actor "admin" in the event log); falls back to $WEIR_ADMIN_TOKEN.' })),
    tokens: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), Type.String({ minLength: 1 }), {
      additionalProperties: false,
      description: 'More bearer tokens by name (e.g. { ci: ${CI_TOKEN} }); the name is the actor in the event log.',
    })),
  }, { additionalProperties: false, default: {} }),
  ops: Type.Optional(Type.Object({
    host: Type.String({ default: '0.0.0.0' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 9902 }),
  }, { additionalProperties: false, description: 'A listener of its own for GET /healthz, /readyz and /metrics only (probes and Prometheus), so /api/v1 can stay on loopback; absent: none.' })),
  state: Type.Object({
    file: Type.String({ default: './data/state.json' }),
    events: Type.Optional(Type.String({ description: 'The JSON-lines event log; default: events.jsonl next to the state file.' })),
    etcd: Type.Optional(Type.Object({
      endpoints: Type.Array(Type.String({ pattern: '^https?://[^/\\s]+/?$' }), { minItems: 1, description: 'etcd client URLs, e.g. http://127.0.0.1:2379.' }),
      prefix: Type.String({ default: '/weir/', minLength: 1, description: 'Key prefix of this fleet: every replica of one fleet uses the same.' }),
      timeout: withDefault(DurationSchema, '2s'),
      username: Type.Optional(Type.String({ minLength: 1 })),
      password: Type.Optional(Type.String()),
      tls: Type.Optional(Type.Object({
        ca: Type.String({ description: 'Path of the CA certificate (PEM) etcd is checked against.' }),
        cert: Type.Optional(Type.String({ description: 'Path of the client certificate (PEM).' })),
        key: Type.Optional(Type.String({ description: 'Path of the client key (PEM).' })),
      }, { additionalProperties: false })),
    }, { additionalProperties: false, description: 'Live state in etcd instead of state.file: replicas sharing it act as one fleet.' })),
  }, { additionalProperties: false, default: {} }),
  fleet: Type.Object({
    id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$', description: 'This replica\'s name in the fleet; default: the host name and the admin port.' })),
    advertise: Type.Optional(Type.String({ pattern: '^https?://[^/\\s]+/?$', description: 'The URL other replicas reach this admin API at; default: http://<admin host>:<admin port>.' })),
    leaseTtl: Type.Optional(DurationSchema),
  }, { additionalProperties: false, default: {} }),
  cookieSecret: Type.Optional(Type.String({ minLength: 16, description: 'HMAC key of the bucket cookie; when unset, one is generated and kept next to the state file.' })),
  webhookSecret: Type.Optional(Type.String({ minLength: WEBHOOK_SECRET_MIN_LENGTH, description: 'Signs every rollout webhook request without a secret of its own (X-Weir-Signature, docs/rollouts.md); default: $WEIR_WEBHOOK_SECRET.' })),
  trustedProxies: Type.Array(Type.String(), { default: [], description: 'Addresses or CIDRs of hops whose X-Forwarded-* headers are trusted.' }),
  versionHeader: Type.Union([HeaderNameSchema, Type.Literal(false)], { default: 'x-weir-version', description: 'Response header naming the version that answered; false disables it.' }),
  maxBodyBytes: withDefault(ByteSizeSchema, '10mb'),
  maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1048576, default: 16384 }),
  maxHeaders: Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: 'Most request header lines (fields) a request may have; more is refused with 431 WEIR_ERR_TOO_MANY_HEADERS.' }),
  tracing: Type.Object({
    generate: Type.Boolean({ default: true, description: 'Start a W3C trace (a new traceparent) for a request without a valid one; false: only propagate incoming traces.' }),
  }, { additionalProperties: false, default: {}, description: 'W3C Trace Context: a valid incoming traceparent reaches the upstream with its trace id and weir\'s own span id as the parent id; tracestate is passed on unchanged.' }),
  accessLog: Type.Union([
    Type.Literal('off'),
    Type.Literal('on'),
    Type.Object({
      sample: Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Share of requests logged, 0 < sample ≤ 1.' }),
    }, { additionalProperties: false }),
  ], {
    default: 'off',
    errorMessage: 'must be off, on or { sample: 0 < share ≤ 1 }',
    description: 'One JSON line per proxied request (route, version, decision, status, bytes, duration, upstream, request and trace ids) on weir\'s log, at info whatever logLevel says: off, on, or { sample: 0.1 } for a share of requests.',
  }),
  timeouts: DefaultTimeoutsSchema,
  drainTimeout: withDefault(DurationSchema, '30s'),
  workers: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], {
    default: 'auto',
    description: 'Processes that run the data path: auto is one per CPU this process may use; 1 runs everything in one process.',
  }),
  logLevel: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
    Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info' }),
  routes: Type.Array(RouteSchema, { minItems: 1 }),
}, { additionalProperties: false, $id: 'https://weir.dev/schema/config.json', title: 'weir config' })

export type ConfigInput = Static<typeof ConfigSchema>
export type RouteInput = Static<typeof RouteSchema>
export type RuleInput = Static<typeof RuleSchema>
export type Weights = Static<typeof WeightsSchema>
export type RolloutPolicy = Static<typeof RolloutPolicySchema>
export type ShadowInput = Static<typeof ShadowSchema>
export type MetricCheckInput = Static<typeof AnalysisSchema>['metrics'][number]
