// WebSocket upgrades pass through weir (docs/proxying.md) and are routed like plain HTTP requests
// (docs/routing.md): the override header and the user id pick the version.

import t, { type Test } from 'tap'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'
import { eventually } from '../helpers/raw-http.ts'

interface UpstreamConnection {
  headers: IncomingHttpHeaders
  received: string[]
  closed: boolean
}

interface WsUpstream {
  readonly name: string
  readonly url: string
  readonly connections: UpstreamConnection[]
  close (): Promise<void>
}

/**
 * An HTTP server that answers plain requests with JSON `{ version }` and, on upgrade, greets
 * with `hello from <name>` and echoes each message as `<name>: <message>`.
 */
async function startWsUpstream (name: string): Promise<WsUpstream> {
  const connections: UpstreamConnection[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ version: name }))
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws, req) => {
    const connection: UpstreamConnection = { headers: req.headers, received: [], closed: false }
    connections.push(connection)
    ws.on('message', (data) => {
      const text = String(data)
      connection.received.push(text)
      ws.send(`${name}: ${text}`)
    })
    ws.on('close', () => { connection.closed = true })
    ws.on('error', () => {})
    ws.send(`hello from ${name}`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    name,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections,
    async close () {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

async function setup (t: Test): Promise<{ proxy: TestProxy; stable: WsUpstream; canary: WsUpstream }> {
  const stable = await startWsUpstream('stable')
  const canary = await startWsUpstream('canary')
  const proxy = await startProxy(configDoc([{
    name: 'chat',
    upstreams: { stable: stable.url, canary: canary.url },
    weights: { stable: 50, canary: 50 },
    stickiness: { userId: { header: 'x-user-id' } },
    override: { header: 'x-weir-version' },
  }]))
  t.teardown(async () => {
    await proxy.close()
    await stable.close()
    await canary.close()
  })
  return { proxy, stable, canary }
}

/** A client whose incoming messages are queued, so a test can await the next one (at most `limitMs`). */
interface Client {
  ws: WebSocket
  next (limitMs?: number): Promise<string>
}

async function open (t: Test, url: string, headers: Record<string, string>): Promise<Client> {
  const ws = new WebSocket(url, { headers })
  t.teardown(() => ws.terminate())
  const queue: string[] = []
  const waiting: Array<(message: string) => void> = []
  ws.on('message', (data) => {
    const text = String(data)
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(text)
    else queue.push(text)
  })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the WebSocket did not open within 3 s')), 3000)
    ws.once('open', () => { clearTimeout(timer); resolve() })
    ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    ws.once('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`upgrade answered ${res.statusCode}`)) })
  })
  return {
    ws,
    next (limitMs = 3000) {
      const queued = queue.shift()
      if (queued !== undefined) return Promise.resolve(queued)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message within ${limitMs} ms`)), limitMs)
        waiting.push((message) => { clearTimeout(timer); resolve(message) })
      })
    },
  }
}

const wsUrl = (proxy: TestProxy, path: string): string => proxy.url.replace(/^http/, 'ws') + path

t.test('a WebSocket with the override header x-weir-version: canary reaches canary, and messages flow both ways', async (t) => {
  const { proxy, stable, canary } = await setup(t)
  const client = await open(t, wsUrl(proxy, '/chat'), { 'x-weir-version': 'canary' })
  t.equal(await client.next(), 'hello from canary', 'the upstream\'s greeting reaches the client')
  client.ws.send('ping 1')
  t.equal(await client.next(), 'canary: ping 1', 'the client\'s message reaches the upstream and its answer comes back')
  client.ws.send('ping 2')
  t.equal(await client.next(), 'canary: ping 2', 'and again, in order')
  t.same(canary.connections[0]?.received, ['ping 1', 'ping 2'], 'the upstream received exactly what the client sent')
  t.equal(stable.connections.length, 0, 'stable never saw the connection')
  t.equal(canary.connections[0]?.headers['x-weir-version'], 'canary', 'the upstream is told which version it serves as')
  t.ok(canary.connections[0]?.headers['x-request-id'], 'the upstream gets a request id')
})

t.test('a WebSocket with a user id reaches the same version as plain HTTP requests with that user id', async (t) => {
  const { proxy, stable, canary } = await setup(t)
  const seen = new Set<string>()
  // Users until both versions have been seen (with 50/50, 12 users almost surely suffice; at most 40).
  for (let i = 0; i < 40 && (seen.size < 2 || i < 12); i++) {
    const user = `user-${i}-${Math.random().toString(36).slice(2, 8)}`
    const http = await send(`${proxy.url}/chat`, { headers: { 'x-user-id': user } })
    const httpVersion = http.json<{ version: string }>().version
    t.equal(http.headers['x-weir-version'], httpVersion, `${user}: the HTTP response names ${httpVersion}`)
    const client = await open(t, wsUrl(proxy, '/chat'), { 'x-user-id': user })
    t.equal(await client.next(), `hello from ${httpVersion}`, `${user}: the WebSocket reaches ${httpVersion} too`)
    client.ws.send(`from ${user}`)
    t.equal(await client.next(), `${httpVersion}: from ${user}`, `${user}: and its messages go there`)
    client.ws.close()
    seen.add(httpVersion)
  }
  t.same([...seen].sort(), ['canary', 'stable'], 'users were spread over both versions')
  t.ok(stable.connections.length > 0 && canary.connections.length > 0, 'both upstreams took WebSocket connections')
})

t.test('closing the client\'s WebSocket closes the upstream\'s socket', async (t) => {
  const { proxy, canary } = await setup(t)
  const client = await open(t, wsUrl(proxy, '/chat'), { 'x-weir-version': 'canary' })
  t.equal(await client.next(), 'hello from canary', 'the connection is up end to end')
  t.equal(canary.connections.length, 1, 'canary has one upstream connection')
  t.equal(canary.connections[0]?.closed, false, 'the upstream socket is open while the client is connected')
  client.ws.close(1000, 'bye')
  t.ok(await eventually(() => canary.connections[0]?.closed === true, 2000), 'the upstream socket closed within 2 s')
})

t.test('a client that drops its connection without a close frame also closes the upstream\'s socket', async (t) => {
  const { proxy, canary } = await setup(t)
  const client = await open(t, wsUrl(proxy, '/chat'), { 'x-weir-version': 'canary' })
  t.equal(await client.next(), 'hello from canary', 'the connection is up end to end')
  client.ws.terminate()
  t.ok(await eventually(() => canary.connections[0]?.closed === true, 2000), 'the upstream socket closed within 2 s')
})
