// A plain HTTP client for tests (node:http, one fresh connection per request unless an agent
// is given), so what the proxy sends is observed without a client library's own rewriting.

import { request as httpRequest, type Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'

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
