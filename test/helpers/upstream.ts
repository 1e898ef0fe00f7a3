// Real upstream HTTP servers on 127.0.0.1 for tests: each answers with its own name, records
// what it received, and can be told to misbehave per request.

import type { Test } from 'tap'
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'

export interface ReceivedRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
  rawHeaders: string[]
  bodyBytes: number
  /** SHA-256 (hex) of the whole body, however long. */
  bodySha256: string
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void

export interface Upstream {
  readonly name: string
  readonly url: string
  readonly port: number
  readonly received: ReceivedRequest[]
  /** Replace how the server answers (default: 200 JSON `{ version: name, url }`). */
  handle (handler: Handler | null): void
  close (): Promise<void>
}

/** Starts a server answering as `name`. Pass `port` to reuse a port (e.g. restart a killed upstream). */
export async function startUpstream (name: string, port = 0): Promise<Upstream> {
  const received: ReceivedRequest[] = []
  const sockets = new Set<Socket>()
  let custom: Handler | null = null
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    let bytes = 0
    const hash = createHash('sha256')
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      hash.update(chunk)
      if (bytes <= 1 << 20) chunks.push(chunk)
    })
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes, bodySha256: hash.digest('hex') })
      const body = Buffer.concat(chunks)
      if (custom !== null) {
        custom(req, res, body)
        return
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ version: name, url: req.url, bytes }))
    })
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const actual = (server.address() as AddressInfo).port
  return {
    name,
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    received,
    handle (handler) { custom = handler },
    async close () {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Starts one upstream per name, closed when the test ends. */
export async function startUpstreams (t: Test, ...names: string[]): Promise<Upstream[]> {
  const started: Upstream[] = []
  for (const name of names) started.push(await startUpstream(name))
  t.teardown(async () => { for (const u of started) await u.close() })
  return started
}

/**
 * A port that nothing listens on. It is taken below Linux's ephemeral range (32768–60999), so a
 * server another test binds to port 0 meanwhile, in a parallel test process, cannot land on it
 * (a port bound and released here could be handed straight to one), and checked to refuse.
 */
export async function closedPort (): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000)
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(false) })
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
    })
    if (refused) return port
  }
  throw new Error('no closed port found below the ephemeral range')
}
