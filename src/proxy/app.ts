// The proxy's fastify app. A request of a method weir forwards is routed by the server's own
// listener, before fastify builds anything for it: it matches the route, picks the version from
// the table in force (one reference, never awaiting the control plane) and forwards on weir's
// own pools (forward.ts). fastify serves the rest: WebSocket upgrades (routed the same way in its
// onRequest hook, then relayed by @fastify/http-proxy, which serves them well) and the methods
// weir does not forward (its 404). The pieces are in their own files: accounting, body guard,
// failover rule, client errors, header rewriting, shadow copies.

import type { IncomingMessage, ServerResponse } from 'node:http'
import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, type FastifyServerFactory } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { errorHandlerFor, sendError, writeErrorResponse } from '../http/error-reply.ts'
import { requestIdOf } from '../http/request-id.ts'
import { pickVersion } from '../routing/pick-version.ts'
import { PROXIED_METHODS } from '../vocabulary.ts'
import type { Config } from '../config/model.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import { logOnClose, sampled } from './access-log.ts'
import { abortOnClientClose, recordOnClose } from './accounting.ts'
import { clientErrorHandler } from './client-errors.ts'
import { Exchange, exchangeOf, kExchange, type WithExchange } from './exchange.ts'
import { chooseHost } from './choose-host.ts'
import { forward } from './forward.ts'
import { CONNECTION_CLOSE, isTlsRequest, isTrustedPeer, rewriteRequestHeaders, type OutgoingHeaders } from './forward-headers.ts'
import { lazyChildLogger } from './lazy-logger.ts'
import type { ProxyTable } from './proxy-routes.ts'
import { originFormOf } from './request-target.ts'
import { planShadowCopy } from './shadow-copy.ts'

/** Methods forwarded here; any other reaches fastify's 404 (the plugin registers no route for it). */
const FORWARDED: ReadonlySet<string> = new Set(PROXIED_METHODS)

/**
 * reply-from, which the plugin registers for its HTTP routes, never runs: every HTTP request is
 * forwarded by forward.ts before a route handler. Its dispatcher only makes sure of that.
 */
const NO_DISPATCH = {
  request (_options: unknown, callback: (err: Error) => void): void {
    callback(new Error('weir forwards HTTP requests itself (src/proxy/forward.ts)'))
  },
}

/** The snapshot's top-level settings the hook reads per request; replaced with the table. */
export interface EdgeSettings {
  /** Entries of rawHeaders (a name and a value per field) a request may have: 2 × maxHeaders. */
  readonly maxRawHeaders: number
  readonly generateTrace: boolean
  /** Share of requests in the access log (0: off). */
  readonly accessLogSample: number
}

export function edgeSettingsOf (snapshot: DataPathSnapshot): EdgeSettings {
  return { maxRawHeaders: snapshot.maxHeaders * 2, generateTrace: snapshot.tracing.generate, accessLogSample: snapshot.accessLogSample }
}

export interface ProxyRuntime {
  /** The table in force; replaced whole on every snapshot. */
  current: ProxyTable
  /** The settings in force, replaced with `current`. */
  settings: EdgeSettings
  /** Set on shutdown: responses carry Connection: close so clients move on. */
  draining: boolean
}

export interface ProxyAppOptions {
  runtime: ProxyRuntime
  logLevel: Config['logLevel']
  /** A log shared with the control plane (else one of the proxy's own at logLevel). */
  logger?: FastifyBaseLogger
  serverFactory: FastifyServerFactory
  /**
   * Count every response in weir_requests_total and weir_request_duration_seconds and record
   * it in the version's rolling stats. Off only to measure what that costs.
   */
  record: boolean
}

function isUpgrade (raw: IncomingMessage): boolean {
  return (raw as IncomingMessage & { upgrade?: boolean }).upgrade === true
}

