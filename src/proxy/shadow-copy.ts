// Shadow copies (docs/routing.md, "Shadow"): a share of a route's requests is sent again to its shadow
// upstream, after the primary request went out, and never awaited by it. Nothing of a shadow
// response reaches the client: its body is read and discarded (hashed when compared) so the
// socket goes back to the pool. Each copy is one object, driven by four events:
//   - `dispatched`: the primary was handed to its pool (the copy takes its method, path, headers);
//   - the request body, teed by the proxy's body guard (only bodies of known length within the
//     shadow's maxBodyBytes are mirrored; the copy waits for the whole body);
//   - the shadow's response, read by this object as an undici dispatch handler;
//   - with `compare`, the primary's response, as the forwarding handler relays it (forward.ts).
// The in-flight slot is taken when the copy is planned (before any body byte is kept), so
// `maxInFlight` bounds copies and the memory they hold together.

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Dispatcher } from 'undici'
import { classifyUpstreamError } from '../errors.ts'
import { countDuration } from '../metrics/cells.ts'
import { BodyCapture, compareResponses, type CapturedResponse } from '../shadow/compare.ts'
import { BUCKETS, type ShadowOutcome } from '../vocabulary.ts'
import { announcedBody } from './announced-body.ts'
import { SHADOW_HEADER, UPSTREAM_VERSION_HEADER } from './header-names.ts'
import { siblingTraceparent } from './trace-context.ts'
import type { ProxyRoute } from './proxy-routes.ts'
import type { UpstreamTarget } from './upstream-pools.ts'

/** Bit flags of what a copy still waits for before it is sent. */
const WAIT_DISPATCH = 1
const WAIT_BODY = 2

/** Where each side of a comparison stands. */
const PENDING = 0
const DONE = 1
const FAILED = 2

/**
 * Decides whether this request is copied, at the sampled rate. Counts `skipped` when it is
 * sampled but not eligible (method not listed, a body of unknown length or over the shadow's
 * maxBodyBytes, an upgrade) and `dropped` when maxInFlight copies are already in flight.
 * Returns the copy, holding an in-flight slot, or null.
 */
export function planShadowCopy (route: ProxyRoute, raw: IncomingMessage, requestId: string): ShadowCopy | null {
  const group = route.shadow
  const settings = route.config.shadow
  if (group === null || settings.percentBp === 0 || Math.random() * BUCKETS >= settings.percentBp) return null
  const cells = route.metrics.shadow
  const method = raw.method as string
  const headers = raw.headers
  const length = headers['content-length']
  const bodyBytes = length === undefined ? 0 : Number(length)
  if (!settings.methods.has(method) || headers.upgrade !== undefined || announcedBody(headers) === 'chunked' || bodyBytes > settings.maxBodyBytes) {
    cells.skipped.inc()
    return null
  }
  const gate = route.shadowGate
  if (gate.inFlight >= settings.maxInFlight || gate.paused(performance.now())) {
    cells.dropped.inc()
    return null
  }
  gate.inFlight++
  // The shadow's hosts are never taken out (its gate pauses copies instead): pick always finds one.
  return new ShadowCopy(route, group.pick() as UpstreamTarget, method, raw.url as string, requestId, bodyBytes)
}

export class ShadowCopy implements Dispatcher.DispatchHandler {
  readonly route: ProxyRoute
  /** True when this copy's response is compared with the primary's. */
  readonly compares: boolean
  private readonly target: UpstreamTarget
  private readonly method: string
  private readonly url: string
  private readonly requestId: string
  private readonly expectedBytes: number
  private waiting: number
  private path = ''
  private headers: Record<string, string | string[]> | null = null
  private body: Buffer[] | null
  private bodyBytes = 0
  /** True from the moment the slot is given back: nothing else may count or send. */
  private settled = false
  private startedAt = 0
  private timer: NodeJS.Timeout | null = null
  private controller: Dispatcher.DispatchController | null = null
  private shadowStatus = 0
  private shadowHeaders: IncomingHttpHeaders | null = null
  private shadowBody: BodyCapture | null = null
  private shadowSide = PENDING
  private primarySide = PENDING
  private primary: CapturedResponse | null = null
  private primaryStatus = 0
  private primaryHeaders: IncomingHttpHeaders | null = null
  /** The primary's body on its way to the client (compared copies only), until it ends or fails. */
  private primaryBody: BodyCapture | null = null
  private shadowResult: CapturedResponse | null = null

