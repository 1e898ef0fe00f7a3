// The access log (config `accessLog`): one JSON line per sampled request, written on weir's log
// when its response closes. A request that is not sampled pays one comparison (app.ts); a
// sampled one, this entry and the line.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { CLIENT_CLOSED_REQUEST } from '../metrics/cells.ts'
import { kExchange, type WithExchange } from './exchange.ts'

const kAccess = Symbol('weir.access')

/** What the line needs that the response does not hold, taken when the request arrives. */
interface AccessEntry {
  readonly log: FastifyBaseLogger
  readonly requestId: string
  /** The request: its method and its URL as routed (origin-form), read when the line is written. */
  readonly raw: IncomingMessage
  readonly startedAt: number
  /** The connection, kept: a finished response lets go of it (res.socket is null by 'close'). */
  socket: Socket | null
  /** The connection's bytesWritten before this response's first byte. */
  bytesBefore: number
}

type Logged = ServerResponse & WithExchange & { [kAccess]?: AccessEntry }

/** Whether this request is logged, at the sampled share (0: never, 1: always). */
export function sampled (share: number): boolean {
  return share !== 0 && (share >= 1 || Math.random() < share)
}

/**
 * Starts the request's entry: its line is written when `res` closes. The byte count starts from
 * the connection's count when the response gets the connection (a pipelined request waits for
 * the one before it), so it is this response's bytes, head included (nginx's $bytes_sent).
 */
export function logOnClose (log: FastifyBaseLogger, raw: IncomingMessage, res: ServerResponse, requestId: string): void {
  const socket = res.socket
  const entry: AccessEntry = {
    log,
    requestId,
    raw,
    startedAt: performance.now(),
    socket,
    bytesBefore: socket === null ? 0 : socket.bytesWritten,
  }
  ;(res as Logged)[kAccess] = entry
  if (socket === null) {
    res.once('socket', (assigned: Socket) => {
      entry.socket = assigned
      entry.bytesBefore = assigned.bytesWritten
    })
  }
  res.on('close', writeAccessLine)
}

/** The 'close' listener of a logged response (module scope: one function for every response). */
function writeAccessLine (this: Logged): void {
  const entry = this[kAccess] as AccessEntry
  const exchange = this[kExchange]
  const socket = entry.socket
  // An unfinished response whose upstream did not cut it: the client left (499, as in the metrics).
  const status = this.writableFinished || exchange?.upstreamCut != null ? this.statusCode : CLIENT_CLOSED_REQUEST
  const forwarded = exchange !== undefined && exchange.forwarded
  const url = entry.raw.url ?? '/'
  const query = url.indexOf('?')
  entry.log.info({
    route: exchange?.route.name ?? null,
    version: exchange?.version ?? null,
    reason: exchange?.decidedBy ?? null,
    method: entry.raw.method,
    // Without the query: queries may carry tokens.
    path: query === -1 ? url : url.slice(0, query),
    status,
    bytes: socket === null ? 0 : socket.bytesWritten - entry.bytesBefore,
    durationMs: Math.round((performance.now() - entry.startedAt) * 1000) / 1000,
    // The origin as the config names it (origins carry no credentials: config/rules.ts).
    upstream: forwarded ? exchange.target.origin : null,
    client: entry.raw.socket.remoteAddress ?? null,
    requestId: entry.requestId,
    traceId: exchange === undefined || exchange.traceId === '' ? null : exchange.traceId,
    spanId: exchange === undefined || exchange.spanId === '' ? null : exchange.spanId,
    parentSpanId: exchange === undefined || exchange.parentSpanId === '' ? null : exchange.parentSpanId,
  }, 'access')
}