export async function createProxyApp (options: ProxyAppOptions): Promise<FastifyInstance> {
  const { runtime, record } = options
  const onResponseClose = record ? recordOnClose : abortOnClientClose
  const app: FastifyInstance = fastify({
    // A request weir forwards is routed and forwarded by the server's own listener: fastify's
    // per-request machinery (Request and Reply, its router, the hook runner) is skipped where
    // it does nothing for it (measured in bench/README.md, "Layers kept and dropped").
    serverFactory: (handler, serverOptions) => options.serverFactory((req, res) => {
      if (isUpgrade(req) || !FORWARDED.has(req.method as string)) {
        handler(req, res)
        return
      }
      const requestId = requestIdOf(req)
      routeRequest(req, res, requestId, lazyChildLogger(app.log, { reqId: requestId }))
    }, serverOptions),
    ...(options.logger === undefined ? { logger: { level: options.logLevel } } : { loggerInstance: options.logger }),
    // No per-request log lines: an access log is opt-in work, not a hot-path default.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    genReqId: requestIdOf,
    // While draining, requests on open keep-alive connections are still served (with Connection: close).
    return503OnClosing: false,
    clientErrorHandler,
    routerOptions: { maxParamLength: 65535 },
  })

  // Access-log lines are written at info whatever logLevel says: the access log is its own switch.
  const accessLog = app.log.child({}, { level: 'info' })

  /**
   * Routes one request and, for a forwarded method, forwards it (true: the response is weir's
   * from here). False only for a WebSocket upgrade or a method weir does not forward, once its
   * exchange is set: fastify goes on with it (the WebSocket proxy, or the 404 handler).
   */
  function routeRequest (raw: IncomingMessage, res: ServerResponse & WithExchange, requestId: string, log: FastifyBaseLogger): boolean {
    const snapshot = runtime.current
    const settings = runtime.settings
    // Off, the access log costs one comparison (sampled's first).
    if (sampled(settings.accessLogSample) && !isUpgrade(raw)) logOnClose(accessLog, raw, res, requestId)
    // Node keeps every field that fits in maxHeaderBytes (data-path.ts): this count is the limit.
    if (raw.rawHeaders.length > settings.maxRawHeaders) {
      writeErrorResponse(res, 'WEIR_ERR_TOO_MANY_HEADERS', requestId, CONNECTION_CLOSE)
      return true
    }
    // Absolute-form (a client that takes weir for a forward proxy): the target's authority is the Host.
    if ((raw.url as string).charCodeAt(0) !== 47 && raw.url !== '*') {
      const target = originFormOf(raw.url as string)
      if (target === null) {
        writeErrorResponse(res, 'WEIR_ERR_BAD_REQUEST', requestId)
        return true
      }
      raw.url = target.path
      raw.headers.host = target.host
    }
    const route = snapshot.table.match(raw.headers.host, raw.url as string)
    if (route === undefined) {
      writeErrorResponse(res, 'WEIR_ERR_ROUTE_NOT_FOUND', requestId)
      return true
    }
    const exchange = new Exchange(route)
    exchange.generateTrace = settings.generateTrace
    if (record) exchange.startedAt = performance.now()
    pickVersion(route, raw.headers, raw.url ?? '/', exchange, raw.socket.remoteAddress, snapshot.trusted)
    route.metrics.versions[exchange.version].decisions[exchange.decidedBy].inc()
    ;(raw as WithExchange)[kExchange] = exchange
    res[kExchange] = exchange
    // `on`, not `once`: once() allocates a wrapper per call and this response closes only once.
    const upgrade = isUpgrade(raw)
    // A WebSocket upgrade's response closes with the session: a session is not counted or timed.
    res.on('close', upgrade ? abortOnClientClose : onResponseClose)
    const versionHeader = snapshot.versionHeader
    const length = raw.headers['content-length']
    if (length !== undefined && Number(length) > route.config.maxBodyBytes) {
      // Counted under the version picked, never sent to it (see recordOnClose).
      exchange.clientError = 'WEIR_ERR_BODY_TOO_LARGE'
      // The body is not read: the connection cannot be reused.
      const headers: OutgoingHeaders = { connection: 'close' }
      if (versionHeader !== false) headers[versionHeader] = exchange.version
      writeErrorResponse(res, 'WEIR_ERR_BODY_TOO_LARGE', requestId, headers)
      return true
    }
    if (!chooseHost(exchange, raw, record)) {
      // No host of the version (nor of stable, for a request that may fail over) is available.
      writeErrorResponse(res, 'WEIR_ERR_NO_UPSTREAM', requestId, versionHeader === false ? undefined : { [versionHeader]: exchange.version })
      return true
    }
    exchange.trustedPeer = isTrustedPeer(snapshot.trusted, raw)
    exchange.secure = isTlsRequest(raw, exchange.trustedPeer)
    if (upgrade || !FORWARDED.has(raw.method as string)) {
      if (runtime.draining) res.setHeader('connection', 'close')
      return false
    }
    if (route.shadow !== null) exchange.mirror = planShadowCopy(route, raw, requestId)
    exchange.closeConnection = runtime.draining
    forward(exchange, { raw, id: requestId, log }, res, versionHeader, record)
    return true
  }

  // Reached by WebSocket upgrades (the WebSocket plugin routes them through fastify) and by
  // methods weir does not forward; every other request is routed by the server's own listener.
  app.addHook('onRequest', function routeThroughFastify (request, reply, done) {
    if (routeRequest(request.raw, reply.raw, request.id, request.log)) reply.hijack()
    else done()
  })

  app.setNotFoundHandler((_request, reply) => sendError(reply, 'WEIR_ERR_ROUTE_NOT_FOUND'))
  app.setErrorHandler(errorHandlerFor({ tooLarge: 'WEIR_ERR_BODY_TOO_LARGE', invalid: 'WEIR_ERR_BAD_REQUEST', describe: false }))

  // fastify's built-in parsers would buffer bodies; nothing here reads one (forwarded requests
  // are hijacked before parsing, WebSocket upgrades have none).
  app.removeAllContentTypeParsers()

  // The plugin's types pin reply-from's own undici; it only ever serves WebSocket upgrades here.
  await app.register(httpProxy as never, {
    upstream: '',
    websocket: true,
    httpMethods: [...PROXIED_METHODS],
    internalRewriteLocationHeader: false,
    disableRequestLogging: true,
    undici: NO_DISPATCH,
    // The WebSocket proxy asks this for the upgrade's upstream: the version routeRequest picked.
    replyOptions: { getUpstream: (request: FastifyRequest) => (exchangeOf(request) as Exchange).target.origin },
    wsClientOptions: {
      rewriteRequestHeaders: (headers: Record<string, string>, request: FastifyRequest) => {
        const exchange = exchangeOf(request) as Exchange
        const out: OutgoingHeaders = { ...headers }
        if (request.headers.cookie !== undefined) out.cookie = request.headers.cookie
        rewriteRequestHeaders(out, request.raw, exchange, request.id)
        // ws sets Host from the upstream URL; node:http throws on a header whose value is undefined.
        delete out.host
        for (const name of Object.keys(out)) if (out[name] === undefined) delete out[name]
        return out
      },
    },
  })
  return app
}
