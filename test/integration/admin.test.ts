// The admin server: liveness, readiness (503 while draining) and Prometheus metrics that count
// what the proxy did.

import t from 'tap'
import { closedPort, startUpstream } from '../helpers/upstream.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'

t.test('healthz and readyz answer 200; unknown admin paths a JSON 404', async (t) => {
  const up = await startUpstream('u')
  const proxy = await startProxy(configDoc([{ name: 'a', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  t.same((await send(proxy.adminUrl + '/healthz')).json(), { status: 'ok' })
  t.same((await send(proxy.adminUrl + '/readyz')).json(), { status: 'ready' })
  const missing = await send(proxy.adminUrl + '/nope')
  t.equal(missing.status, 404)
  t.equal(missing.json().error, 'WEIR_ERR_ADMIN_NOT_FOUND')
})

t.test('readyz turns 503 while in-flight requests drain, and the in-flight request still completes', async (t) => {
  const up = await startUpstream('slow')
  up.handle((_req, res) => setTimeout(() => res.end('done'), 600))
  const proxy = await startProxy(configDoc([{ name: 'a', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await up.close() })
  const inflight = send(proxy.url + '/')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const closing = proxy.close()
  const ready = await send(proxy.adminUrl + '/readyz')
  t.equal(ready.status, 503)
  t.same(ready.json(), { status: 'draining' })
  t.equal((await inflight).body, 'done')
  await closing
})

t.test('/metrics is Prometheus text counting routing decisions and upstream errors', async (t) => {
  const up = await startUpstream('u')
  const proxy = await startProxy(configDoc([{
    name: 'm', upstreams: { stable: up.url, canary: `http://127.0.0.1:${await closedPort()}` }, weights: { stable: 100 }, failover: false, stickiness: { userId: { header: 'x-user-id' } }, override: { header: 'x-weir-version' },
  }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  for (let i = 0; i < 3; i++) await send(proxy.url + '/', { headers: { 'x-user-id': `user-${i}` } })
  await send(proxy.url + '/', { headers: { 'x-weir-version': 'canary' } })
  const reply = await send(proxy.adminUrl + '/metrics')
  t.equal(reply.status, 200)
  t.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  t.match(reply.body, /# TYPE weir_routing_decisions_total counter/)
  t.match(reply.body, /weir_routing_decisions_total\{route="m",version="stable",reason="user"\} 3\n/)
  t.match(reply.body, /weir_routing_decisions_total\{route="m",version="canary",reason="override"\} 1\n/)
  t.match(reply.body, /weir_upstream_errors_total\{route="m",version="canary",reason="refused"\} 1\n/)
  const again = await send(proxy.adminUrl + '/metrics')
  t.match(again.body, /reason="user"\} 3\n/, 'a second scrape does not count twice')
})
