// Response accounting: the 'close' listener of every client response counts it under the version
// that answered, with the status sent, and records it in that version's rolling stats. Made once
// (module scope) and shared by every response: nothing is allocated per request.

import type { ServerResponse } from 'node:http'
import { classifyUpstreamError } from '../errors.ts'
import { CLIENT_CLOSED_REQUEST, countResponse } from '../metrics/cells.ts'
import { kExchange, type Exchange, type WithExchange } from './exchange.ts'

/** Listener on the client's ServerResponse: closing before the response finished aborts upstream. */
export function abortOnClientClose (this: ServerResponse & WithExchange): void {
  const exchange = this[kExchange] as Exchange
  exchange.mirror?.clientClosed()
  if (!this.writableFinished) exchange.abort()
}

/**
 * The 'close' listener when requests are recorded (isError: status >= 500):
 *  - Refused for the client's own fault (413 body too large, 408 body too slow): counted, not
 *    recorded in the stats, as the version did not (fully) see the request.
 *  - The response did not finish and the upstream body failed: the upstream cut it after its
 *    head went out. Counted with the status sent, as an upstream error and a stats error.
 *  - Otherwise an unfinished response means the client went away: the upstream request is
 *    aborted and the response counted as 499 (nginx's "client closed request"), not recorded in
 *    the stats, which would learn nothing about the version from it.
 * A request that reached its version by override is never recorded in the stats: the analysis
 * judges the traffic the weights send, not a tester's probes (docs/routing.md).
 */
export function recordOnClose (this: ServerResponse & WithExchange): void {
  const exchange = this[kExchange] as Exchange
  const latencyMs = performance.now() - exchange.startedAt
  exchange.mirror?.clientClosed()
  const cells = exchange.route.metrics.versions[exchange.version]
  if (this.writableFinished) {
    const status = this.statusCode
    countResponse(cells, status, latencyMs)
    // A request forced by override (a tester's, the smoke check's) is counted, not analysed.
    if (exchange.clientError === null && exchange.decidedBy !== 'override') cells.window?.record(latencyMs, status >= 500)
    return
  }
  const cut = exchange.upstreamCut
  if (cut === null) {
    exchange.abort()
    countResponse(cells, CLIENT_CLOSED_REQUEST, latencyMs)
    return
  }
  cells.upstreamErrors[classifyUpstreamError(cut).reason].inc()
  countResponse(cells, this.statusCode, latencyMs)
  if (exchange.decidedBy !== 'override') cells.window?.record(latencyMs, true)
}
