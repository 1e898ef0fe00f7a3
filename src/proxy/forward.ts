// Forwards one request on undici's dispatcher API: dispatches on the exchange's pool with a
// handler that writes the upstream's head and body chunks straight into the client's response
// (pausing the upstream while the client's socket is full), fails an eligible attempt over to
// stable once (failover.ts), feeds a compared shadow copy the primary's answer, and answers weir's
// own JSON error when nothing of a response was sent yet. No stream, URL or header copy per
// request beyond the one object of upstream headers.

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { Dispatcher } from 'undici'
import { classifyUpstreamError } from '../errors.ts'
import { writeErrorResponse } from '../http/error-reply.ts'
import { announcedBody } from './announced-body.ts'
import { groupOf } from './choose-host.ts'
import { guardBody } from './body-guard.ts'
import { CLIENT_GONE, type Exchange } from './exchange.ts'
import { failsOver, mayFailOver, mayRetry } from './failover.ts'
import { CONNECTION_CLOSE, rewriteResponseHeaders, upstreamHeaders, type OutgoingHeaders } from './forward-headers.ts'
import { UPSTREAM_VERSION_HEADER } from './header-names.ts'
import type { RetryBudget } from './retry-budget.ts'
import type { UpstreamTarget } from './upstream-pools.ts'

/** An upstream status outside 100–599 is not one Node (or a client) can take: a bad response. */
const BAD_STATUS = Object.assign(new Error('the upstream answered with an invalid status code'), { code: 'HPE_INVALID_STATUS' })
/** A response header Node refuses to write: a bad response too. */
const BAD_HEADERS = Object.assign(new Error('the upstream answered with a header that cannot be relayed'), { code: 'HPE_INVALID_HEADER_TOKEN' })

/**
 * The path sent upstream: the client's, unless it may hold a dot segment. Then a `..` segment
 * (literal or percent-encoded, between `/` or `\`, which WHATWG URL parsers take for `/`) is
 * refused (null: 400), so no path climbs above the root or out of a route's pathPrefix, and
 * `.` segments are resolved. Dots inside a segment (`/a/..b`, `/a/b..`) are a name, not a segment.
 */
export function upstreamPath (url: string): string | null {
  // A dot segment starts with "/." or "\." (or is percent-encoded); most paths have neither.
  if (!url.includes('/.') && !url.includes('%') && !url.includes('\\')) return url
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return null
  }
  if (hasDotDotSegment(decoded)) return null
  if (!path.includes('/.')) return url
  // Resolves "." segments; a path starting "//" is kept as a path, not taken for a host.
  const resolved = new URL(path.startsWith('//') ? '.' + path : path, 'http://weir.invalid').pathname
  return query === -1 ? resolved : resolved + url.slice(query)
}

/** A segment that is exactly `..`, segments split at `/` and `\`. */
function hasDotDotSegment (path: string): boolean {
  let at = path.indexOf('..')
  while (at !== -1) {
    const before = at === 0 ? 47 : path.charCodeAt(at - 1)
    const after = at + 2 === path.length ? 47 : path.charCodeAt(at + 2)
    if ((before === 47 || before === 92) && (after === 47 || after === 92)) return true
    at = path.indexOf('..', at + 1)
  }
  return false
}

/** What a forwarded request needs of its fastify request: the raw message, its id and its (lazy) logger. */
export interface ForwardedRequest {
  readonly raw: IncomingMessage
  readonly id: string
  readonly log: FastifyBaseLogger
}

/** Sends the exchange's request upstream and relays the answer to `res`. */
export function forward (exchange: Exchange, request: ForwardedRequest, res: ServerResponse, versionHeader: string | false, record: boolean): void {
  const req = request.raw
  const requestId = request.id
  const path = upstreamPath(req.url as string)
  if (path === null) {
    writeErrorResponse(res, 'WEIR_ERR_BAD_REQUEST', requestId)
    return
  }
  const headers = upstreamHeaders(req, exchange, requestId)
  const body = announcedBody(req.headers) === 'none' ? null : guardBody(req, exchange)
  const timeouts = exchange.route.config.timeouts
  const method = req.method as Dispatcher.HttpMethod
  const budget = exchange.route.retryBudgets[exchange.version]
  budget?.request()
  const handler = new UpstreamHandler(exchange, request, res, versionHeader, record, {
    method,
    path,
    headers,
    body,
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
  }, mayFailOver(exchange.version, exchange.route.config.failover, method, body !== null), budget !== null && mayRetry(method, body !== null))
  handler.send()
  // After the primary went to its pool, never before, and never awaited by it.
  exchange.mirror?.dispatched(path, headers)
}

/** The undici dispatch handler of one forwarded request (and its failover attempt). */
class UpstreamHandler implements Dispatcher.DispatchHandler {
  private readonly exchange: Exchange
  private readonly request: ForwardedRequest
  private readonly res: ServerResponse
  private readonly versionHeader: string | false
  private readonly record: boolean
  private readonly options: Dispatcher.DispatchOptions & { headers: OutgoingHeaders }
  /** This attempt may be failed over to stable (decided before it is sent). */
  private failover: boolean
  /** This attempt may be retried once on another host of its version, budget permitting. */
  private retry: boolean
  /** The host of the attempt in flight (its `active` count is ours until it settles). */
  private attempt: UpstreamTarget | null = null
  /** The response head went to the client: a later failure can only cut the response. */
  private headSent = false
  /** Body bytes still to come when the upstream sent a Content-Length (-1: unknown). */
  private remaining = -1
  private waitingForDrain = false
  private resumeOnDrain: (() => void) | null = null

