// The /api/v1 control API (docs/admin-api.md): routes, weights, upstreams, shadow settings,
// switch, rollback, rollouts, stats, shadow mismatches, events and its OpenAPI document. Every
// write is authenticated, refused when a browser on another site could have sent it, validated
// and written through the route writer (persisted before the reply, logged as an event); any
// refusal answers `{error, message, problems?, requestId}` and changes nothing. The one place
// domain errors become HTTP answers (through the admin app's error handler).

import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders } from 'node:http'
import type { TInteger } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AdminToken } from '../config/model.ts'
import { WeirError, type ErrorCode } from '../errors.ts'
import { sendError } from '../http/error-reply.ts'
import { readRollout, rolloutView, type FailSafeView, type RolloutView } from '../rollout/rollout-view.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import type { EventLog } from '../state/event-log.ts'
import { percentOf } from '../state/live-routes.ts'
import { resetChange, rulesChange, shadowChange, switchChange, upstreamsChange, weightsChange } from '../state/route-changes.ts'
import type { Caller, Change, RouteWriter, Written, WriteOptions } from '../state/route-writer.ts'
import type { RouteState, StateStore } from '../state/store.ts'
import { ROLLOUT_COMMANDS, type Command } from '../vocabulary.ts'
import type { FleetView } from '../fleet/fleet.ts'
import type { WorkerInfo } from '../workers/worker-set.ts'
import {
  EventLimitParamSchema, EventSinceParamSchema, IfMatchHeaderSchema, MismatchLimitParamSchema, ScopeParamSchema, SeriesParamSchema, WindowParamSchema,
} from './api-schemas.ts'
import { createAuthenticator, isCrossSiteWrite, isJsonContentType, isLoopbackHostHeader } from './guard.ts'
import { cohortOf } from './cohort.ts'
import { buildOpenApiDocument } from './openapi.ts'
import { routeView } from './views.ts'

/** Admin request bodies are small JSON objects; anything bigger is refused unread. */
export const ADMIN_BODY_LIMIT = 64 * 1024
/** Deeper JSON is refused before any validation walks it. */
const MAX_JSON_DEPTH = 32
const IF_MATCH = new RegExp(IfMatchHeaderSchema.pattern as string)
const SCOPES: readonly unknown[] = ScopeParamSchema.anyOf.map((s) => s.const)
const WEIR_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

export interface StatsSource {
  /**
   * Async: with workers, their latest readings are collected first; `fleet`: over every replica
   * (docs/fleet.md). `seriesSeconds` (self only): also the window in intervals of that length.
   */
  forRoute (route: string, windowSeconds: number, scope: 'self' | 'fleet', seriesSeconds: number | null): Promise<unknown>
  /** This replica's per-version histograms (sparse), for another replica's fleet-wide merge. */
  histograms (route: string, windowSeconds: number): Promise<unknown>
}

/** What shadow comparisons found, per route (see shadow/mismatch-log.ts). */
export interface MismatchSource {
  /** The most recent mismatches (newest first) and how many were recorded since start. */
  recent (route: string, limit: number): Promise<{ recorded: number; samples: unknown[] }>
}

