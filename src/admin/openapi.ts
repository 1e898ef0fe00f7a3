// The OpenAPI 3.1 document of the admin server (GET /api/v1/openapi.json), built from the TypeBox
// schemas the API validates with: JSON Schema, OpenAPI 3.1's dialect, with TypeBox's symbol keys
// dropped and every sub-schema equal to a named one turned into a `$ref` to components.schemas.

import { Type, type TSchema } from '@sinclair/typebox'
import { AnalysisSchema, DurationSchema, ByteSizeSchema, RulesSchema, ShadowSchema, UpstreamSchema, WebhookSchema, WeightsSchema } from '../config/schema.ts'
import { ShadowBodySchema, SwitchBodySchema, UpstreamsBodySchema } from '../state/route-changes.ts'
import {
  CohortCookieParamSchema, CohortSchema, CohortUserIdParamSchema, ErrorReplySchema, EventLimitParamSchema, EventSinceParamSchema, EventsSchema, FailSafeSchema, FlagParamSchema, FleetSchema,
  HealthSchema, IfMatchHeaderSchema, PhaseSchema, MismatchesSchema, MismatchLimitParamSchema, ReadySchema, RolloutBodySchema,
  RolloutPlanSchema, RolloutSummarySchema, RolloutViewSchema, RouteHistogramsSchema, RouteNameParamSchema, RouteStatsSchema,
  RouteViewSchema, ScopeParamSchema, SeriesParamSchema, UpstreamsViewSchema, WeightsViewSchema, WindowParamSchema, WorkersSchema,
} from './api-schemas.ts'

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

/** What this document promises of itself (a client checks the rest against OpenAPI's own schema). */
const OpenApiDocumentSchema = Type.Object({
  openapi: Type.String({ pattern: '^3\\.1\\.[0-9]+$' }),
  info: Type.Object({ title: Type.String(), version: Type.String() }),
  paths: Type.Record(Type.String({ pattern: '^/' }), Type.Object({})),
  components: Type.Object({}),
})

/** The shared schemas, by their name in `components.schemas`. */
const COMPONENTS: Readonly<Record<string, TSchema>> = {
  Error: ErrorReplySchema,
  Route: RouteViewSchema,
  Upstreams: UpstreamsViewSchema,
  Weights: WeightsViewSchema,
  ShadowSettings: ShadowSchema,
  Rules: RulesSchema,
  Cohort: CohortSchema,
  RolloutSummary: RolloutSummarySchema,
  Rollout: RolloutViewSchema,
  RolloutPlan: RolloutPlanSchema,
  FailSafe: FailSafeSchema,
  Stats: RouteStatsSchema,
  StatsHistograms: RouteHistogramsSchema,
  Mismatches: MismatchesSchema,
  Events: EventsSchema,
  Workers: WorkersSchema,
  Fleet: FleetSchema,
  Health: HealthSchema,
  Readiness: ReadySchema,
  WeightsBody: WeightsSchema,
  UpstreamsBody: UpstreamsBodySchema,
  ShadowBody: ShadowBodySchema,
  SwitchBody: SwitchBodySchema,
  RolloutBody: RolloutBodySchema,
  Phase: PhaseSchema,
  Duration: DurationSchema,
  ByteSize: ByteSizeSchema,
  Upstream: UpstreamSchema,
  Webhook: WebhookSchema,
  Analysis: AnalysisSchema,
}

interface Parameter { name: string; in: 'path' | 'query' | 'header'; schema: TSchema; required?: boolean; description?: string }

interface Reply {
  description: string
  /** JSON body; absent with `text`. */
  schema?: TSchema
  /** A non-JSON body: its media type. */
  text?: string
  /** The answer carries `ETag: "<revision>"`. */
  etag?: boolean
}

interface Operation {
  operationId: string
  summary: string
  description?: string
  /** Under /api/v1: a bearer token when one is configured, loopback Host otherwise. */
  api: boolean
  parameters?: Parameter[]
  body?: { schema: TSchema; required: boolean }
  replies: Record<string, Reply>
}

