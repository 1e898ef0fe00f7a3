// Per-request state of one proxied exchange: the routing decision, the chosen upstream, what
// failed, and the abort signal undici listens to. One object per request, nothing else.

import type { Readable } from 'node:stream'
import type { ErrorCode } from '../errors.ts'
import type { Decision } from '../routing/pick-version.ts'
import type { DecisionReason, Version } from '../vocabulary.ts'
import type { ProxyRoute } from './proxy-routes.ts'
import type { ShadowCopy } from './shadow-copy.ts'
import type { UpstreamTarget } from './upstream-pools.ts'

type Listener = () => void

/** Where the exchange hangs on the request, the response and the upstream request's headers. */
export const kExchange = Symbol('weir.exchange')

export interface WithExchange { [kExchange]?: Exchange }

/** The exchange of a request the proxy routed (fastify request or raw message). */
export function exchangeOf (request: { raw: object }): Exchange | undefined {
  return (request.raw as WithExchange)[kExchange]
}

/**
 * The exchange doubles as the upstream request's abort signal: undici accepts any object with
 * `once('abort')`/`removeListener`, so no AbortController is allocated per request. It must not
 * have `aborted` (undici then treats it as an EventTarget) or `reason` (taken as the abort error).
 */
export class Exchange implements Decision {
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
  /** Set when the client, not the upstream, broke the request (body too large or too slow). */
  clientError: ErrorCode | null = null
  /** The client went away and the upstream request was cancelled. */
  cancelled = false
  /** performance.now() in the onRequest hook; 0 when per-request recording is off. */
  startedAt = 0
  /** The upstream response body being relayed (recording only): its `errored` tells an upstream cut from a client leaving. */
  upstreamBody: Readable | null = null
  /** This request's shadow copy, when it is copied (see shadow-copy.ts). */
  mirror: ShadowCopy | null = null
  private abortListener: Listener | null = null

  constructor (route: ProxyRoute) {
    this.route = route
    // A placeholder: the proxy picks the real target once the version is known (picking here
    // would advance the round-robin cursor twice per request).
    this.target = route.groups.stable.targets[0] as UpstreamTarget
  }

  on (_event: 'abort', listener: Listener): this {
    this.abortListener = listener
    return this
  }

  once (event: 'abort', listener: Listener): this {
    return this.on(event, listener)
  }

  addListener (event: 'abort', listener: Listener): this {
    return this.on(event, listener)
  }

  removeListener (_event: 'abort', _listener: Listener): this {
    this.abortListener = null
    return this
  }

  /** Cancels the upstream request (client gone): undici closes the upstream socket or body. */
  abort (): void {
    if (this.cancelled) return
    this.cancelled = true
    const listener = this.abortListener
    this.abortListener = null
    if (listener !== null) listener()
  }
}
