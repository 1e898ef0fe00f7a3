// Tools for tests that must see the wire: raw client sockets (for what node:http refuses to
// send, or sends too politely), and an upstream that records every request as it starts, with
// the bytes that reached it and whether it was cut short.

import { createHash } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'

export function openSocket (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
  })
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Reads what the server writes on a raw socket until it closes the connection (at most
 * `limitMs`), and parses the first response in it. Null when no complete head arrived.
 */
export function readUntilClose (socket: Socket, limitMs: number): Promise<RawResponse | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const timer = setTimeout(finish, limitMs)
    function finish (): void {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('utf8')
      const split = text.indexOf('\r\n\r\n')
      if (split === -1) {
        resolve(null)
        return
      }
      const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(split + 4) })
    }
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', () => {})
    socket.once('close', finish)
  })
}

/**
 * Sends a request as `curl -X POST URL` does: only the headers given (no Content-Length, no
 * Content-Type unless given), then `body` as is; reads the answer until the server closes.
 */
export async function bareRequest (url: string, method: string, path: string, headers: Record<string, string> = {}, body = ''): Promise<RawResponse> {
  const { host, port } = new URL(url)
  const socket = await openSocket(Number(port))
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`, 'User-Agent: curl/8.5.0', 'Accept: */*', 'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  socket.write(lines.join('\r\n') + '\r\n\r\n' + body)
  const reply = await readUntilClose(socket, 5000)
  if (reply === null) throw new Error(`no answer to ${method} ${path}`)
  return reply
}

/** What a counting upstream saw of one request. */
export interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bytes: number
  /** sha256 (hex) of the whole body, once it ended; null while it is arriving or when cut short. */
  sha256: string | null
  complete: boolean
  /** performance.now() when the request closed before its whole body had arrived, else null. */
  abortedAt: number | null
}

export interface CountingUpstream {
  readonly url: string
  readonly seen: Seen[]
  close (): Promise<void>
}

/**
 * An upstream on 127.0.0.1 that records each request when its head arrives and answers GET
 * and HEAD at once, everything else when the body ends, with JSON `{ bytes, sha256 }`.
 */
export async function startCountingUpstream (): Promise<CountingUpstream> {
  const seen: Seen[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    const entry: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes: 0, sha256: null, complete: false, abortedAt: null }
    seen.push(entry)
    const hash = createHash('sha256')
    req.on('data', (chunk: Buffer) => {
      entry.bytes += chunk.length
      hash.update(chunk)
    })
    req.on('error', () => {})
    req.on('close', () => {
      entry.complete = req.complete
      if (!req.complete) entry.abortedAt = performance.now()
    })
    if (req.method === 'GET' || req.method === 'HEAD') {
      res.end('ok')
      return
    }
    req.on('end', () => {
      entry.sha256 = hash.digest('hex')
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ bytes: entry.bytes, sha256: entry.sha256 }))
    })
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close () {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` (sync or async) every 20 ms until it holds or `limitMs` passes; returns whether it held. */
export async function eventually (check: () => boolean | Promise<boolean>, limitMs: number): Promise<boolean> {
  const deadline = performance.now() + limitMs
  while (performance.now() < deadline) {
    if (await check()) return true
    await sleep(20)
  }
  return check()
}