const route: Parameter = { name: 'route', in: 'path', required: true, schema: RouteNameParamSchema, description: 'The route\'s name.' }
const ifMatch: Parameter = { name: 'If-Match', in: 'header', schema: IfMatchHeaderSchema }
const force: Parameter = { name: 'force', in: 'query', schema: FlagParamSchema, description: 'Write even while a rollout drives the route.' }

const error = (description: string): Reply => ({ description, schema: ErrorReplySchema })
const ERRORS_OF_API: Record<string, Reply> = {
  401: error('A token is configured and the request carries none of them (WEIR_ERR_ADMIN_UNAUTHORIZED; WWW-Authenticate: Bearer).'),
  403: error('Without a token: a Host that is not loopback (WEIR_ERR_ADMIN_HOST); a cross-site write (WEIR_ERR_ADMIN_CROSS_SITE).'),
  default: error('Any other failure (WEIR_ERR_INTERNAL, a store that cannot be read).'),
}
const NOT_FOUND = { 404: error('No route has this name (WEIR_ERR_ADMIN_ROUTE_NOT_FOUND).') }
const INVALID = { 400: error('A parameter or the body is invalid; `problems` names the fields (WEIR_ERR_ADMIN_INVALID).') }
const ERRORS_OF_WRITE: Record<string, Reply> = {
  ...INVALID,
  ...NOT_FOUND,
  409: error('A rollout drives the route (WEIR_ERR_ADMIN_ROLLOUT_ACTIVE), or the rollout cannot do that in its phase (WEIR_ERR_ADMIN_ROLLOUT_STATE).'),
  412: error('If-Match names a revision the route is no longer at (WEIR_ERR_ADMIN_STALE_REVISION).'),
  413: error('The body is larger than 64 KiB (WEIR_ERR_ADMIN_BODY_TOO_LARGE).'),
  415: error('A write that is not application/json (WEIR_ERR_ADMIN_MEDIA_TYPE).'),
  503: error('The change could not be persisted (WEIR_ERR_ADMIN_STATE_WRITE_FAILED, WEIR_ERR_STATE_WRITE_FAILED, WEIR_ERR_STATE_UNAVAILABLE); nothing changed.'),
}

const routeWrite = (operationId: string, summary: string, body: TSchema, description: string): Operation => ({
  operationId,
  summary,
  description,
  api: true,
  parameters: [route, ifMatch, force],
  body: { schema: body, required: true },
  replies: { 200: { description: 'The route after the change.', schema: RouteViewSchema, etag: true }, ...ERRORS_OF_WRITE },
})

const BODYLESS = 'Needs no body: sent without one, it needs no Content-Type either (`curl -X POST`).'

/** A route write that takes no body (reset, rollback): the route after it, like every route write. */
const bodylessRouteWrite = (operationId: string, summary: string, description: string, after: string): Operation => ({
  operationId,
  summary,
  description: `${description} ${BODYLESS}`,
  api: true,
  parameters: [route, ifMatch, force],
  replies: { 200: { description: after, schema: RouteViewSchema, etag: true }, ...ERRORS_OF_WRITE },
})

const rolloutCommand = (command: string, description: string, parameters: Parameter[] = []): Operation => ({
  operationId: `${command}Rollout`,
  summary: `${command[0]?.toUpperCase()}${command.slice(1)} the route's rollout`,
  description: `${description} ${BODYLESS}`,
  api: true,
  parameters: [route, ...parameters],
  replies: { 200: { description: 'The rollout after the command.', schema: RolloutViewSchema, etag: true }, ...ERRORS_OF_WRITE },
})

