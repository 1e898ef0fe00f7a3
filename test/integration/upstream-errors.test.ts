// What clients see when an upstream fails, and when failover to stable applies.

import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { closedPort, startUpstream } from '../helpers/upstream.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send, type Reply } from '../helpers/http.ts'

function assertProxyError (t: Test, reply: Reply, status: number, code: string): void {
  t.equal(reply.status, status, `status ${status}`)
  t.match(String(reply.headers['content-type']), /^application\/json/)
  const body = reply.json()
  t.equal(body.error, code)
  t.type(body.message, 'string')
  t.type(body.requestId, 'string')
  t.notMatch(reply.body, /127\.0\.0\.1|localhost|:\d{2,5}\b|ECONN|stack|at /, 'no address, errno or stack trace')
}

/** A TCP server that answers every connection with `respond(socket)`. */
async function rawServer (respond: (socket: import('node:net').Socket) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(respond)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { server.close(() => resolve()) }),
  }
}

t.test('an upstream that refuses connections → 502 WEIR_ERR_UPSTREAM_REFUSED', async (t) => {
  const proxy = await startProxy(configDoc([{ name: 'r', upstreams: { stable: `http://127.0.0.1:${await closedPort()}` } }]))
  t.teardown(() => proxy.close())
  assertProxyError(t, await send(proxy.url + '/'), 502, 'WEIR_ERR_UPSTREAM_REFUSED')
  await proxy.apps.dataPlane.flush()
  const metrics = await proxy.apps.metrics.registry.getSingleMetricAsString('weir_upstream_errors_total')
  t.match(metrics, /weir_upstream_errors_total\{route="r",version="stable",reason="refused"\} 1/)
})

