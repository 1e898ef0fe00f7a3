// A misbehaving shadow upstream for bench/shadow.ts. Every request is answered by `mode`:
//   hang   reads the request, never answers;       500    answers 500 with a Set-Cookie;
//   slow   answers like upstream.ts after <delayMs>; reset  sends headers and 20 of 64 body bytes, then destroys the socket.
// GET /__stats (any mode) answers JSON: copies seen, with x-weir-shadow, peak open at once.
// Usage: node bench/servers/shadow-upstream.ts <port> <hang|500|slow|reset> [delayMs=100]

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'

type Mode = 'hang' | '500' | 'slow' | 'reset'
const MODES: readonly Mode[] = ['hang', '500', 'slow', 'reset']

const port = Number(process.argv[2] ?? 18183)
const mode = process.argv[3] as Mode
if (!MODES.includes(mode)) throw new Error(`mode must be one of ${MODES.join(', ')}, got "${String(mode)}"`)
const delayMs = Number(process.argv[4] ?? 100)

// The same 64-byte body as upstream.ts, so a slow shadow moves what a healthy one does.
const json = JSON.stringify({ version: 'shadow', ok: true, pad: '' })
const body = Buffer.from(JSON.stringify({ version: 'shadow', ok: true, pad: 'x'.repeat(64 - json.length) }))
if (body.length !== 64) throw new Error(`shadow body is ${body.length} bytes, expected 64`)
const okHeaders = { 'content-type': 'application/json', 'content-length': String(body.length) }
const errorBody = Buffer.from('{"error":"shadow is broken"}')
const errorHeaders = {
  'content-type': 'application/json',
  'content-length': String(errorBody.length),
  'set-cookie': 'shadow_session=leaked; Path=/; HttpOnly',
}

const stats = { requests: 0, markedShadow: 0, open: 0, peakOpen: 0 }

function answer (req: IncomingMessage, res: ServerResponse): void {
  switch (mode) {
    case 'hang':
      // Keep reading (so the socket stays healthy) and never write: only the client can end it.
      req.resume()
      return
    case '500':
      res.writeHead(500, errorHeaders).end(errorBody)
      return
    case 'slow':
      setTimeout(() => {
        if (!res.destroyed) res.writeHead(200, okHeaders).end(body)
      }, delayMs)
      return
    case 'reset':
      res.writeHead(200, okHeaders)
      res.write(body.subarray(0, 20))
      // After the headers and the partial body are flushed: a cut mid-body, not a refused answer.
      setTimeout(() => res.socket?.destroy(), 5)
  }
}

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.url === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats))
    return
  }
  stats.requests++
  if (req.headers['x-weir-shadow'] === '1') stats.markedShadow++
  stats.open++
  if (stats.open > stats.peakOpen) stats.peakOpen = stats.open
  let open = true
  const closed = (): void => {
    if (!open) return
    open = false
    stats.open--
  }
  // 'close' fires once the answer is sent or the socket is gone, whichever comes first. A hung
  // request is also over when the client's FIN arrives ('end'), a turn before 'close': counting
  // it open until then would show copies weir already gave up as still in flight.
  res.once('close', closed)
  if (mode === 'hang') req.socket.once('end', closed)
  if (req.complete || mode === 'hang') {
    answer(req, res)
    return
  }
  req.resume()
  req.once('end', () => answer(req, res))
})
server.listen(port, '127.0.0.1', () => process.stdout.write(`shadow upstream (${mode}) listening on ${port}\n`))
process.on('SIGTERM', () => process.exit(0))