/** Every endpoint of the admin server, by path (OpenAPI's `{param}` form) and method. */
const PATHS: Record<string, Record<string, Operation>> = {
  '/healthz': {
    get: { operationId: 'health', summary: 'Liveness', api: false, replies: { 200: { description: 'The process runs.', schema: HealthSchema } } },
  },
  '/readyz': {
    get: {
      operationId: 'ready',
      summary: 'Readiness',
      api: false,
      replies: {
        200: { description: 'Ready for traffic.', schema: ReadySchema },
        503: { description: 'Draining (SIGTERM or SIGINT): send no new connections.', schema: ReadySchema },
      },
    },
  },
  '/metrics': {
    get: { operationId: 'metrics', summary: 'Prometheus metrics', api: false, replies: { 200: { description: 'Prometheus text exposition (docs/metrics.md).', text: 'text/plain' } } },
  },
  '/ui': {
    get: { operationId: 'dashboard', summary: 'The web dashboard', description: 'Its page (also at /ui/); the page\'s own files are under /ui/ (docs/dashboard.md). No token: they hold no data, the page calls /api/v1 with one.', api: false, replies: { 200: { description: 'The dashboard\'s page.', text: 'text/html' } } },
  },
  '/api/v1/openapi.json': {
    get: {
      operationId: 'openApi',
      summary: 'This document',
      description: 'Served under the same rules as the rest of /api/v1 (a token when one is configured).',
      api: true,
      replies: { 200: { description: 'The OpenAPI 3.1 document of the admin server.', schema: OpenApiDocumentSchema }, ...ERRORS_OF_API },
    },
  },
  '/api/v1/routes': {
    get: { operationId: 'listRoutes', summary: 'Every route, in config order', api: true, replies: { 200: { description: 'The routes.', schema: Type.Array(RouteViewSchema) } } },
  },
  '/api/v1/routes/{route}': {
    get: { operationId: 'getRoute', summary: 'One route', api: true, parameters: [route], replies: { 200: { description: 'The route.', schema: RouteViewSchema, etag: true }, ...NOT_FOUND } },
  },
  '/api/v1/routes/{route}/weights': {
    put: routeWrite('setWeights', 'Set the weights', WeightsSchema, 'Percent, at most 2 decimals, sum 100; an omitted version is 0; a version without an upstream must be 0.'),
  },
  '/api/v1/routes/{route}/upstreams': {
    put: routeWrite('setUpstreams', 'Point versions at new deployments', UpstreamsBodySchema, 'null takes a version\'s upstream away, only at weight 0; stable cannot be removed.'),
  },
  '/api/v1/routes/{route}/rules': {
    put: routeWrite('setRules', 'Replace the match rules', RulesSchema, 'The config file\'s `rules` form, judged by the same checks (a regex must be linear-time; a version needs an upstream); [] removes every rule. The file\'s rules apply again when they are edited in the file, or on reset. Event `rules.set`.'),
  },
  '/api/v1/routes/{route}/cohort': {
    get: {
      operationId: 'getCohort',
      summary: 'The version a user id or bucket cookie gets now',
      description: 'Exactly one of userId or cookie. Answered from the snapshot the data path serves, through the same code as the proxy (the user id\'s hash or the cookie\'s bucket, then the weights\' ranges; docs/routing.md). The override and match rules are not applied: they need a request.',
      api: true,
      parameters: [
        route,
        { name: 'userId', in: 'query', schema: CohortUserIdParamSchema },
        { name: 'cookie', in: 'query', schema: CohortCookieParamSchema },
      ],
      replies: { 200: { description: 'The cohort.', schema: CohortSchema }, ...INVALID, ...NOT_FOUND },
    },
  },
  '/api/v1/routes/{route}/shadow': {
    put: routeWrite('setShadow', 'Change the shadow settings', ShadowBodySchema, 'The fields given replace the ones in force; `ignore` is replaced whole. Allowed while a rollout drives the route.'),
  },
  '/api/v1/routes/{route}/switch': {
    post: routeWrite('switchRoute', 'Blue/green switch: 100 % to one colour', SwitchBodySchema, 'The version needs an upstream.'),
  },
  '/api/v1/routes/{route}/reset': {
    post: bodylessRouteWrite('resetRoute', 'Serve the config file\'s values again',
      'Writes the file\'s weights, upstreams, shadow settings and rules as the route\'s live state (event `reset`); an active rollout needs ?force=true. No body, or {}.',
      'The route after the reset.'),
  },
  '/api/v1/routes/{route}/rollback': {
    post: bodylessRouteWrite('rollback', 'Instant revert: stable 100 %',
      'An active rollout ends failed and its rollback webhooks are called; never refused for a running rollout.',
      'The route after the revert.'),
  },
  '/api/v1/routes/{route}/rollout': {
    get: { operationId: 'getRollout', summary: 'The route\'s rollout', api: true, parameters: [route], replies: { 200: { description: 'Phase, step, weights, last check, history.', schema: RolloutViewSchema, etag: true }, ...NOT_FOUND } },
    post: {
      operationId: 'startRollout',
      summary: 'Start a rollout',
      description: `The body's fields replace the route's configured policy (analysis, guard, smoke field by field), then the defaults apply. No body (or {}): the route's own policy. ${BODYLESS}`,
      api: true,
      parameters: [route, ifMatch, force],
      body: { schema: RolloutBodySchema, required: false },
      replies: { 201: { description: 'The rollout, started.', schema: RolloutViewSchema, etag: true }, ...ERRORS_OF_WRITE },
    },
  },
  '/api/v1/routes/{route}/rollout/pause': { post: rolloutCommand('pause', 'Stops checks and steps; the fast guard keeps watching.') },
  '/api/v1/routes/{route}/rollout/resume': { post: rolloutCommand('resume', 'Continues where it paused, with a fresh check window.') },
  '/api/v1/routes/{route}/rollout/promote': {
    post: rolloutCommand('promote', 'The next step now, without its check (blue/green: switch, or finalize when watching).',
      [{ name: 'full', in: 'query', schema: FlagParamSchema, description: 'Promote at once.' }]),
  },
  '/api/v1/routes/{route}/rollout/abort': { post: rolloutCommand('abort', 'Instant revert, phase failed, rollback webhooks called.') },
  '/api/v1/routes/{route}/stats': {
    get: {
      operationId: 'getStats',
      summary: 'Per-version stats over a window',
      description: 'Latencies in milliseconds to 3 significant digits (they are within 2 %). series=N: also the window in N-second intervals (this replica\'s). histograms=true: this replica\'s exact histograms instead (what a fleet merges).',
      api: true,
      parameters: [
        route,
        { name: 'window', in: 'query', schema: WindowParamSchema },
        { name: 'scope', in: 'query', schema: ScopeParamSchema },
        { name: 'histograms', in: 'query', schema: FlagParamSchema },
        { name: 'series', in: 'query', schema: SeriesParamSchema },
      ],
      replies: {
        200: { description: 'The stats (or, with histograms=true, the histograms).', schema: Type.Union([RouteStatsSchema, RouteHistogramsSchema]) },
        ...INVALID,
        ...NOT_FOUND,
      },
    },
  },
  '/api/v1/routes/{route}/shadow/mismatches': {
    get: {
      operationId: 'getMismatches',
      summary: 'The last shadow mismatches, newest first',
      api: true,
      parameters: [route, { name: 'limit', in: 'query', schema: MismatchLimitParamSchema }],
      replies: { 200: { description: 'The sample.', schema: MismatchesSchema }, ...INVALID, ...NOT_FOUND },
    },
  },
  '/api/v1/events': {
    get: {
      operationId: 'getEvents',
      summary: 'The event log, oldest first',
      api: true,
      parameters: [{ name: 'since', in: 'query', schema: EventSinceParamSchema }, { name: 'limit', in: 'query', schema: EventLimitParamSchema }],
      replies: { 200: { description: 'A page of events.', schema: EventsSchema }, ...INVALID },
    },
  },
  '/api/v1/workers': {
    get: { operationId: 'getWorkers', summary: 'The worker processes', api: true, replies: { 200: { description: 'Each worker slot.', schema: WorkersSchema } } },
  },
  '/api/v1/fleet': {
    get: { operationId: 'getFleet', summary: 'This replica, the leader, the members', api: true, replies: { 200: { description: 'The fleet.', schema: FleetSchema } } },
  },
}

