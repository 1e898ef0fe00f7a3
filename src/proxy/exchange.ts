// Per-request state of one proxied exchange: the routing decision, the chosen upstream, what
// failed, and the upstream request to abort when the client leaves. One object per request.

import type { Dispatcher } from 'undici'
import type { ErrorCode } from '../errors.ts'
import type { Decision } from '../routing/pick-version.ts'
import type { DecisionReason, Version } from '../vocabulary.ts'
import type { ProxyRoute } from './proxy-routes.ts'
import type { ShadowCopy } from './shadow-copy.ts'
import type { TraceFields } from './trace-context.ts'
import type { UpstreamTarget } from './upstream-pools.ts'

/** Where the exchange hangs on the request, the response and the upstream request's headers. */
export const kExchange = Symbol('weir.exchange')

export interface WithExchange { [kExchange]?: Exchange }

/** The exchange of a request the proxy routed (fastify request or raw message). */
export function exchangeOf (request: { raw: object }): Exchange | undefined {
  return (request.raw as WithExchange)[kExchange]
}

/** What the upstream request is aborted with when the client goes away (never shown to anyone). */
export const CLIENT_GONE = Object.assign(new Error('the client closed the connection'), { code: 'UND_ERR_ABORTED' })

/** One proxied request: the routing decision, the chosen upstream, what failed, and how to cancel it. */
export class Exchange implements Decision, TraceFields {
  version: Version = 'stable'
  decidedBy: DecisionReason = 'random'
  bucket = -1
  newCookie = false
  readonly route: ProxyRoute
  target: UpstreamTarget
  /** The peer is in trustedProxies: its X-Forwarded-* headers are extended, not replaced. */
  trustedPeer = false
  /** The client reached us over TLS (directly, or per a trusted X-Forwarded-Proto). */
  secure = false
  /** The response must carry Connection: close (weir is draining). */
  closeConnection = false
  /** Set when the client, not the upstream, broke the request (body too large or too slow). */
  clientError: ErrorCode | null = null
  /** The client went away and the upstream request was cancelled. */
  cancelled = false
  /** performance.now() in the onRequest hook; 0 when per-request recording is off. */
  startedAt = 0
  /** The upstream failed after the response head was sent: the response was cut. */
  upstreamCut: Error | null = null
  /** This request's shadow copy, when it is copied (see shadow-copy.ts). */
  mirror: ShadowCopy | null = null
  /** Start a trace when the client sent no valid traceparent (config `tracing.generate`). */
  generateTrace = true
  /** The request's trace (trace-context.ts): '' until its headers go upstream, or when it has none. */
  traceId = ''
  spanId = ''
  parentSpanId = ''
  traceFlags = ''
  /** Its headers were built for an upstream (it was, or was about to be, sent). */
  forwarded = false
  /** The upstream request in flight (set by the forwarding handler), to abort it. */
  controller: Dispatcher.DispatchController | null = null

  constructor (route: ProxyRoute) {
    this.route = route
    // A placeholder: the proxy picks the real target once the version is known (picking here
    // would advance the round-robin cursor twice per request).
    this.target = route.groups.stable.targets[0] as UpstreamTarget
  }

  /** Cancels the upstream request (client gone): undici closes the upstream socket or body. */
  abort (): void {
    if (this.cancelled) return
    this.cancelled = true
    const controller = this.controller
    if (controller !== null && !controller.aborted) controller.abort(CLIENT_GONE)
  }
}
