// "The Node floor": the least a Node reverse proxy can do per request: a node:http server that
// forwards on one undici Pool and pipes the answer back, copying status and end-to-end headers.
// Usage: node bench/servers/undici-floor.ts <port> <upstream>

import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import { Pool } from 'undici'

const port = Number(process.argv[2] ?? 18091)
const upstream = process.argv[3] ?? 'http://127.0.0.1:18081'

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

function endToEnd (headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name]
  return out
}

const pool = new Pool(upstream)

const server = createServer((req, res) => {
  // A bodyless request is sent without a body (as reply-from does): a stream body on a GET
  // would make undici's framing depend on whether the request stream has ended yet.
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  pool.request({
    path: req.url ?? '/',
    method: (req.method ?? 'GET') as 'GET',
    headers: endToEnd(req.headers) as Record<string, string>,
    body: hasBody ? req : null,
  }, (err, data) => {
    if (err !== null) {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
      res.end('bad gateway\n')
      return
    }
    res.writeHead(data.statusCode, endToEnd(data.headers as IncomingHttpHeaders))
    data.body.pipe(res)
  })
})
server.listen(port, '127.0.0.1', () => process.stdout.write(`undici floor listening on ${port} -> ${upstream}\n`))
process.on('SIGTERM', () => process.exit(0))