t.test('an upstream silent past the header timeout → 504 WEIR_ERR_UPSTREAM_TIMEOUT', async (t) => {
  const up = await startUpstream('slow')
  up.handle(() => { /* never answers */ })
  const proxy = await startProxy(configDoc([{ name: 's', upstreams: { stable: up.url }, timeouts: { headers: '300ms' } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const started = Date.now()
  assertProxyError(t, await send(proxy.url + '/'), 504, 'WEIR_ERR_UPSTREAM_TIMEOUT')
  t.ok(Date.now() - started < 3000, 'answered soon after the timeout')
})

t.test('an upstream that resets the connection → 502 WEIR_ERR_UPSTREAM_RESET', async (t) => {
  const raw = await rawServer((socket) => socket.once('data', () => socket.resetAndDestroy()))
  const proxy = await startProxy(configDoc([{ name: 'x', upstreams: { stable: raw.url } }]))
  t.teardown(async () => { await proxy.close(); await raw.close() })
  assertProxyError(t, await send(proxy.url + '/', { method: 'POST', body: 'x' }), 502, 'WEIR_ERR_UPSTREAM_RESET')
})

t.test('an upstream that answers garbage → 502 WEIR_ERR_UPSTREAM_BAD_RESPONSE', async (t) => {
  const raw = await rawServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 2OO NOPE\r\n\r\n')))
  const proxy = await startProxy(configDoc([{ name: 'x', upstreams: { stable: raw.url } }]))
  t.teardown(async () => { await proxy.close(); await raw.close() })
  assertProxyError(t, await send(proxy.url + '/'), 502, 'WEIR_ERR_UPSTREAM_BAD_RESPONSE')
})

t.test('a 503 from the upstream is passed on once, never retried', async (t) => {
  const up = await startUpstream('busy')
  up.handle((_req, res) => { res.statusCode = 503; res.end('busy') })
  const proxy = await startProxy(configDoc([{ name: 'b', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const reply = await send(proxy.url + '/')
  t.equal(reply.status, 503)
  t.equal(reply.body, 'busy', 'the upstream body, not ours')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(up.received.length, 1, 'the upstream was asked exactly once')
})

t.test('a GET to a canary whose port is closed is answered by stable, counted as a canary error', async (t) => {
  const stable = await startUpstream('stable')
  const proxy = await startProxy(configDoc([{
    name: 'f', upstreams: { stable: stable.url, canary: `http://127.0.0.1:${await closedPort()}` }, weights: { stable: 0, canary: 100 },
  }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  for (const method of ['GET', 'HEAD', 'DELETE']) {
    const reply = await send(proxy.url + '/item', { method })
    t.equal(reply.status, 200, `${method} answered 200`)
    t.equal(reply.headers['x-weir-version'], 'stable', `${method} says stable served it`)
  }
  t.equal(stable.received.length, 3)
  t.equal(stable.received[0]?.headers['x-weir-version'], 'stable', 'stable is told it serves as stable')
  await proxy.apps.dataPlane.flush()
  const metrics = await proxy.apps.metrics.registry.getSingleMetricAsString('weir_upstream_errors_total')
  t.match(metrics, /weir_upstream_errors_total\{route="f",version="canary",reason="refused"\} 3/)
})

t.test('a POST to a failing canary is not failed over', async (t) => {
  const stable = await startUpstream('stable')
  const proxy = await startProxy(configDoc([{
    name: 'f', upstreams: { stable: stable.url, canary: `http://127.0.0.1:${await closedPort()}` }, weights: { stable: 0, canary: 100 },
  }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  assertProxyError(t, await send(proxy.url + '/', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }), 502, 'WEIR_ERR_UPSTREAM_REFUSED')
  t.equal(stable.received.length, 0, 'stable never saw the POST')
})

t.test('failover: false answers a failing canary GET with 502', async (t) => {
  const stable = await startUpstream('stable')
  const proxy = await startProxy(configDoc([{
    name: 'f', failover: false, upstreams: { stable: stable.url, canary: `http://127.0.0.1:${await closedPort()}` }, weights: { stable: 0, canary: 100 },
  }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  const reply = await send(proxy.url + '/')
  assertProxyError(t, reply, 502, 'WEIR_ERR_UPSTREAM_REFUSED')
  t.equal(reply.headers['x-weir-version'], 'canary', 'the error names the version that failed')
})

t.test('a canary that resets before answering a GET is failed over once; a failing stable is never retried', async (t) => {
  let canaryHits = 0
  const canary = await rawServer((socket) => socket.once('data', () => { canaryHits++; socket.resetAndDestroy() }))
  let stableHits = 0
  const stable = await rawServer((socket) => socket.once('data', () => { stableHits++; socket.resetAndDestroy() }))
  const proxy = await startProxy(configDoc([{ name: 'f', upstreams: { stable: stable.url, canary: canary.url }, weights: { stable: 0, canary: 100 } }]))
  t.teardown(async () => { await proxy.close(); await canary.close(); await stable.close() })
  assertProxyError(t, await send(proxy.url + '/'), 502, 'WEIR_ERR_UPSTREAM_RESET')
  t.equal(canaryHits, 1, 'canary tried once')
  t.equal(stableHits, 1, 'stable tried once, not retried')
})

t.test('the client request id is kept and echoed in errors; a malformed one is replaced', async (t) => {
  const up = await startUpstream('u')
  const proxy = await startProxy(configDoc([{ name: 'i', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  await send(proxy.url + '/', { headers: { 'x-request-id': 'abc-123' } })
  t.equal(up.received[0]?.headers['x-request-id'], 'abc-123')
  await send(proxy.url + '/', { headers: { 'x-request-id': 'bad id with spaces' } })
  t.match(String(up.received[1]?.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'a fresh UUID instead')
  await send(proxy.url + '/')
  t.match(String(up.received[2]?.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'generated when absent')
  await up.close()
  const reply = await send(proxy.url + '/', { headers: { 'x-request-id': 'trace-42' } })
  t.equal(reply.json().requestId, 'trace-42', 'the error carries the request id')
})

t.test('dot segments are resolved before forwarding, so a path cannot climb above the root', async (t) => {
  const up = await startUpstream('u')
  const proxy = await startProxy(configDoc([{ name: 'p', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  for (const path of ['/a/../../etc/passwd', '/%2e%2e/secret', '/x/./y']) {
    t.equal((await send(proxy.url + path)).status, 200, path)
  }
  t.same(up.received.map((r) => r.url), ['/etc/passwd', '/secret', '/x/y'])
})

t.test('an upstream that stalls mid-body longer than bodyIdle has the response cut and its request aborted', async (t) => {
  const up = await startUpstream('stall')
  let upstreamClosedEarly = false
  up.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
    res.write('partial')
    res.on('close', () => { if (!res.writableFinished) upstreamClosedEarly = true })
  })
  const proxy = await startProxy(configDoc([{ name: 'b', upstreams: { stable: up.url }, timeouts: { bodyIdle: '300ms' } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const started = Date.now()
  const outcome = await send(proxy.url + '/').then((r) => `complete ${r.status}`, (err: NodeJS.ErrnoException) => `cut ${err.code ?? err.message}`)
  t.match(outcome, /^cut /, 'the client sees the response cut, not a clean end')
  t.ok(Date.now() - started < 3000, 'soon after the idle timeout')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(upstreamClosedEarly, 'the upstream request was aborted')
})

t.test('an upstream status no client can take (above 599) → 502 WEIR_ERR_UPSTREAM_BAD_RESPONSE, counted as bad_response', async (t) => {
  const odd = await rawServer((socket) => socket.once('data', () => {
    socket.end('HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\nok')
  }))
  const proxy = await startProxy(configDoc([{ name: 'odd', upstreams: { stable: odd.url } }]))
  t.teardown(async () => { await proxy.close(); await odd.close() })
  const reply = await send(proxy.url + '/')
  assertProxyError(t, reply, 502, 'WEIR_ERR_UPSTREAM_BAD_RESPONSE')
  const metrics = await send(proxy.adminUrl + '/metrics')
  t.match(metrics.body, /weir_upstream_errors_total\{route="odd",version="stable",reason="bad_response"\} 1/, 'counted as a bad response of stable')
})