  constructor (route: ProxyRoute, target: UpstreamTarget, method: string, url: string, requestId: string, bodyBytes: number) {
    this.route = route
    this.target = target
    this.method = method
    this.url = url
    this.requestId = requestId
    this.expectedBytes = bodyBytes
    this.compares = route.compareRules !== null
    this.body = bodyBytes > 0 ? [] : null
    this.waiting = bodyBytes > 0 ? WAIT_DISPATCH | WAIT_BODY : WAIT_DISPATCH
  }

  /** True while the copy needs the request body's bytes (the body guard tees them here). */
  get wantsBody (): boolean {
    return (this.waiting & WAIT_BODY) !== 0 && !this.settled
  }

  /**
   * The primary request was handed to its pool: the copy takes its path and headers (as sent
   * upstream: x-request-id, x-forwarded-*, via; traceparent with a span id of its own), and
   * goes out now if it has no body to wait for.
   */
  dispatched (path: string, headers: Readonly<Record<string, string | string[] | undefined>>): void {
    if (this.settled || (this.waiting & WAIT_DISPATCH) === 0) return
    const copy: Record<string, string | string[]> = {}
    // A copy: the primary's object is undici's now, and the failover may still change it.
    for (const name in headers) {
      const value = headers[name]
      if (value !== undefined) copy[name] = value
    }
    copy[SHADOW_HEADER] = '1'
    copy[UPSTREAM_VERSION_HEADER] = 'shadow'
    const traceparent = copy.traceparent
    if (typeof traceparent === 'string') copy.traceparent = siblingTraceparent(traceparent)
    if (!this.route.config.passHost) copy.host = this.target.host
    this.path = path
    this.headers = copy
    this.waiting &= ~WAIT_DISPATCH
    if (this.waiting === 0) this.send()
  }

  /** A chunk of the request body on its way to the primary (kept by reference, not copied). */
  bodyChunk (chunk: Buffer): void {
    if (this.body === null) return
    this.bodyBytes += chunk.length
    // Content-Length said otherwise: undici will fail the primary; the copy is not sent.
    if (this.bodyBytes > this.expectedBytes) {
      this.abandon()
      return
    }
    this.body.push(chunk)
  }

  /** The whole request body went through. */
  bodyEnded (): void {
    if (this.settled || (this.waiting & WAIT_BODY) === 0) return
    if (this.bodyBytes !== this.expectedBytes) {
      this.abandon()
      return
    }
    this.waiting &= ~WAIT_BODY
    if (this.waiting === 0) this.send()
  }

  /**
   * The client's response closed. A copy that never went out (the body did not arrive whole,
   * or the request never reached the upstream) is given up and counted as skipped; a primary
   * whose response did not complete cannot be compared.
   */
  clientClosed (): void {
    if (!this.settled && this.waiting !== 0) {
      this.abandon()
      return
    }
    if (this.primarySide === PENDING) this.primaryFailed()
  }

  /** With `compare`: the primary's response head, on its way to the client. */
  primaryStarted (status: number, headers: IncomingHttpHeaders): void {
    if (!this.compares || this.primarySide !== PENDING) return
    this.primaryStatus = status
    this.primaryHeaders = headers
    this.primaryBody = new BodyCapture(headerText(headers['content-type']), headerText(headers['content-encoding']))
  }

  /** A chunk of the primary's body (a copy of its bytes feeds the comparison). */
  primaryChunk (chunk: Buffer): void {
    this.primaryBody?.write(chunk)
  }

  /** The primary's body ended: it can be compared. */
  primaryEnded (): void {
    const body = this.primaryBody
    if (body === null || this.primarySide !== PENDING) return
    this.primarySide = DONE
    this.primaryBody = null
    this.primary = { status: this.primaryStatus, headers: this.primaryHeaders ?? {}, body: body.end() }
    this.tryCompare()
  }

  /** The primary failed, or its response did not complete: nothing to compare with. */
  primaryFailed (): void {
    if (this.primarySide !== PENDING) return
    this.primarySide = FAILED
    this.primaryBody = null
  }

  // ---- sending the copy ------------------------------------------------------------------------

