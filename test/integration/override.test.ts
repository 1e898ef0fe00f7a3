// The override at the edge, through real sockets: opt-in per route, locked by a secret and/or the
// client's address (through trustedProxies), never passing its secrets upstream; the controller's
// smoke check still reaches green on a locked route; override traffic is left out of analysis.

import t, { type Test } from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { scrape } from '../helpers/prom-text.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'

const SECRET = 'override-secret-for-tests'

async function setup (t: Test, route: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; stable: Upstream; green: Upstream }> {
  const [stable, green] = await startUpstreams(t, 'stable', 'green') as [Upstream, Upstream]
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: stable.url, green: green.url }, ...route }], extra))
  t.teardown(() => proxy.close())
  return { proxy, stable, green }
}

const versionOf = async (proxy: TestProxy, headers: Record<string, string>): Promise<unknown> =>
  (await send(proxy.url + '/', { headers })).json().version

t.test('a route without an override key ignores x-weir-version (opt-in)', async (t) => {
  const { proxy } = await setup(t, {})
  for (let i = 0; i < 5; i++) t.equal(await versionOf(proxy, { 'x-weir-version': 'green' }), 'stable')
  const m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_routing_decisions_total', { reason: 'override' }).filter((s) => s.value > 0), [], 'no request was decided by override')
})

t.test('an override with a secret counts only with the secret, which never goes upstream', async (t) => {
  const { proxy, green } = await setup(t, { override: { header: 'x-weir-version', secret: SECRET } })
  t.equal(await versionOf(proxy, { 'x-weir-version': 'green' }), 'stable', 'without the secret: ignored')
  t.equal(await versionOf(proxy, { 'x-weir-version': 'green', 'x-weir-override-secret': 'wrong' }), 'stable', 'a wrong secret: ignored')
  t.equal(await versionOf(proxy, { 'x-weir-version': 'green', 'x-weir-override-secret': SECRET + 'x' }), 'stable', 'a longer one: ignored')
  t.equal(await versionOf(proxy, { 'x-weir-version': 'green', 'x-weir-override-secret': SECRET }), 'green', 'with the secret: green at weight 0')
  t.equal(green.received.length, 1)
  t.equal(green.received[0]?.headers['x-weir-override-secret'], undefined, 'the secret is not passed upstream')
})

t.test('an override with from counts only from those client addresses, X-Forwarded-For read through trustedProxies', async (t) => {
  const far = await setup(t, { override: { header: 'x-weir-version', from: ['10.0.0.0/8'] } })
  t.equal(await versionOf(far.proxy, { 'x-weir-version': 'green' }), 'stable', '127.0.0.1 is not in 10.0.0.0/8')
  t.equal(await versionOf(far.proxy, { 'x-weir-version': 'green', 'x-forwarded-for': '10.1.2.3' }), 'stable', 'an untrusted peer cannot claim an address')

  const near = await setup(t, { override: { header: 'x-weir-version', from: ['127.0.0.1'] } })
  t.equal(await versionOf(near.proxy, { 'x-weir-version': 'green' }), 'green', 'the peer 127.0.0.1 is listed')

  const behind = await setup(t, { override: { header: 'x-weir-version', from: ['10.0.0.0/8'] } }, { trustedProxies: ['127.0.0.1/32'] })
  t.equal(await versionOf(behind.proxy, { 'x-weir-version': 'green', 'x-forwarded-for': '10.1.2.3' }), 'green', 'behind a trusted proxy: the client it names')
  t.equal(await versionOf(behind.proxy, { 'x-weir-version': 'green', 'x-forwarded-for': '10.1.2.3, 192.0.2.7' }), 'stable',
    'the nearest untrusted hop is the client, whatever it claims further left')
  t.equal(await versionOf(behind.proxy, { 'x-weir-version': 'green', 'x-forwarded-for': 'not-an-address' }), 'stable', 'a malformed entry is no client')
  t.equal(await versionOf(behind.proxy, { 'x-weir-version': 'green' }), 'stable', 'the trusted proxy itself is not in from')

  const both = await setup(t, { override: { header: 'x-weir-version', secret: SECRET, from: ['127.0.0.1'] } })
  t.equal(await versionOf(both.proxy, { 'x-weir-version': 'green' }), 'stable', 'from alone is not enough when a secret is asked')
  t.equal(await versionOf(both.proxy, { 'x-weir-version': 'green', 'x-weir-override-secret': SECRET }), 'green', 'both: honoured')
})

t.test('a client cannot forge the smoke header', async (t) => {
  const { proxy, green } = await setup(t, {})
  for (const value of ['green', 'green ', 'green x', 'green ' + 'a'.repeat(32)]) t.equal(await versionOf(proxy, { 'x-weir-smoke': value }), 'stable', `x-weir-smoke: ${value}`)
  t.equal(green.received.length, 0)
})

t.test('the blue/green smoke check reaches green through weir on a route whose override is locked', async (t) => {
  const { proxy, green } = await setup(t, {
    match: { host: 'app.example.com' },
    override: { header: 'x-weir-version', secret: SECRET, from: ['10.0.0.0/8'] },
    rollout: { strategy: 'bluegreen', interval: '1s', watch: '2s', smoke: { path: '/healthz', timeout: '1s' }, analysis: { minRequests: 1 } },
  })
  const admin = adminClient(proxy.adminUrl)
  const { leaves } = rolloutClient(admin)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const after = await leaves('smoke', 8000)
  t.not(after.phase, 'failed', `the smoke check passed: ${JSON.stringify(after)}`)
  const smokes = green.received.filter((r) => r.url === '/healthz')
  t.ok(smokes.length >= 1, 'green was smoke-checked')
  t.match(smokes[0]?.headers.via, /weir/, 'through the proxy')
  t.equal(smokes[0]?.headers['x-weir-smoke'], undefined, 'the smoke token is not passed upstream')
  t.equal(smokes[0]?.headers['x-weir-version'], 'green')
  await admin.call('POST', '/api/v1/routes/app/rollout/abort')
})

t.test('requests forced by override are counted but left out of the version\'s analysis', async (t) => {
  const { proxy } = await setup(t, { override: { header: 'x-weir-version' }, stickiness: { userId: { header: 'x-user-id' } } })
  for (let i = 0; i < 7; i++) await versionOf(proxy, { 'x-weir-version': 'green' })
  for (let i = 0; i < 5; i++) await versionOf(proxy, { 'x-weir-version': 'stable' })
  for (let i = 0; i < 3; i++) await versionOf(proxy, { 'x-user-id': `u${i}` })
  const m = await scrape(proxy.adminUrl)
  t.equal(m.value('weir_requests_total', { route: 'app', version: 'green', code: '200' }), 7, 'counted in weir_requests_total')
  t.equal(m.value('weir_routing_decisions_total', { route: 'app', version: 'green', reason: 'override' }), 7, 'decided by override')
  const stats = (await adminClient(proxy.adminUrl).get('/api/v1/routes/app/stats?window=30')).json<{ versions: Record<string, { requests: number } | undefined> }>()
  t.equal(stats.versions.green?.requests ?? 0, 0, 'green\'s analysis saw none of them')
  t.equal(stats.versions.stable?.requests, 3, 'stable\'s analysis saw only the weighted requests')
})
