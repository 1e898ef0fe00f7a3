// The headers weir changes on the way through: hop-by-hop headers removed both ways
// (RFC 9110 §7.6.1), X-Forwarded-* / Via / X-Request-Id / X-Weir-Version / traceparent added
// upstream, and the version header, the bucket cookie (with a Cache-Control no shared cache
// stores) and the route's Vary added to the response.

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { BlockList } from 'node:net'
import type { Exchange } from './exchange.ts'
import { isIn } from '../routing/smoke.ts'
import { CDN_CACHE_HEADERS, mergeVary, privateCacheControl } from './cache-headers.ts'
import { propagateTrace } from './trace-context.ts'
import { OVERRIDE_SECRET_HEADER, SHADOW_HEADER, SMOKE_HEADER, UPSTREAM_VERSION_HEADER } from './header-names.ts'

/**
 * Headers that describe one connection, never the message; `expect` too, since we answer
 * 100-continue ourselves; and weir's own secrets (override secret, smoke token), never passed on.
 */
const HOP_BY_HOP_REQUEST = ['keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding', 'expect', SHADOW_HEADER,
  OVERRIDE_SECRET_HEADER, SMOKE_HEADER] as const
const HOP_BY_HOP_REQUEST_SET: ReadonlySet<string> = new Set<string>(['connection', ...HOP_BY_HOP_REQUEST])
const HOP_BY_HOP_RESPONSE = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding'] as const

export function isTrustedPeer (trusted: BlockList | null, raw: IncomingMessage): boolean {
  if (trusted === null) return false
  const address = raw.socket.remoteAddress
  return address !== undefined && isIn(trusted, address)
}

export function isTlsRequest (raw: IncomingMessage, trustedPeer: boolean): boolean {
  if ((raw.socket as TLSSocket).encrypted === true) return true
  return trustedPeer && raw.headers['x-forwarded-proto'] === 'https'
}

export type OutgoingHeaders = Record<string, string | string[] | undefined>

/** The extra header of a reply after which the client's connection cannot be reused. */
export const CONNECTION_CLOSE: Readonly<OutgoingHeaders> = { connection: 'close' }

/** The names a Connection header lists (lower case), or null when it lists none but itself. */
function listedIn (connection: string | string[] | undefined): string[] | null {
  // "keep-alive" and "close" are the usual values and list no other header.
  if (typeof connection !== 'string' || connection === 'keep-alive' || connection === 'close') return null
  return connection.toLowerCase().split(',').map((name) => name.trim())
}

/**
 * The headers the upstream gets, built in one pass over the client's: every header but the
 * hop-by-hop ones and those Connection lists, then weir's own (see rewriteRequestHeaders).
 */
export function upstreamHeaders (raw: IncomingMessage, exchange: Exchange, requestId: string): OutgoingHeaders {
  const client = raw.headers
  const listed = listedIn(client.connection)
  const out: OutgoingHeaders = {}
  for (const name in client) {
    if (HOP_BY_HOP_REQUEST_SET.has(name) || (listed !== null && listed.includes(name))) continue
    out[name] = client[name]
  }
  return rewriteRequestHeaders(out, raw, exchange, requestId)
}

/**
 * Rewrites a copy of the client's headers that goes upstream, without `connection` and the
 * names it lists (upstreamHeaders; the WebSocket client's own copy). Mutates and returns `headers`.
 */
export function rewriteRequestHeaders (
  headers: OutgoingHeaders, raw: IncomingMessage, exchange: Exchange, requestId: string
): OutgoingHeaders {
  for (let i = 0; i < HOP_BY_HOP_REQUEST.length; i++) {
    const name = HOP_BY_HOP_REQUEST[i] as string
    if (headers[name] !== undefined) headers[name] = undefined
  }
  const client = raw.headers
  const peer = raw.socket.remoteAddress ?? ''
  if (exchange.trustedPeer) {
    const xff = client['x-forwarded-for']
    headers['x-forwarded-for'] = typeof xff === 'string' && xff !== '' ? xff + ', ' + peer : peer
    if (client['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = exchange.secure ? 'https' : 'http'
    if (client['x-forwarded-host'] === undefined && client.host !== undefined) headers['x-forwarded-host'] = client.host
  } else {
    // An untrusted client's forwarding claims are replaced, never extended.
    headers['x-forwarded-for'] = peer
    headers['x-forwarded-proto'] = exchange.secure ? 'https' : 'http'
    headers['x-forwarded-host'] = client.host
    if (headers.forwarded !== undefined) headers.forwarded = undefined
  }
  const via = client.via
  const hop = raw.httpVersion === '1.0' ? '1.0 weir' : '1.1 weir'
  headers.via = via === undefined ? hop : via + ', ' + hop
  headers['x-request-id'] = requestId
  headers[UPSTREAM_VERSION_HEADER] = exchange.version
  headers.host = exchange.route.config.passHost && client.host !== undefined ? client.host : exchange.target.host
  const traceparent = client.traceparent as string | undefined
  // No trace to carry or start: nothing to do (tracing.generate off, none sent).
  if (traceparent !== undefined || exchange.generateTrace) propagateTrace(headers, traceparent, exchange, exchange.generateTrace)
  else if (headers.tracestate !== undefined) headers.tracestate = undefined
  exchange.forwarded = true
  return headers
}

const HOP_BY_HOP_RESPONSE_SET: ReadonlySet<string> = new Set(HOP_BY_HOP_RESPONSE)
const CDN_CACHE_HEADER_SET: ReadonlySet<string> = new Set(CDN_CACHE_HEADERS)

/**
 * The response headers the client gets: the upstream's minus hop-by-hop ones (and any it lists
 * in Connection), plus the version header, the route's Vary and the bucket cookie; a response
 * that sets the cookie gets a Cache-Control no shared cache stores it under, and loses the
 * CDN-only cache headers that could say otherwise. Copies into a fresh object instead of
 * deleting: `delete` turns the object into a slow dictionary for every later reader.
 */
export function rewriteResponseHeaders (headers: IncomingHttpHeaders, exchange: Exchange | null, versionHeader: string | false): IncomingHttpHeaders {
  const listed = listedIn(headers.connection)
  const newCookie = exchange !== null && exchange.newCookie
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    if (HOP_BY_HOP_RESPONSE_SET.has(name) || (listed !== null && listed.includes(name)) || (newCookie && CDN_CACHE_HEADER_SET.has(name))) continue
    out[name] = headers[name]
  }
  if (exchange === null) return out
  if (versionHeader !== false) out[versionHeader] = exchange.version
  const vary = exchange.route.vary
  if (vary !== null) out.vary = out.vary === undefined ? vary : mergeVary(out.vary, vary)
  if (newCookie) {
    const cookie = exchange.route.bucketCookie.setCookie(exchange.bucket, exchange.secure)
    const existing = out['set-cookie']
    out['set-cookie'] = existing === undefined ? [cookie] : [...existing, cookie]
    // One client's bucket: no shared cache may store it (docs/proxying.md, "Caches").
    out['cache-control'] = privateCacheControl(out['cache-control'])
  }
  return out
}
