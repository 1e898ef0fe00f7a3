// The blue/green strategy end to end: green is smoke-checked through weir (with the controller's
// smoke token: the route has no override) while it takes no traffic, switched to 100 % at once, watched, and switched back or finalized.

import t, { type Test } from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'

const policy = {
  strategy: 'bluegreen',
  interval: '1s',
  watch: '3s',
  smoke: { path: '/healthz', timeout: '1s' },
  analysis: { minRequests: 20 },
}

async function setup (t: Test) {
  const [stable, green] = await startUpstreams(t, 'stable', 'green')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    match: { host: 'app.example.com' },
    upstreams: { stable: stable!.url, green: green!.url },
    rollout: policy,
  }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  return { stable: stable!, green: green!, proxy, admin, ...rolloutClient(admin) }
}

const traffic = (url: string) => startTraffic(url, { rate: 200, maxMs: 20_000, headers: { host: 'app.example.com' } })

t.test('a failing smoke check never switches', async (t) => {
  const { green, proxy, admin, event, leaves } = await setup(t)
  green.handle((req, res) => {
    res.statusCode = req.url === '/healthz' ? 503 : 200
    res.end('green')
  })
  const load = traffic(proxy.url)
  t.teardown(() => load.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { analysis: { failureThreshold: 2 } })).status, 201)
  const last = await leaves('smoke', 5000)
  t.equal(last.phase, 'failed')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  const results = await load.stop()
  t.equal(results.filter((r) => r.version === 'green').length, 0, 'no client ever reached green')
  const smokes = green.received.filter((r) => r.url === '/healthz')
  t.equal(smokes.length, 2, 'smoke-checked once per interval up to the failure threshold')
  t.equal(smokes[0]?.headers['x-weir-version'], 'green', 'the smoke check came through weir, forced to green')
  t.match(smokes[0]?.headers.via, /weir/, 'through the proxy, not straight to green')
  t.equal(smokes[0]?.headers['x-weir-smoke'], undefined, 'the smoke token is not passed upstream')
  t.equal(smokes[0]?.headers.host, 'app.example.com')
  const failed = await event('rollout.failed')
  t.equal(failed?.reason?.check, 'smoke')
  t.match(failed?.reason?.detail ?? '', /smoke check GET \/healthz answered 503/)
})

t.test('a passing smoke check switches 100 % at once; a failure in the watch window switches back at once', async (t) => {
  const { green, proxy, admin, event, events, leaves } = await setup(t)
  let broken = false
  green.handle((_req, res) => {
    res.statusCode = broken ? 500 : 200
    res.end('green')
  })
  const load = traffic(proxy.url)
  t.teardown(() => load.stop())
  await sleep(1000)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const watching = await leaves('smoke', 3000)
  t.equal(watching.phase, 'watching')
  t.same(watching.weights, { stable: 0, canary: 0, green: 100 }, 'all traffic on green at once')
  await sleep(500)
  const brokeAt = Date.now()
  broken = true
  const last = await leaves('watching', 3000)
  const after = Date.now() - brokeAt
  t.equal(last.phase, 'failed')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 }, 'back on the old colour')
  // Every request fails: the fast guard switches back well before the next check.
  t.ok(after < 1500, `switched back ${after} ms after green broke`)
  await load.stop()
  t.ok(await event('rollout.failed'))
  const actions = (await events()).map((e) => e.action).filter((a) => a.startsWith('rollout.'))
  t.same(actions.filter((a) => a !== 'rollout.held' && a !== 'rollout.checked'), ['rollout.started', 'rollout.switched', 'rollout.failed'])
})

t.test('a green that stays healthy through the watch window is finalized: green becomes stable', async (t) => {
  const { green, proxy, admin, leaves } = await setup(t)
  const load = traffic(proxy.url)
  t.teardown(() => load.stop())
  await sleep(1000)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  t.equal((await leaves('smoke', 3000)).phase, 'watching')
  const watched = await leaves('watching', 8000)
  const last = await leaves('promoting', 2000)
  t.equal(last.phase, 'succeeded', JSON.stringify(watched.rollout?.history.map((h) => h.note)))
  const route = (await admin.get('/api/v1/routes/app')).json<{ upstreams: Record<string, string[]>; weights: Record<string, number> }>()
  t.same(route.upstreams.stable, [green.url], 'stable now runs green\'s upstream')
  t.same(route.weights, { stable: 100, canary: 0, green: 0 })
  await sleep(200)
  const results = await load.stop()
  t.same(failures(results), [], 'no client request failed through switch and finalize')
})

t.test('a green whose analysis fails in the watch window is switched back at once', async (t) => {
  const { green, proxy, admin, event, leaves } = await setup(t)
  let slow = false
  green.handle((_req, res) => {
    if (slow) setTimeout(() => res.end('green'), 150)
    else res.end('green')
  })
  const load = traffic(proxy.url)
  t.teardown(() => load.stop())
  await sleep(1000)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { analysis: { failureThreshold: 2, maxP99Ms: 100 } })).status, 201)
  t.equal((await leaves('smoke', 3000)).phase, 'watching')
  slow = true
  const last = await leaves('watching', 5000)
  t.equal(last.phase, 'failed')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  await load.stop()
  const failed = await event('rollout.failed')
  t.match(failed?.reason?.check ?? '', /^p99/, failed?.reason?.detail ?? '')
})