  constructor (
    exchange: Exchange, request: ForwardedRequest, res: ServerResponse, versionHeader: string | false, record: boolean,
    options: Dispatcher.DispatchOptions & { headers: OutgoingHeaders }, failover: boolean, retry: boolean
  ) {
    this.exchange = exchange
    this.request = request
    this.res = res
    this.versionHeader = versionHeader
    this.record = record
    this.options = options
    this.failover = failover
    this.retry = retry
  }

  send (): void {
    const target = this.exchange.target
    this.attempt = target
    target.health.active++
    try {
      target.pool.dispatch(this.options, this)
    } catch (err) {
      // A closed pool (a reload retired it) refuses synchronously.
      this.onResponseError(null, err as Error)
    }
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.exchange.controller = controller
    // The client left while the request waited for a connection: it must not go out now.
    if (this.exchange.cancelled) controller.abort(CLIENT_GONE)
  }

  /** The attempt's host is no longer busy with it (least-request counts what is in flight). */
  private settle (): void {
    const attempt = this.attempt
    if (attempt === null) return
    attempt.health.active--
    this.attempt = null
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // An interim 1xx is followed by the final response.
    if (statusCode < 200) return
    if (statusCode > 599) {
      controller.abort(BAD_STATUS)
      return
    }
    const exchange = this.exchange
    // A 5xx counts towards the host's ejection like a failed connection (Envoy's consecutive 5xx).
    const group = groupOf(exchange)
    if (statusCode >= 500) group.failed(exchange.target, `status ${statusCode}`)
    else group.succeeded(exchange.target)
    const out = rewriteResponseHeaders(headers, exchange, this.versionHeader)
    // The connection cannot be reused until the request body was read (or while draining).
    if (exchange.closeConnection || !this.request.raw.complete) out.connection = 'close'
    try {
      this.res.writeHead(statusCode, out)
    } catch {
      // A header Node will not send (the parser let it through): nothing went out yet, so 502.
      controller.abort(BAD_HEADERS)
      return
    }
    this.headSent = true
    exchange.mirror?.primaryStarted(statusCode, headers)
    const length = headers['content-length']
    this.remaining = typeof length === 'string' && this.request.raw.method !== 'HEAD' ? Number(length) : -1
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const mirror = this.exchange.mirror
    mirror?.primaryChunk(chunk)
    if (this.remaining !== -1 && (this.remaining -= chunk.length) === 0) {
      // The last chunk ends the response in the same write as its bytes (one syscall, not two).
      mirror?.primaryEnded()
      this.res.end(chunk)
      return
    }
    // Back-pressure: the upstream waits while the client's socket is full.
    if (!this.res.write(chunk) && !this.waitingForDrain) {
      controller.pause()
      this.waitingForDrain = true
      // Made once per exchange, and only for responses that outrun their client.
      this.resumeOnDrain ??= () => {
        this.waitingForDrain = false
        this.exchange.controller?.resume()
      }
      this.res.once('drain', this.resumeOnDrain)
    }
  }

  onResponseEnd (): void {
    this.settle()
    // Already ended with the last chunk (see onResponseData).
    if (this.res.writableEnded) return
    this.exchange.mirror?.primaryEnded()
    this.res.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.settle()
    const exchange = this.exchange
    const res = this.res
    if (exchange.cancelled || res.destroyed) return
    if (this.headSent) {
      // The head is out: the client sees the response cut (accounting.ts counts it).
      this.request.log.warn({ err: error, route: exchange.route.name, version: exchange.version }, 'upstream response failed after its head was sent')
      exchange.upstreamCut = error
      exchange.mirror?.primaryFailed()
      res.destroy()
      return
    }
    if (exchange.clientError !== null) {
      exchange.mirror?.primaryFailed()
      writeErrorResponse(res, exchange.clientError, this.request.id, CONNECTION_CLOSE)
      return
    }
    const failure = classifyUpstreamError(error)
    const route = exchange.route
    const cells = route.metrics.versions[exchange.version]
    cells.upstreamErrors[failure.reason].inc()
    const group = groupOf(exchange)
    // A retired pool says nothing about the host.
    if (failure.reason !== 'unavailable') group.failed(exchange.target, failure.reason)
    if (this.retry && failsOver(failure)) {
      this.retry = false
      const other = group.pick(exchange.target)
      if (other !== null) {
        if ((route.retryBudgets[exchange.version] as RetryBudget).take()) {
          cells.retries.retried.inc()
          exchange.controller = null
          exchange.target = other
          if (!route.config.passHost) this.options.headers.host = other.host
          this.send()
          return
        }
        cells.retries.budget_exhausted.inc()
      }
    }
    // Stable with no host available (all failing their checks) leaves nothing to fail over to.
    const stable = this.failover && failsOver(failure) ? route.groups.stable.pick() : null
    if (stable !== null) {
      // Counted as the failed version's error, in its stats too (so a dying canary shows even
      // though its clients see no errors); the client is answered, and counted, by stable.
      if (this.record && exchange.decidedBy !== 'override') cells.window?.record(performance.now() - exchange.startedAt, true)
      this.failover = false
      exchange.controller = null
      exchange.version = 'stable'
      exchange.target = stable
      const headers = this.options.headers
      headers[UPSTREAM_VERSION_HEADER] = 'stable'
      if (!route.config.passHost) headers.host = stable.host
      this.send()
      return
    }
    exchange.mirror?.primaryFailed()
    // One line per failed request (a failed-over attempt is in the metrics, not the log).
    this.request.log.warn({ err: error, route: route.name, version: exchange.version, reason: failure.reason }, 'upstream request failed')
    const extra: OutgoingHeaders = exchange.closeConnection ? { connection: 'close' } : {}
    if (this.versionHeader !== false) extra[this.versionHeader] = exchange.version
    writeErrorResponse(res, failure.code, this.request.id, extra)
  }
}
