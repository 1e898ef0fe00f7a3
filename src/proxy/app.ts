// The proxy's fastify app: an onRequest hook that matches the route and picks the version from
// the table in force (one reference, never awaiting the control plane), and @fastify/http-proxy
// forwarding on weir's own pools through UpstreamDispatcher. The pieces are in their own files:
// accounting, body guard, failover rule, client errors, header rewriting, shadow copies.

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerFactory } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { classifyUpstreamError } from '../errors.ts'
import { errorHandlerFor, sendError } from '../http/error-reply.ts'
import { requestIdOf } from '../http/request-id.ts'
import { pickVersion } from '../routing/pick-version.ts'
import { PROXIED_METHODS } from '../vocabulary.ts'
import type { Config } from '../config/model.ts'
import { abortOnClientClose, recordOnClose, relayUpstreamBody } from './accounting.ts'
import { guardBody } from './body-guard.ts'
import { clientErrorHandler } from './client-errors.ts'
import { Exchange, exchangeOf, kExchange, type WithExchange } from './exchange.ts'
import { isTlsRequest, isTrustedPeer, rewriteRequestHeaders, rewriteResponseHeaders } from './forward-headers.ts'
import { lazyChildLogger } from './lazy-logger.ts'
import type { ProxyTable } from './proxy-routes.ts'
import { planShadowCopy } from './shadow-copy.ts'
import { UpstreamDispatcher } from './upstream-dispatcher.ts'

export interface ProxyRuntime {
  /** The table in force; replaced whole on every snapshot. */
  current: ProxyTable
  /** Set on shutdown: responses carry Connection: close so clients move on. */
  draining: boolean
}

export interface ProxyAppOptions {
  runtime: ProxyRuntime
  logLevel: Config['logLevel']
  serverFactory: FastifyServerFactory
  /**
   * Count every response in weir_requests_total and weir_request_duration_seconds and record
   * it in the version's rolling stats. Off only to measure what that costs.
   */
  record: boolean
}

export async function createProxyApp (options: ProxyAppOptions): Promise<FastifyInstance> {
  const { runtime, record } = options
  const onResponseClose = record ? recordOnClose : abortOnClientClose
  const app = fastify({
    serverFactory: options.serverFactory,
    logger: { level: options.logLevel },
    // No per-request log lines: an access log is opt-in work, not a hot-path default.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    genReqId: requestIdOf,
    // While draining, requests on open keep-alive connections are still served (with Connection: close).
    return503OnClosing: false,
    clientErrorHandler,
    routerOptions: { maxParamLength: 65535 },
  })

  app.addHook('onRequest', function routeRequest (request, reply, done) {
    const raw = request.raw
    const snapshot = runtime.current
    const route = snapshot.table.match(raw.headers.host, raw.url as string)
    if (route === undefined) {
      sendError(reply, 'WEIR_ERR_ROUTE_NOT_FOUND')
      return
    }
    const exchange = new Exchange(route)
    if (record) exchange.startedAt = performance.now()
    pickVersion(route, raw.headers, exchange)
    route.metrics.versions[exchange.version].decisions[exchange.decidedBy].inc()
    ;(raw as WithExchange)[kExchange] = exchange
    const res = reply.raw as ServerResponse & WithExchange
    res[kExchange] = exchange
    // `on`, not `once`: once() allocates a wrapper per call and this response closes only once.
    // A WebSocket upgrade's response closes with the session: a session is not counted or timed.
    res.on('close', (raw as IncomingMessage & { upgrade?: boolean }).upgrade === true ? abortOnClientClose : onResponseClose)
    const length = raw.headers['content-length']
    if (length !== undefined && Number(length) > route.config.maxBodyBytes) {
      // Counted under the version picked, never sent to it (see recordOnClose).
      exchange.clientError = 'WEIR_ERR_BODY_TOO_LARGE'
      // The body is not read: the connection cannot be reused.
      reply.header('connection', 'close')
      if (snapshot.versionHeader !== false) reply.header(snapshot.versionHeader, exchange.version)
      sendError(reply, 'WEIR_ERR_BODY_TOO_LARGE')
      return
    }
    if (runtime.draining) reply.header('connection', 'close')
    if (route.shadow !== null) exchange.mirror = planShadowCopy(route, raw, request.id)
    exchange.target = (route.groups[exchange.version] ?? route.groups.stable).pick()
    exchange.trustedPeer = isTrustedPeer(snapshot.trusted, raw)
    exchange.secure = isTlsRequest(raw, exchange.trustedPeer)
    done()
  })

  app.setNotFoundHandler((_request, reply) => sendError(reply, 'WEIR_ERR_ROUTE_NOT_FOUND'))
  app.setErrorHandler(errorHandlerFor({ tooLarge: 'WEIR_ERR_BODY_TOO_LARGE', invalid: 'WEIR_ERR_BAD_REQUEST', describe: false }))

  // fastify's built-in text/plain parser would buffer the whole body (and cap it at its own
  // 1 MiB bodyLimit); the proxy's catch-all parser below streams every content type instead.
  app.removeAllContentTypeParsers()

  // The plugin's types pin reply-from's own undici; our dispatcher is typed above instead.
  await app.register(httpProxy as never, {
    upstream: '',
    websocket: true,
    httpMethods: [...PROXIED_METHODS],
    internalRewriteLocationHeader: false,
    disableRequestLogging: true,
    // reply-from takes any object with request(opts, callback) as its undici dispatcher.
    undici: new UpstreamDispatcher(record),
    replyOptions: {
      ...(record ? { onResponse: relayUpstreamBody } : {}),
      // Runs in the route handler, right before reply-from takes `request.body`: the one place a
      // body stream can be guarded without a preParsing hook taxing every bodiless request.
      getUpstream: (request: FastifyRequest) => {
        const exchange = exchangeOf(request) as Exchange
        if (request.body !== undefined) request.body = guardBody(request.raw, request.body as Readable, exchange)
        return exchange.target.origin
      },
      rewriteRequestHeaders: (request: FastifyRequest, headers: Record<string, string | string[] | number | undefined>) => {
        const exchange = exchangeOf(request) as Exchange
        const out = rewriteRequestHeaders(headers, request.raw, exchange, request.id)
        ;(out as Record<symbol, unknown>)[kExchange] = exchange
        return out
      },
      rewriteHeaders: (headers: IncomingHttpHeaders, request: FastifyRequest | undefined) =>
        rewriteResponseHeaders(headers, request === undefined ? null : exchangeOf(request) ?? null, runtime.current.versionHeader),
      onError: (reply: FastifyReply, { error }: { error: Error }) => {
        const exchange = exchangeOf(reply.request)
        if (exchange === undefined) return sendError(reply, 'WEIR_ERR_INTERNAL')
        if (exchange.cancelled || reply.raw.destroyed) return
        if (exchange.clientError !== null) {
          reply.header('connection', 'close')
          return sendError(reply, exchange.clientError)
        }
        const failure = classifyUpstreamError(error)
        exchange.route.metrics.versions[exchange.version].upstreamErrors[failure.reason].inc()
        const versionHeader = runtime.current.versionHeader
        if (versionHeader !== false) reply.header(versionHeader, exchange.version)
        sendError(reply, failure.code)
      },
      // A 503 from the upstream is the answer, not a reason to ask again.
      retryDelay: () => null,
    },
    wsClientOptions: {
      rewriteRequestHeaders: (headers: Record<string, string>, request: FastifyRequest) => {
        const exchange = exchangeOf(request) as Exchange
        const out: Record<string, string | string[] | number | undefined> = { ...headers }
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
