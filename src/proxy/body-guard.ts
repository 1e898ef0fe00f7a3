// The request body on its way upstream: counted (the size limit of bodies of unknown length),
// bounded in time (timeouts.requestBody), and teed by reference to the request's shadow copy.

import type { IncomingMessage } from 'node:http'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { WeirError, type ErrorCode } from '../errors.ts'
import type { Exchange } from './exchange.ts'
import type { ShadowCopy } from './shadow-copy.ts'

/** Counts request body bytes and bounds how long the body may take; a breach is the client's error. */
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
    this.destroy(new WeirError(code))
  }
}

/** The request's body, through a BodyGuard (call it only for a request that announces a body). */
export function guardBody (raw: IncomingMessage, exchange: Exchange): Readable {
  const config = exchange.route.config
  const guard = new BodyGuard(exchange, config.maxBodyBytes, config.timeouts.requestBodyMs)
  raw.on('error', (err) => guard.destroy(err))
  return raw.pipe(guard)
}
