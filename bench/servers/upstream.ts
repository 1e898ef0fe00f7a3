// Benchmark upstream: a plain node:http server on 127.0.0.1 that answers every request with
// the same 64-byte JSON body (keep-alive). Usage: node bench/servers/upstream.ts <port> [name]

import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 18081)
const name = (process.argv[3] ?? 'stable').slice(0, 16)
// Padded to exactly 64 bytes so every scenario moves the same payload.
const json = JSON.stringify({ version: name, ok: true, pad: '' })
const body = Buffer.from(JSON.stringify({ version: name, ok: true, pad: 'x'.repeat(64 - json.length) }))
if (body.length !== 64) throw new Error(`upstream body is ${body.length} bytes, expected 64`)
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
