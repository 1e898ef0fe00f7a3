// The data path: a fastify instance with @fastify/http-proxy whose upstream is chosen per
// request by pickVersion and dispatched on our own undici pools (with failover and client-abort
// propagation). It reads the current route table through one reference and never awaits the
// control path.

import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { BlockList, Socket } from 'node:net'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerFactory } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import type { Dispatcher } from 'undici'
import type { Config } from '../config/load.ts'
import { ERRORS, classifyUpstreamError, errorBody, type ErrorCode } from '../errors.ts'
import { CLIENT_CLOSED_REQUEST, countResponse } from '../metrics/recorder.ts'
import type { Metrics } from '../metrics/registry.ts'
import { pickVersion } from '../routing/pick-version.ts'
import type { RouteTable } from '../routing/route-table.ts'
import { planShadowCopy, type ShadowCopy } from '../shadow/mirror.ts'
import { Exchange } from './exchange.ts'
import { lazyChildLogger } from './lazy-logger.ts'
import { isTlsRequest, isTrustedPeer, rewriteRequestHeaders, rewriteResponseHeaders, UPSTREAM_VERSION_HEADER } from './forward-headers.ts'

/** What the data path reads per request; replaced as a whole on reload or weight change. */
export interface ProxySnapshot {
  readonly table: RouteTable
  readonly versionHeader: string | false
  readonly trusted: BlockList | null
}

export interface ProxyRuntime {
  current: ProxySnapshot
  /** Set on shutdown: responses carry Connection: close so clients move on. */
  draining: boolean
}

export interface ProxyAppOptions {
  config: Config
  runtime: ProxyRuntime
  metrics: Metrics
  serverFactory: FastifyServerFactory
  /**
   * Count every response in weir_requests_total and weir_request_duration_seconds and record
   * it in the version's rolling stats (default true). Off only to measure what that costs.
   */
  recordRequests?: boolean
}

const kExchange = Symbol('weir.exchange')

interface WithExchange { [kExchange]?: Exchange }