/** The rollout operations (the built-in controller: it also calls the rollout's webhooks). */
export interface RolloutApi {
  startRollout (route: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RolloutView>
  command (route: string, command: Command, caller: Caller): Promise<RolloutView>
  rollback (route: string, options: WriteOptions, caller: Caller): Promise<Written>
  /** The fast guard's revert this replica serves alone because the store does not hold it yet; null when none. */
  failSafe (route: string): FailSafeView | null
}

export interface AdminApiOptions {
  writer: RouteWriter
  store: StateStore
  rollouts: RolloutApi
  events: EventLog
  stats: StatsSource
  mismatches: MismatchSource
  /** The worker processes (GET /api/v1/workers; empty in the single-process mode). */
  workers: () => Promise<readonly WorkerInfo[]>
  /** GET /api/v1/fleet: this replica, the leader, the members. */
  fleet: () => Promise<FleetView>
  /** The replica whose controller drives rollouts, for the rollout view. */
  leader: () => string | null
  /** This replica's fleet id, named in the histograms it serves to the others. */
  self: string
  /** The snapshot the data path serves now (GET cohort answers from it). */
  snapshot: () => DataPathSnapshot
  /** Bearer tokens; none: only loopback callers (by address and Host header) are served. */
  tokens: readonly AdminToken[]
}

const kActor = Symbol('weir.actor')
interface WithActor { [kActor]?: string }

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** Route config of the writes that need no body: sent without one, they need no content type (`curl -X POST`). */
const BODYLESS = { bodyless: true }

/** No body at all: neither a length above 0 nor a chunked one. */
function hasNoBody (headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length']
  return headers['transfer-encoding'] === undefined && (length === undefined || length === '0')
}

export async function adminApi (app: FastifyInstance, options: AdminApiOptions): Promise<void> {
  const { writer, store, rollouts, events, stats, mismatches } = options
  const authenticate = createAuthenticator(options.tokens)
  const open = options.tokens.length === 0

  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: ADMIN_BODY_LIMIT }, (_request, text, done) => {
    const source = text as string
    if (source.trim() === '') return done(null, undefined)
    let value: unknown
    try {
      value = JSON.parse(source)
    } catch (err) {
      return done(invalid(`body: not valid JSON (${(err as Error).message})`, 'body', 'is not valid JSON'))
    }
    if (depthExceeds(value, MAX_JSON_DEPTH)) {
      return done(invalid(`body: nests deeper than ${MAX_JSON_DEPTH} levels`, 'body', `nests deeper than ${MAX_JSON_DEPTH} levels`))
    }
    done(null, value)
  })

  app.addHook('onRequest', async (request, reply) => {
    const headers = request.headers
    const write = WRITE_METHODS.has(request.method)
    if (open && !isLoopbackHostHeader(headers.host)) return refuse(reply, 'WEIR_ERR_ADMIN_HOST')
    if (write && isCrossSiteWrite(headers)) return refuse(reply, 'WEIR_ERR_ADMIN_CROSS_SITE')
    const actor = open ? 'local' : authenticate(headers.authorization)
    if (actor === null) {
      reply.header('www-authenticate', 'Bearer realm="weir-admin"')
      return refuse(reply, 'WEIR_ERR_ADMIN_UNAUTHORIZED')
    }
    ;(request as WithActor)[kActor] = actor
    // Checked before the body is read: a form post or text/plain never reaches a parser. A write
    // that needs no body may come without one and without a content type (no browser form sends that).
    if (write && !isJsonContentType(headers['content-type']) &&
      !(headers['content-type'] === undefined && hasNoBody(headers) && (request.routeOptions.config as { bodyless?: boolean }).bodyless === true)) {
      return refuse(reply, 'WEIR_ERR_ADMIN_MEDIA_TYPE')
    }
    const length = headers['content-length']
    if (length !== undefined && Number(length) > ADMIN_BODY_LIMIT) {
      reply.header('connection', 'close')
      return refuse(reply, 'WEIR_ERR_ADMIN_BODY_TOO_LARGE')
    }
  })

  // Every refused write is an audit event, appended (durably) before the refusal is sent.
  app.addHook('onSend', async (request, reply, payload) => {
    if (!WRITE_METHODS.has(request.method) || reply.statusCode < 400) return payload
    let reason: unknown = null
    try {
      reason = JSON.parse(String(payload))
    } catch {}
    const { requestId: _id, ...detail } = (reason ?? {}) as Record<string, unknown>
    await events.append({
      actor: (request as WithActor)[kActor] ?? 'unauthenticated',
      ...routeOf(request),
      action: 'rejected',
      new: { method: request.method, path: request.url.split('?', 1)[0] },
      reason: { status: reply.statusCode, ...detail },
      requestId: request.id,
    }).catch((err: unknown) => request.log.error({ err }, 'could not append the rejection to the event log'))
    return payload
  })

  const caller = (request: FastifyRequest): { actor: string; requestId: string } =>
    ({ actor: (request as WithActor)[kActor] ?? 'unauthenticated', requestId: request.id })

  app.get('/routes', async () => writer.routes().map((route) => routeView(route, store.get(route.name))))

  app.get<{ Params: { route: string } }>('/routes/:route', async (request, reply) => {
    const route = writer.route(request.params.route)
    const view = routeView(route, store.get(route.name))
    reply.header('etag', `"${view.revision}"`)
    return view
  })

  /** A write to one route: the answer is the route after the change, with its revision as ETag. */
  const routeWrite = (method: 'PUT' | 'POST', path: string,
    write: (route: string, body: unknown, options: WriteOptions, who: Caller) => Promise<Written>, bodyless = false): void => {
    app.route<{ Params: { route: string } }>({
      method,
      url: `/routes/:route/${path}`,
      config: bodyless ? BODYLESS : {},
      handler: async (request, reply) => {
        const written = await write(request.params.route, request.body, writeOptions(request), caller(request))
        const view = routeView(written.route, written.state)
        return reply.header('etag', `"${view.revision}"`).send(view)
      },
    })
  }
  /** A change an operator computes from the body (state/route-changes.ts). */
  const operatorChange = (action: string, compute: (body: unknown, ...on: Parameters<Change>) => ReturnType<Change>, forced = false) =>
    (route: string, body: unknown, options: WriteOptions, who: Caller): Promise<Written> =>
      writer.write(route, action, forced ? { ...options, force: true } : options, who, (r, s) => compute(body, r, s))
  routeWrite('PUT', 'weights', operatorChange('weights.set', weightsChange))
  routeWrite('PUT', 'upstreams', operatorChange('upstreams.set', upstreamsChange))
  routeWrite('PUT', 'rules', operatorChange('rules.set', rulesChange))
  // Allowed while a rollout drives the route: a rollout drives weights, not shadow.
  routeWrite('PUT', 'shadow', operatorChange('shadow.set', shadowChange, true))
  // Empty, it answers 400 naming `to` (not 415): the emergency `curl -X POST …/switch` learns what it lacks.
  routeWrite('POST', 'switch', operatorChange('switch', switchChange), true)
  routeWrite('POST', 'reset', operatorChange('reset', resetChange), true)
  routeWrite('POST', 'rollback', (route, _body, options, who) => rollouts.rollback(route, options, who), true)

  /**
   * The rollout's view with the replica whose controller drives rollouts (docs/fleet.md) and
   * whether this replica serves a fast guard's revert the store does not hold yet.
   */
  const sendRollout = (reply: FastifyReply, view: RolloutView, status = 200): FastifyReply =>
    reply.code(status).header('etag', `"${view.revision}"`).send({ ...view, leader: options.leader(), failSafe: rollouts.failSafe(view.route) })

  app.get<{ Params: { route: string } }>('/routes/:route/rollout', async (request, reply) => {
    const route = writer.route(request.params.route)
    const state: RouteState | undefined = store.get(route.name)
    return sendRollout(reply, rolloutView(route.name, readRollout(state?.rollout), percentOf(state?.weights ?? route.weights), state?.revision ?? 0))
  })
  /** A rollout write (none needs a body): the answer is the rollout's view after it, with the route's revision as ETag. */
  const rolloutWrite = (path: string, status: number,
    change: (route: string, request: FastifyRequest, who: Caller) => Promise<RolloutView>): void => {
    app.post<{ Params: { route: string } }>(`/routes/:route/${path}`, { config: BODYLESS }, async (request, reply) =>
      sendRollout(reply, await change(request.params.route, request, caller(request)), status))
  }
  rolloutWrite('rollout', 201, (route, request, who) => rollouts.startRollout(route, request.body, writeOptions(request), who))
  for (const command of ROLLOUT_COMMANDS.filter((c) => c !== 'promote' && c !== 'promote-full')) {
    rolloutWrite(`rollout/${command}`, 200, (route, _request, who) => rollouts.command(route, command, who))
  }
  rolloutWrite('rollout/promote', 200, (route, request, who) => rollouts.command(route, booleanParam(request, 'full') ? 'promote-full' : 'promote', who))

  app.get<{ Params: { route: string }; Querystring: Record<string, string | string[]> }>('/routes/:route/stats', async (request) => {
    writer.route(request.params.route)
    const window = integerParam(request.query.window, 'window', WindowParamSchema)
    if (booleanParam(request, 'histograms')) return { window, replica: options.self, histograms: await stats.histograms(request.params.route, window) }
    const scope = request.query.scope
    if (scope !== undefined && !SCOPES.includes(scope)) {
      throw new WeirError('WEIR_ERR_ADMIN_INVALID', 'scope must be self or fleet', { problems: [{ path: 'scope', reason: 'must be self or fleet' }] })
    }
    const series = request.query.series === undefined ? null : integerParam(request.query.series, 'series', SeriesParamSchema)
    // A series is this replica's: the fleet shares histograms of a window, not per-second records.
    if (series !== null && scope === 'fleet') throw invalid('series: not with scope=fleet (a series is per replica)', 'series', 'not with scope=fleet')
    return await stats.forRoute(request.params.route, window, scope === 'fleet' ? 'fleet' : 'self', series)
  })

  app.get<{ Params: { route: string }; Querystring: Record<string, string | string[]> }>('/routes/:route/cohort', async (request) => {
    writer.route(request.params.route)
    return cohortOf(options.snapshot(), request.params.route, request.query)
  })

  app.get<{ Params: { route: string }; Querystring: Record<string, string | string[]> }>('/routes/:route/shadow/mismatches', async (request) => {
    writer.route(request.params.route)
    const limit = integerParam(request.query.limit, 'limit', MismatchLimitParamSchema)
    return { route: request.params.route, ...(await mismatches.recent(request.params.route, limit)) }
  })

  app.get('/workers', async () => ({ workers: await options.workers() }))

  app.get('/fleet', async () => await options.fleet())

  app.get<{ Querystring: Record<string, string | string[]> }>('/events', async (request) => {
    const since = request.query.since === undefined ? undefined : integerParam(request.query.since, 'since', EventSinceParamSchema)
    const limit = integerParam(request.query.limit, 'limit', EventLimitParamSchema)
    return { events: events.since(since, limit), lastId: events.lastId }
  })

  // Built once: the document depends on nothing but the code.
  const document = JSON.stringify(buildOpenApiDocument(WEIR_VERSION))
  app.get('/openapi.json', async (_request, reply) => reply.header('content-type', 'application/json; charset=utf-8').send(document))
}

