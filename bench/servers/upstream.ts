// Benchmark upstream: a plain node:http server on 127.0.0.1 that answers every request with
// the same JSON body of `bytes` bytes (64 unless given), keep-alive.
// Usage: node bench/servers/upstream.ts <port> [name] [bytes]

import { createServer } from 'node:http'
import { upstreamBody } from '../upstream-body.ts'

const port = Number(process.argv[2] ?? 18081)
const name = (process.argv[3] ?? 'stable').slice(0, 16)
const body = Buffer.from(upstreamBody(name, Number(process.argv[4] ?? 64)))
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) }

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  // Drain any request body before answering so the connection stays reusable.
  if (req.complete) {
    res.writeHead(200, headers).end(body)
    return
  }
  req.resume()
  req.on('end', () => res.writeHead(200, headers).end(body))
})
server.listen(port, '127.0.0.1', () => process.stdout.write(`upstream ${name} listening on ${port}\n`))
process.on('SIGTERM', () => process.exit(0))