const PROXIED_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']
/** RFC 9110 §9.2.2; only these may be failed over, and only without a body. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,200}$/

function exchangeOf (request: { raw: object }): Exchange | undefined {
  return (request.raw as WithExchange)[kExchange]
}

/** Keeps a client's X-Request-Id when it is a sane token, else makes one. */
export function requestIdOf (raw: IncomingMessage): string {
  const given = raw.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

export function sendError (reply: FastifyReply, code: ErrorCode): void {
  reply.code(ERRORS[code].status).header('content-type', 'application/json; charset=utf-8').send(errorBody(code, reply.request.id))
}

/** Listener on the client's ServerResponse: closing before the response finished aborts upstream. */
function abortOnClientClose (this: ServerResponse & WithExchange): void {
  const exchange = this[kExchange] as Exchange
  exchange.mirror?.clientClosed()
  if (!this.writableFinished) exchange.abort()
}

/**
 * The 'close' listener of the client's ServerResponse when requests are recorded: counts the
 * response under the version that answered, with the status sent, and records it in that
 * version's rolling stats (isError: status >= 500). Made once per app (it needs the app's
 * metrics) and shared by every response: nothing is allocated per request.
 *  - Refused for the client's own fault (413 body too large, 408 body too slow): counted, not
 *    recorded in the stats, as the version did not (fully) see the request.
 *  - The response did not finish and the upstream body failed: the upstream cut it after its
 *    head went out. Counted with the status sent, as an upstream error and a stats error.
 *  - Otherwise an unfinished response means the client went away: the upstream request is
 *    aborted and the response counted as 499 (nginx's "client closed request"), not recorded in
 *    the stats, which would learn nothing about the version from it.
 */
function recordOnClose (metrics: Metrics): (this: ServerResponse & WithExchange) => void {
  return function countOnClose (this: ServerResponse & WithExchange): void {
    const exchange = this[kExchange] as Exchange
    const latencyMs = performance.now() - exchange.startedAt
    exchange.mirror?.clientClosed()
    const cells = exchange.route.metrics.versions[exchange.version]
    if (this.writableFinished) {
      const status = this.statusCode
      countResponse(cells, status, latencyMs)
      if (exchange.clientError === null) cells.window?.record(latencyMs, status >= 500)
      return
    }
    const cut = exchange.upstreamBody?.errored
    if (cut == null) {
      exchange.abort()
      countResponse(cells, CLIENT_CLOSED_REQUEST, latencyMs)
      return
    }
    metrics.upstreamErrors.labels(exchange.route.name, exchange.version, classifyUpstreamError(cut).reason).inc()
    countResponse(cells, this.statusCode, latencyMs)
    cells.window?.record(latencyMs, true)
  }
}

/** reply-from's onResponse (recording only): keeps the upstream body so a cut can be told from a client leaving. */
function relayUpstreamBody (request: FastifyRequest, reply: FastifyReply, res: { stream: Readable }): void {
  const exchange = exchangeOf(request)
  if (exchange !== undefined) exchange.upstreamBody = res.stream
  reply.send(res.stream)
}

/** Raw HTTP errors (malformed request line, header overflow, header timeout) never reach fastify. */
function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW'
    ? 'WEIR_ERR_HEADERS_TOO_LARGE'
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'WEIR_ERR_BODY_TIMEOUT' : 'WEIR_ERR_BAD_REQUEST'
  const status = ERRORS[code].status
  const body = errorBody(code, randomUUID())
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

/** Counts request body bytes (for bodies of unknown length) and bounds how long the body may take. */
class BodyGuard extends Transform {
  private received = 0
  private readonly timer: NodeJS.Timeout
  private readonly exchange: Exchange
  private readonly limit: number
  /** The request's shadow copy waiting for the body's bytes, if any. */
  private readonly mirror: ShadowCopy | null

  constructor (exchange: Exchange, limit: number, timeoutMs: number) {
    super()
    this.exchange = exchange
    this.limit = limit
    this.mirror = exchange.mirror?.wantsBody === true ? exchange.mirror : null
    this.timer = setTimeout(() => this.fail('WEIR_ERR_BODY_TIMEOUT'), timeoutMs)
    this.timer.unref()
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length
    if (this.received > this.limit) {
      this.fail('WEIR_ERR_BODY_TOO_LARGE')
      return
    }
    this.mirror?.bodyChunk(chunk)
    callback(null, chunk)
  }

  override _flush (callback: TransformCallback): void {
    clearTimeout(this.timer)
    this.mirror?.bodyEnded()
    callback()
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.timer)
    callback(err)
  }

  private fail (code: ErrorCode): void {
    this.exchange.clientError = code
    this.destroy(Object.assign(new Error(ERRORS[code].message), { code }))
  }
}

type UpstreamRequestOptions = Omit<Dispatcher.RequestOptions, 'signal' | 'headers'> & {
  headers: Record<string | symbol, unknown>
  signal?: unknown
}

/** Wraps a request body that has content in a BodyGuard (size limit for unknown lengths, and the body deadline). */
function guardBody (raw: IncomingMessage, body: Readable, exchange: Exchange): Readable {
  const length = raw.headers['content-length']
  if (length === '0' || (length === undefined && raw.headers['transfer-encoding'] === undefined)) return body
  const config = exchange.route.config
  const guard = new BodyGuard(exchange, config.maxBodyBytes, config.timeouts.requestBodyMs)
  body.on('error', (err) => guard.destroy(err))
  return body.pipe(guard)
}

/**
 * What reply-from calls to send a request upstream (it accepts any object with `request`).
 * Sends on the exchange's pool, with the route's timeouts and the exchange as abort signal,
 * and fails an idempotent bodyless canary/green request over to stable once.
 */
