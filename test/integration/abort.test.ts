// A client that goes away aborts its upstream request (docs/proxying.md), whether the upstream is
// still thinking or already streaming the response body.

import t, { type Test } from 'tap'
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'

/** What the upstream saw of one request it was slow to answer. */
interface SlowExchange {
  /** When the upstream's response closed before it had finished answering (the abort), else null. */
  closedEarlyAt: number | null
  finished: boolean
}

async function setup (t: Test): Promise<{ proxy: TestProxy; upstream: Upstream }> {
  const upstream = await startUpstream('stable')
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: upstream.url } }]))
  t.teardown(async () => {
    await proxy.close()
    await upstream.close()
  })
  return { proxy, upstream }
}

/** Records when the upstream's response closes, and whether it had been finished by then. */
function watchUpstream (req: IncomingMessage, res: ServerResponse, seen: SlowExchange, onClose: () => void): void {
  req.socket.setNoDelay(true)
  res.once('close', () => {
    seen.finished = res.writableFinished
    if (!res.writableFinished) seen.closedEarlyAt = performance.now()
    onClose()
  })
}

/** Sends a GET through the proxy, calls `onResponse` if headers arrive, and destroys the request `afterMs` after sending. */
function disconnectAfter (url: string, afterMs: number, onResponse: (res: IncomingMessage) => void = () => {}): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      res.on('data', () => {})
      res.on('error', () => {})
      onResponse(res)
    })
    req.on('error', () => {})
    req.end()
    setTimeout(() => {
      const at = performance.now()
      req.destroy()
      resolve(at)
    }, afterMs)
  })
}

function waitFor (done: Promise<void>, limitMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    done.then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), limitMs) }),
  ]).finally(() => clearTimeout(timer))
}

t.test('a client that disconnects while the upstream is still working aborts the upstream request within 200 ms', async (t) => {
  const { proxy, upstream } = await setup(t)
  const seen: SlowExchange = { closedEarlyAt: null, finished: false }
  const timers = new Set<NodeJS.Timeout>()
  t.teardown(() => { for (const timer of timers) clearTimeout(timer) })
  let closed!: () => void
  const upstreamClosed = new Promise<void>((resolve) => { closed = resolve })
  upstream.handle((req, res) => {
    watchUpstream(req, res, seen, closed)
    // Answers after 3 s, unless the request was aborted first.
    const timer = setTimeout(() => { if (!res.destroyed) res.end('late') }, 3000)
    timers.add(timer)
  })

  const disconnectedAt = await disconnectAfter(proxy.url + '/slow', 300)
  t.ok(await waitFor(upstreamClosed, 2000), 'the upstream request closed within 2 s of the disconnect')
  t.equal(upstream.received.length, 1, 'the upstream got the request')
  t.equal(seen.finished, false, 'the upstream had not answered when its request closed')
  t.not(seen.closedEarlyAt, null, 'the upstream saw its request aborted')
  const lag = (seen.closedEarlyAt ?? Infinity) - disconnectedAt
  t.ok(lag < 200, `upstream saw the abort ${lag.toFixed(1)} ms after the client disconnected`)
})

t.test('a client that disconnects while the upstream streams a slow body aborts the upstream response within 200 ms', async (t) => {
  const { proxy, upstream } = await setup(t)
  const seen: SlowExchange = { closedEarlyAt: null, finished: false }
  const timers = new Set<NodeJS.Timeout>()
  t.teardown(() => { for (const timer of timers) clearInterval(timer) })
  let closed!: () => void
  const upstreamClosed = new Promise<void>((resolve) => { closed = resolve })
  upstream.handle((req, res) => {
    watchUpstream(req, res, seen, closed)
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first chunk\n')
    // 30 more chunks, one every 100 ms: the whole body takes 3 s.
    let sent = 0
    const timer = setInterval(() => {
      if (res.destroyed) {
        clearInterval(timer)
        return
      }
      res.write(`chunk ${++sent}\n`)
      if (sent === 30) {
        clearInterval(timer)
        res.end()
      }
    }, 100)
    timers.add(timer)
  })

  let status = 0
  let bytes = 0
  const disconnectedAt = await disconnectAfter(proxy.url + '/stream', 300, (res) => {
    status = res.statusCode ?? 0
    res.on('data', (chunk: Buffer) => { bytes += chunk.length })
  })
  t.equal(status, 200, 'the client had the response headers before it disconnected')
  t.ok(bytes > 0, `the client had received ${bytes} body bytes before it disconnected`)
  t.ok(await waitFor(upstreamClosed, 2000), 'the upstream response closed within 2 s of the disconnect')
  t.equal(seen.finished, false, 'the upstream had not finished its body when its response closed')
  t.not(seen.closedEarlyAt, null, 'the upstream saw its response aborted')
  const lag = (seen.closedEarlyAt ?? Infinity) - disconnectedAt
  t.ok(lag < 200, `upstream saw the abort ${lag.toFixed(1)} ms after the client disconnected`)
})