/** A schema as plain JSON: no symbol keys (TypeBox's), no `errorMessage` (weir's messages, not JSON Schema). */
function plain (schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema, (key, value: unknown) => (key === 'errorMessage' ? undefined : value))) as Json
}

/** Key-order independent text of a JSON value, to find a named schema wherever it is used. */
function canonical (value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k] as Json)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Replaces every sub-schema (not `schema` itself) equal to a named one with a `$ref` to it. */
function withRefs (schema: Json, names: ReadonlyMap<string, string>, root = true): Json {
  if (!isObject(schema)) return schema
  if (!root) {
    const name = names.get(canonical(schema))
    if (name !== undefined) return { $ref: `#/components/schemas/${name}` }
  }
  const out: JsonObject = { ...schema }
  const sub = (value: Json): Json => withRefs(value, names, false)
  const map = (value: Json | undefined): Json | undefined =>
    isObject(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, sub(v)])) : value
  if (isObject(schema.properties)) out.properties = map(schema.properties) as Json
  if (isObject(schema.patternProperties)) out.patternProperties = map(schema.patternProperties) as Json
  if (isObject(schema.additionalProperties)) out.additionalProperties = sub(schema.additionalProperties)
  if (isObject(schema.items)) out.items = sub(schema.items)
  for (const key of ['anyOf', 'allOf', 'oneOf'] as const) {
    const list = schema[key]
    if (Array.isArray(list)) out[key] = list.map(sub)
  }
  return out
}

