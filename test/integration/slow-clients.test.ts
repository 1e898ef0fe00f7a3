// Slow clients cost the proxy a socket each, not its attention: trickling request bodies do
// not hold up other requests, and a body that stops arriving is answered 408 and cancelled
// upstream after the route's timeouts.requestBody; a request head that stops arriving is answered
// 408 WEIR_ERR_HEADERS_TIMEOUT after timeouts.clientHeaders.

import t, { type Test } from 'tap'
import type { Socket } from 'node:net'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'
import { eventually, openSocket, readUntilClose, sleep, startCountingUpstream, type CountingUpstream } from '../helpers/raw-http.ts'

async function setup (t: Test, route: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; upstream: CountingUpstream }> {
  const upstream = await startCountingUpstream()
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: upstream.url }, ...route }]))
  t.teardown(async () => {
    await proxy.close()
    await upstream.close()
  })
  return { proxy, upstream }
}

t.test('100 clients trickling request bodies at one byte a second do not delay a normal GET past 100 ms', async (t) => {
  const { proxy, upstream } = await setup(t)
  // One GET first, so the measured ones time the proxy under load, not its first-request warm-up.
  t.equal((await send(`${proxy.url}/warm-up`)).status, 200, 'a GET before the slow clients is answered')
  const sockets: Socket[] = []
  const timers: NodeJS.Timeout[] = []
  t.teardown(() => {
    for (const timer of timers) clearInterval(timer)
    for (const socket of sockets) socket.destroy()
  })
  let answeredSlow = 0
  for (let i = 0; i < 100; i++) {
    const socket = await openSocket(proxy.port)
    socket.on('error', () => {})
    socket.on('data', () => { answeredSlow++ })
    sockets.push(socket)
    const chunked = i % 2 === 1
    socket.write(`POST /upload/${i} HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/octet-stream\r\n` +
      (chunked ? 'Transfer-Encoding: chunked\r\n' : 'Content-Length: 1000\r\n') + '\r\n')
    // One byte a second, five times: the bodies are nowhere near done when the test ends.
    let written = 0
    const timer = setInterval(() => {
      socket.write(chunked ? '1\r\nx\r\n' : 'x')
      if (++written === 5) clearInterval(timer)
    }, 1000)
    timers.push(timer)
  }
  t.ok(await eventually(() => upstream.seen.filter((s) => s.method === 'POST').length === 100, 3000),
    'all 100 trickling uploads were forwarded to the upstream')

  const durations: number[] = []
  for (let i = 0; i < 8; i++) {
    await sleep(400)
    const started = performance.now()
    const reply = await send(`${proxy.url}/fast/${i}`)
    durations.push(performance.now() - started)
    t.equal(reply.status, 200, `GET ${i} answered 200 while the uploads trickle`)
  }
  for (const [i, ms] of durations.entries()) t.ok(ms < 100, `GET ${i} took ${ms.toFixed(1)} ms`)

  const trickled = upstream.seen.filter((s) => s.method === 'POST')
  const bytes = trickled.reduce((sum, s) => sum + s.bytes, 0)
  t.ok(bytes >= 100, `the trickled bytes reached the upstream as they came (${bytes} bytes so far)`)
  t.ok(trickled.every((s) => !s.complete), 'no trickling upload had finished')
  t.equal(answeredSlow, 0, 'no trickling client was answered or cut off early')
  t.ok(sockets.every((s) => !s.destroyed), 'every trickling connection is still open')
})

t.test('a request body that stops arriving is answered 408 after timeouts.requestBody and its upstream request is aborted', async (t) => {
  const { proxy, upstream } = await setup(t, { timeouts: { requestBody: '500ms' } })
  const socket = await openSocket(proxy.port)
  t.teardown(() => { socket.destroy() })
  const response = readUntilClose(socket, 5000)
  const started = performance.now()
  socket.write('POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(10))

  const reply = await response
  const elapsed = performance.now() - started
  t.not(reply, null, 'the proxy answered before closing the connection')
  t.equal(reply?.status, 408, 'the answer is 408')
  t.match(reply?.headers['content-type'], /^application\/json/, 'the answer is JSON')
  t.equal(JSON.parse(reply?.body ?? '{}').error, 'WEIR_ERR_BODY_TIMEOUT', 'the error code names the body timeout')
  t.ok(elapsed >= 450 && elapsed < 2500, `answered ${elapsed.toFixed(0)} ms after the request started (timeout 500 ms)`)

  t.ok(await eventually(() => upstream.seen[0]?.abortedAt != null, 2000), 'the upstream saw its request aborted')
  t.equal(upstream.seen.length, 1, 'the upstream got the request once (no retry)')
  t.equal(upstream.seen[0]?.bytes, 10, 'the upstream had received the 10 bytes that arrived')
  t.equal(upstream.seen[0]?.complete, false, 'the upstream request never completed')
})

t.test('a request head that stops arriving is answered 408 WEIR_ERR_HEADERS_TIMEOUT after timeouts.clientHeaders, never reaching the upstream', async (t) => {
  const upstream = await startCountingUpstream()
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: upstream.url } }], { timeouts: { clientHeaders: '500ms' } }))
  t.teardown(async () => {
    await proxy.close()
    await upstream.close()
  })
  const socket = await openSocket(proxy.port)
  t.teardown(() => { socket.destroy() })
  const response = readUntilClose(socket, 5000)
  const started = performance.now()
  // The request line and one header, then nothing: the head never completes.
  socket.write('GET /slow-head HTTP/1.1\r\nHost: app.test\r\n')

  const reply = await response
  const elapsed = performance.now() - started
  t.equal(reply?.status, 408, 'the answer is 408')
  t.equal(JSON.parse(reply?.body ?? '{}').error, 'WEIR_ERR_HEADERS_TIMEOUT', 'the error code names the head timeout, not the body timeout')
  // Node checks header timeouts once a second (connectionsCheckingInterval).
  t.ok(elapsed >= 450 && elapsed < 3000, `answered ${elapsed.toFixed(0)} ms after the head started (timeout 500 ms)`)
  t.equal(upstream.seen.length, 0, 'nothing reached the upstream')
})
