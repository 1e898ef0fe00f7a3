// The ops listener (config `ops`): /healthz, /readyz and /metrics on an address of their own for
// probes and Prometheus, nothing else; it drains with the admin server and a taken port stops the start.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { send } from '../helpers/http.ts'
import { parsePromText } from '../helpers/prom-text.ts'
import { configDoc, mustBuild, startProxy } from '../helpers/proxy.ts'
import { startUpstream, startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { exitWithin, runWeir, serveWeir, tempDir, waitForOutput, yamlConfig } from '../helpers/weir-process.ts'

const OPS = { ops: { host: '127.0.0.1', port: 0 } }

t.test('the ops address answers healthz, readyz and metrics; /api/v1 and the rest are 404 there', async (t) => {
  const [up] = await startUpstreams(t, 'stable') as [Upstream]
  const proxy = await startProxy(configDoc([{ name: 'a', upstreams: { stable: up.url } }], OPS))
  t.teardown(() => proxy.close())
  const ops = proxy.opsUrl as string
  t.ok(ops !== undefined && ops !== proxy.adminUrl, 'an address of its own')
  t.equal((await send(proxy.url + '/')).status, 200)

  t.same((await send(ops + '/healthz')).json(), { status: 'ok' })
  t.same((await send(ops + '/readyz')).json(), { status: 'ready' })
  const metrics = await send(ops + '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const m = parsePromText(metrics.body)
  t.equal(m.value('weir_requests_total', { route: 'a', version: 'stable', code: '200' }), 1, 'the same registry as the admin address, flushed before the scrape')
  const admin = parsePromText((await send(proxy.adminUrl + '/metrics')).body)
  t.equal(admin.value('weir_requests_total', { route: 'a', version: 'stable', code: '200' }), 1)

  for (const path of ['/api/v1/routes', '/api/v1/routes/a', '/api/v1/openapi.json', '/ui', '/']) {
    const reply = await send(ops + path)
    t.equal(reply.status, 404, `${path} is not on the ops address`)
    t.equal(reply.json<{ error: string }>().error, 'WEIR_ERR_ADMIN_NOT_FOUND')
  }
  const write = await send(ops + '/api/v1/routes/a/rollback', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(write.status, 404, 'no write reaches the control API through the ops address')
  t.equal((await send(proxy.adminUrl + '/api/v1/routes')).status, 200, '/api/v1 stays on the admin address')
})

t.test('readyz on the ops address turns 503 while in-flight requests drain', async (t) => {
  const up = await startUpstream('slow')
  up.handle((_req, res) => setTimeout(() => res.end('done'), 600))
  t.teardown(() => up.close())
  const proxy = await startProxy(configDoc([{ name: 'a', upstreams: { stable: up.url } }], OPS))
  const inflight = send(proxy.url + '/')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const closing = proxy.close()
  const ready = await send(proxy.opsUrl + '/readyz')
  t.equal(ready.status, 503)
  t.same(ready.json(), { status: 'draining' })
  t.equal((await send(proxy.opsUrl + '/healthz')).status, 200, 'still live while draining')
  t.equal((await inflight).body, 'done')
  await closing
})

t.test('without ops there is no ops listener', async (t) => {
  const [up] = await startUpstreams(t, 'stable') as [Upstream]
  const proxy = await startProxy(configDoc([{ name: 'a', upstreams: { stable: up.url } }]))
  t.teardown(() => proxy.close())
  t.equal(proxy.apps.ops, null)
  t.equal(proxy.opsUrl, undefined)
})

t.test('a reload that changes ops warns that it takes effect after a restart', async (t) => {
  const [up] = await startUpstreams(t, 'stable') as [Upstream]
  const doc = configDoc([{ name: 'a', upstreams: { stable: up.url } }], { ops: { host: '127.0.0.1', port: 0 } })
  const proxy = await startProxy(doc)
  t.teardown(() => proxy.close())
  t.same(await proxy.apps.reload(mustBuild(doc)), [], 'the same ops: no warning')
  const warnings = await proxy.apps.reload(mustBuild({ ...doc, ops: { host: '127.0.0.1', port: 19_902 } }))
  t.same(warnings, ['ops changed: takes effect after a restart (the running value is kept)'])
  t.same(await proxy.apps.reload(mustBuild({ ...doc, ops: undefined })), ['ops changed: takes effect after a restart (the running value is kept)'], 'removing it too')
})

t.test('weir serve listens on the ops address and exits 1 when its port is taken', async (t) => {
  const [up] = await startUpstreams(t, 'stable') as [Upstream]
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())))
  const port = (taken.address() as { port: number }).port

  const dir = tempDir()
  const good = join(dir, 'good.yaml')
  writeFileSync(good, yamlConfig(dir, `upstreams: { stable: ${up.url} }`, 'ops: { host: 127.0.0.1, port: 0 }\n'))
  const { weir } = await serveWeir(t, good)
  const [, opsUrl] = await waitForOutput(weir, /weir ops \(healthz, readyz, metrics\) listening on (http:\/\/127\.0\.0\.1:[0-9]+)/, 5000)
  t.equal((await send(opsUrl + '/readyz')).status, 200)
  t.equal((await send(opsUrl + '/api/v1/routes')).status, 404)
  weir.child.kill('SIGTERM')
  t.equal((await exitWithin(weir, 10_000))?.code, 0)

  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, yamlConfig(dir, `upstreams: { stable: ${up.url} }`, `ops: { host: 127.0.0.1, port: ${port} }\n`))
  const refused = runWeir(t, ['serve', '--config', bad])
  const exit = await exitWithin(refused, 15_000)
  t.equal(exit?.code, 1, refused.output())
  t.match(refused.output(), /weir: the ops listener could not start: .*EADDRINUSE/)
  t.notMatch(refused.output(), /weir proxy listening/, 'the proxy never listened')
})