function jsonContent (schema: TSchema, names: ReadonlyMap<string, string>): JsonObject {
  return { 'application/json': { schema: withRefs(plain(schema), names, false) } }
}

function operationOf (op: Operation, names: ReadonlyMap<string, string>): JsonObject {
  const replies = op.api ? { ...op.replies, ...Object.fromEntries(Object.entries(ERRORS_OF_API).filter(([status]) => op.replies[status] === undefined)) } : op.replies
  const responses: JsonObject = {}
  for (const [status, reply] of Object.entries(replies)) {
    const response: JsonObject = { description: reply.description }
    if (reply.schema !== undefined) response.content = jsonContent(reply.schema, names)
    if (reply.text !== undefined) response.content = { [reply.text]: { schema: { type: 'string' } } }
    if (reply.etag === true) response.headers = { ETag: { description: 'The route\'s revision, quoted: send it back as If-Match.', schema: { type: 'string', pattern: '^"[0-9]+"$' } } }
    if (status === '401') response.headers = { 'WWW-Authenticate': { schema: { type: 'string', const: 'Bearer realm="weir-admin"' } } }
    responses[status] = response
  }
  const out: JsonObject = { operationId: op.operationId, summary: op.summary }
  if (op.description !== undefined) out.description = op.description
  if (op.parameters !== undefined) {
    out.parameters = op.parameters.map((p) => {
      const schema = plain(p.schema) as JsonObject
      const parameter: JsonObject = { name: p.name, in: p.in, required: p.required ?? false, schema }
      const description = p.description ?? schema.description
      if (description !== undefined) parameter.description = description
      return parameter
    })
  }
  if (op.body !== undefined) out.requestBody = { required: op.body.required, content: jsonContent(op.body.schema, names) }
  out.responses = responses
  out.security = op.api ? [{ bearerAuth: [] }, {}] : []
  return out
}

/** The admin server's OpenAPI 3.1 document (plain JSON, the same on every call). */
export function buildOpenApiDocument (version: string): JsonObject {
  const names = new Map<string, string>()
  const schemas: JsonObject = {}
  for (const [name, schema] of Object.entries(COMPONENTS)) {
    const json = plain(schema)
    if (!names.has(canonical(json))) names.set(canonical(json), name)
  }
  for (const [name, schema] of Object.entries(COMPONENTS)) schemas[name] = withRefs(plain(schema), names)
  const paths: JsonObject = {}
  for (const [path, operations] of Object.entries(PATHS)) {
    paths[path] = Object.fromEntries(Object.entries(operations).map(([method, op]) => [method, operationOf(op, names)]))
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'weir admin API',
      version,
      description: 'The admin server of weir, a progressive-delivery edge proxy: liveness, readiness, metrics and the /api/v1 control API (docs/admin-api.md).',
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'admin.token, $WEIR_ADMIN_TOKEN or a named admin.tokens entry. Without any configured, /api/v1 serves loopback callers only (Host must name a loopback address) and needs none.',
        },
      },
    },
  }
}
