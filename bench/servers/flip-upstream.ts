// A canary for bench/blast-radius.ts that breaks on command: answers like upstream.ts until
// POST /__flip, then answers every request 500. GET /__stats tells what it sent and when (epoch
// ms, this machine's clock, so the bench can set it against weir's event times).
// Usage: node bench/servers/flip-upstream.ts <port> [name]

import { createServer, type ServerResponse } from 'node:http'

const port = Number(process.argv[2] ?? 18282)
const name = (process.argv[3] ?? 'canary').slice(0, 16)

// The same 64-byte body as upstream.ts, so the healthy canary moves what stable does.
const json = JSON.stringify({ version: name, ok: true, pad: '' })
const body = Buffer.from(JSON.stringify({ version: name, ok: true, pad: 'x'.repeat(64 - json.length) }))
if (body.length !== 64) throw new Error(`upstream body is ${body.length} bytes, expected 64`)
const okHeaders = { 'content-type': 'application/json', 'content-length': String(body.length) }
const errorBody = Buffer.from('{"error":"canary is broken"}')
const errorHeaders = { 'content-type': 'application/json', 'content-length': String(errorBody.length) }

/** The most 500 times kept: far more than a bench round sends (~50 a second at 5 % of 1 000 req/s). */
const MAX_TIMES = 100_000

const stats = {
  /** 200s sent, all before the flip. */
  ok: 0,
  /** 500s sent, all after the flip. */
  failed: 0,
  flippedAt: null as number | null,
  firstFailedAt: null as number | null,
  lastFailedAt: null as number | null,
  /** When each 500 was sent (epoch ms): the bench counts those sent after the revert. */
  failedAt: [] as number[],
}
let failing = false

function answer (res: ServerResponse): void {
  if (!failing) {
    stats.ok++
    res.writeHead(200, okHeaders).end(body)
    return
  }
  const now = Date.now()
  stats.failed++
  stats.firstFailedAt ??= now
  stats.lastFailedAt = now
  if (stats.failedAt.length < MAX_TIMES) stats.failedAt.push(now)
  res.writeHead(500, errorHeaders).end(errorBody)
}

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.url === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats))
    return
  }
  if (req.url === '/__flip' && req.method === 'POST') {
    failing = true
    stats.flippedAt ??= Date.now()
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ flippedAt: stats.flippedAt }))
    return
  }
  // Drain any request body before answering so the connection stays reusable.
  if (req.complete) {
    answer(res)
    return
  }
  req.resume()
  req.on('end', () => answer(res))
})
server.listen(port, '127.0.0.1', () => process.stdout.write(`flip upstream ${name} listening on ${port}\n`))
process.on('SIGTERM', () => process.exit(0))