  private send (): void {
    const settings = this.route.config.shadow
    const body = this.body === null ? null : this.body.length === 1 ? this.body[0] as Buffer : Buffer.concat(this.body, this.bodyBytes)
    this.body = null
    const headers = this.headers as Record<string, string | string[]>
    if (body !== null) headers['content-length'] = String(body.length)
    this.startedAt = performance.now()
    this.timer = setTimeout(() => this.timeout(), settings.timeoutMs)
    this.timer.unref()
    try {
      this.target.pool.dispatch({
        method: this.method as Dispatcher.HttpMethod,
        path: this.path,
        headers,
        body,
        headersTimeout: settings.timeoutMs,
        bodyTimeout: settings.timeoutMs,
      }, this)
    } catch (err) {
      this.onResponseError(null, err as Error)
    }
  }

  private timeout (): void {
    this.timer = null
    const error = Object.assign(new Error('shadow timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })
    if (this.controller !== null && !this.controller.aborted) this.controller.abort(error)
    else this.onResponseError(null, error)
  }

  // ---- undici dispatch handler: the shadow's response ------------------------------------------

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    // Timed out while it waited in the pool for a connection: it must not go out now.
    if (this.shadowSide !== PENDING) controller.abort(new Error('shadow copy timed out before it was sent'))
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // An interim 1xx is followed by the final response.
    if (statusCode < 200) return
    this.shadowStatus = statusCode
    if (this.compares) {
      this.shadowHeaders = headers
      this.shadowBody = new BodyCapture(headerText(headers['content-type']), headerText(headers['content-encoding']))
    }
  }

  onResponseData (_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // Read and discarded: only a compared copy hashes (or, for JSON within the cap, keeps) it.
    this.shadowBody?.write(chunk)
  }

  onResponseEnd (): void {
    if (this.shadowSide !== PENDING) return
    this.shadowSide = DONE
    const status = this.shadowStatus
    this.route.shadowGate.answered()
    this.finish(status >= 500 ? 'error' : 'ok', status >= 500)
    if (this.shadowBody !== null) {
      this.shadowResult = { status, headers: this.shadowHeaders ?? {}, body: this.shadowBody.end() }
      this.shadowBody = null
      this.tryCompare()
    }
  }

  onResponseError (_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.shadowSide !== PENDING) return
    this.shadowSide = FAILED
    this.shadowBody = null
    // Failed shadow attempts are upstream errors of version "shadow", by reason.
    const metrics = this.route.metrics
    metrics.shadowVersion.upstreamErrors[classifyUpstreamError(error).reason].inc()
    const gate = this.route.shadowGate
    if (gate.failed()) metrics.shadowPausedUntil = gate.pausedUntil
    this.finish('error', true)
  }

  // ---- settling --------------------------------------------------------------------------------

  /** Counts the outcome, the shadow's latency and stats, and gives the slot back. */
  private finish (outcome: ShadowOutcome, isError: boolean): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.settled) return
    this.settled = true
    this.route.shadowGate.inFlight--
    const metrics = this.route.metrics
    metrics.shadow[outcome].inc()
    const latencyMs = performance.now() - this.startedAt
    countDuration(metrics.shadowVersion, latencyMs)
    metrics.shadowVersion.window?.record(latencyMs, isError)
  }

  /** The copy will not be sent: counted as skipped, its slot and kept body released. */
  private abandon (): void {
    if (this.settled) return
    this.settled = true
    this.body = null
    this.route.shadowGate.inFlight--
    this.route.metrics.shadow.skipped.inc()
  }

  private tryCompare (): void {
    const primary = this.primary
    const shadow = this.shadowResult
    if (primary === null || shadow === null) return
    this.primary = null
    this.shadowResult = null
    const rules = this.route.compareRules
    if (rules === null) return
    const result = compareResponses(primary, shadow, rules)
    const metrics = this.route.metrics
    for (const kind of result.kinds) metrics.mismatches[kind].inc()
    metrics.mismatchLog.record(result.kinds.length === 0
      ? null
      : {
          at: new Date().toISOString(),
          requestId: this.requestId,
          method: this.method,
          url: this.url,
          primary: { status: primary.status },
          shadow: { status: shadow.status },
          kinds: result.kinds,
          diff: result.diff,
        })
  }
}

function headerText (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}
