// What reply-from calls to send a request upstream (it accepts any object with `request`): sends
// on the exchange's pool with the route's timeouts and the exchange as abort signal, fails an
// eligible canary/green request over to stable once (failover.ts), and starts the shadow copy.

import type { Dispatcher } from 'undici'
import { classifyUpstreamError } from '../errors.ts'
import { kExchange, type Exchange } from './exchange.ts'
import { failsOver, mayFailOver } from './failover.ts'
import { UPSTREAM_VERSION_HEADER } from './header-names.ts'

export type UpstreamRequestOptions = Omit<Dispatcher.RequestOptions, 'signal' | 'headers'> & {
  headers: Record<string | symbol, unknown>
  signal?: unknown
}

type Callback = (err: Error | null, res?: Dispatcher.ResponseData) => void

export class UpstreamDispatcher {
  /** False when per-request recording is off (the benchmark's measure of what it costs). */
  private readonly record: boolean

  constructor (record: boolean) {
    this.record = record
  }

  request (opts: UpstreamRequestOptions, callback: Callback): void {
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

  private send (exchange: Exchange, opts: UpstreamRequestOptions, callback: Callback): void {
    const route = exchange.route
    const timeouts = route.config.timeouts
    opts.signal = exchange
    opts.headersTimeout = timeouts.headersMs
    opts.bodyTimeout = timeouts.bodyIdleMs
    const hasBody = opts.body !== '' && opts.body != null
    if (!mayFailOver(exchange.version, route.config.failover, opts.method, hasBody)) {
      exchange.target.pool.request(opts as Dispatcher.RequestOptions, callback)
      return
    }
    exchange.target.pool.request(opts as Dispatcher.RequestOptions, (err, res) => {
      if (err === null || exchange.cancelled) {
        callback(err, res)
        return
      }
      const failure = classifyUpstreamError(err)
      if (!failsOver(failure)) {
        callback(err, res)
        return
      }
      // Counted as the failed version's error, in its stats too (so a dying canary shows even
      // though its clients see no errors); the client is answered, and counted, by stable.
      const cells = route.metrics.versions[exchange.version]
      cells.upstreamErrors[failure.reason].inc()
      if (this.record) cells.window?.record(performance.now() - exchange.startedAt, true)
      exchange.version = 'stable'
      exchange.target = route.groups.stable.pick()
      opts.headers[UPSTREAM_VERSION_HEADER] = 'stable'
      if (!route.config.passHost) opts.headers.host = exchange.target.host
      exchange.target.pool.request(opts as Dispatcher.RequestOptions, callback)
    })
  }
}