function refuse (reply: FastifyReply, code: ErrorCode): FastifyReply {
  return sendError(reply, code)
}

/** A refused parameter or body: the message, and the one field it names. */
function invalid (message: string, path: string, reason: string): WeirError {
  return new WeirError('WEIR_ERR_ADMIN_INVALID', message, { problems: [{ path, reason }] })
}

function routeOf (request: FastifyRequest): { route?: string } {
  const route = (request.params as { route?: unknown } | undefined)?.route
  return typeof route === 'string' ? { route } : {}
}

/** `?name=true` or `?name=false` (absent: false). */
function booleanParam (request: FastifyRequest, name: string): boolean {
  const value = (request.query as Record<string, unknown>)[name]
  if (value === undefined || value === 'false') return false
  if (value === 'true') return true
  throw invalid(`${name}: must be true or false`, name, 'must be true or false')
}

/** `If-Match: 7`, `"7"` or `W/"7"` → 7; `?force=true`. */
function writeOptions (request: FastifyRequest): WriteOptions {
  const query = request.query as Record<string, unknown>
  const force = query.force
  if (force !== undefined && force !== 'true' && force !== 'false') {
    throw invalid('force: must be true or false', 'force', 'must be true or false')
  }
  const header = request.headers['if-match']
  let ifMatch: number | null = null
  if (header !== undefined) {
    const match = IF_MATCH.exec(header)
    if (match === null) {
      throw invalid('If-Match: must be a route revision (a non-negative integer, optionally quoted)', 'If-Match', 'must be a route revision')
    }
    ifMatch = Number(match[1])
  }
  return { ifMatch, force: force === 'true' }
}

/** A query parameter judged by its schema's bounds (api-schemas.ts); absent: the schema's default. */
function integerParam (raw: unknown, name: string, schema: TInteger): number {
  const { minimum: min = 0, maximum: max = Number.MAX_SAFE_INTEGER } = schema
  if (raw === undefined) return schema.default as number
  const value = typeof raw === 'string' && /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(`${name}: must be an integer from ${min} to ${max}`, name, `must be an integer from ${min} to ${max}`)
  }
  return value
}

/** True when `value` nests deeper than `limit` arrays/objects (iterative: no stack to overflow). */
function depthExceeds (value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]]
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number]
    if (typeof item !== 'object' || item === null) continue
    if (depth > limit) return true
    for (const child of Object.values(item)) stack.push([child, depth + 1])
  }
  return false
}
