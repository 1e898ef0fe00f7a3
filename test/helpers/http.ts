// A plain HTTP client for tests (node:http, one fresh connection per request unless an agent
// is given), so what the proxy sends is observed without a client library's own rewriting.

import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
  json<T = Record<string, unknown>> (): T
}

export interface SendOptions {
  method?: string
  headers?: OutgoingHttpHeaders
  body?: string | Buffer
  agent?: Agent | false
}

/**
 * A keep-alive agent that lets idle connections go before the server closes them. Node's Agent
 * honours the server's `Keep-Alive: timeout=N` hint (closing at N - 1 s) only when it has a
 * `timeout` of its own: without one it keeps an idle socket until the server's idle timeout
 * closes it, and a request sent on it in that instant fails with `socket hang up`.
 */
export function keepAliveAgent (maxSockets = Infinity): Agent {
  return new Agent({ keepAlive: true, maxSockets, timeout: 5000 })
}

export function send (url: string, options: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) })
      })
    })
    req.on('error', reject)
    req.end(options.body)
  })
}