class UpstreamDispatcher {
  private readonly metrics: Metrics
  private readonly record: boolean

  constructor (metrics: Metrics, record: boolean) {
    this.metrics = metrics
    this.record = record
  }

  request (opts: UpstreamRequestOptions, callback: (err: Error | null, res?: Dispatcher.ResponseData) => void): void {
    const exchange = opts.headers[kExchange] as Exchange
    const mirror = exchange.mirror
    if (mirror === null) {
      this.send(exchange, opts, callback)
      return
    }
    this.send(exchange, opts, mirror.compares ? mirror.watchPrimary(callback) : callback)
    // After the primary went to its pool, never before, and never awaited by it.
    mirror.dispatched(opts.path, opts.headers)
  }

  private send (exchange: Exchange, opts: UpstreamRequestOptions, callback: (err: Error | null, res?: Dispatcher.ResponseData) => void): void {
    const timeouts = exchange.route.config.timeouts
    opts.signal = exchange
    opts.headersTimeout = timeouts.headersMs
    opts.bodyTimeout = timeouts.bodyIdleMs
    if (exchange.version !== 'stable' && exchange.route.config.failover && IDEMPOTENT.has(opts.method) &&
        (opts.body === '' || opts.body == null)) {
      exchange.target.pool.request(opts as Dispatcher.RequestOptions, (err, res) => {
        if (err === null || exchange.cancelled) {
          callback(err, res)
          return
        }
        const failure = classifyUpstreamError(err)
        if (!failure.beforeResponse) {
          callback(err, res)
          return
        }
        // Counted as the failed version's error, in its stats too (so a dying canary shows even
        // though its clients see no errors); the client is answered, and counted, by stable.
        this.metrics.upstreamErrors.labels(exchange.route.name, exchange.version, failure.reason).inc()
        if (this.record) exchange.route.metrics.versions[exchange.version].window?.record(performance.now() - exchange.startedAt, true)
        exchange.version = 'stable'
        exchange.target = exchange.route.groups.stable.pick()
        opts.headers[UPSTREAM_VERSION_HEADER] = 'stable'
        if (!exchange.route.config.passHost) opts.headers.host = exchange.target.host
        exchange.target.pool.request(opts as Dispatcher.RequestOptions, callback)
      })
      return
    }
    exchange.target.pool.request(opts as Dispatcher.RequestOptions, callback)
  }
}

export async function createProxyApp (options: ProxyAppOptions): Promise<FastifyInstance> {
  const { config, runtime, metrics } = options
  const record = options.recordRequests ?? true
  const onResponseClose = record ? recordOnClose(metrics) : abortOnClientClose
  const app = fastify({
    serverFactory: options.serverFactory,
    logger: { level: config.logLevel },
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
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (reply.sent || reply.raw.headersSent) return
    if (err.statusCode === 413) return sendError(reply, 'WEIR_ERR_BODY_TOO_LARGE')
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return sendError(reply, 'WEIR_ERR_BAD_REQUEST')
    request.log.error({ err }, 'unexpected proxy error')
    sendError(reply, 'WEIR_ERR_INTERNAL')
  })

  // fastify's built-in text/plain parser would buffer the whole body (and cap it at its own
  // 1 MiB bodyLimit); the proxy's catch-all parser below streams every content type instead.
  app.removeAllContentTypeParsers()

  // The plugin's types pin reply-from's own undici; our dispatcher is typed above instead.
  await app.register(httpProxy as never, {
    upstream: '',
    websocket: true,
    httpMethods: PROXIED_METHODS,
    internalRewriteLocationHeader: false,
    disableRequestLogging: true,
    // reply-from takes any object with request(opts, callback) as its undici dispatcher.
    undici: new UpstreamDispatcher(metrics, record),
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
        metrics.upstreamErrors.labels(exchange.route.name, exchange.version, failure.reason).inc()
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
