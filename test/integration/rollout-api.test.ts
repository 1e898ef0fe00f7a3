// The rollout endpoints of the admin API: starting (policy merged over the route's, checked),
// the manual gates (pause, resume, promote, abort), 409s, and what an event and a metric show.

import t, { type Test } from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import type { RolloutBody } from '../helpers/rollout-client.ts'
import { startUpstreams } from '../helpers/upstream.ts'

interface ErrorBody { error: string; message: string; problems?: { path: string; reason: string }[] }

async function setup (t: Test, route: Record<string, unknown> = {}) {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url, green: green!.url },
    rollout: { steps: [10, 50], interval: '1m', analysis: { minRequests: 20 } },
    ...route,
  }]))
  t.teardown(() => proxy.close())
  return { admin: adminClient(proxy.adminUrl), proxy }
}

t.test('GET rollout of a route that never had one is idle', async (t) => {
  const { admin, proxy } = await setup(t)
  const res = await admin.get('/api/v1/routes/app/rollout')
  t.equal(res.status, 200)
  // Without etcd a replica is a fleet of one: it leads.
  t.same(res.json(), { route: 'app', phase: 'idle', weights: { stable: 100, canary: 0, green: 0 }, revision: 0, rollout: null, leader: proxy.config.fleet.id, failSafe: null })
  t.equal((await admin.get('/api/v1/routes/nope/rollout')).status, 404)
})

t.test('a started rollout merges the body over the route\'s policy, over the defaults', async (t) => {
  const { admin } = await setup(t)
  const res = await admin.call('POST', '/api/v1/routes/app/rollout', { interval: '2s', analysis: { maxErrorRate: 0.05 } })
  t.equal(res.status, 201, res.body)
  const body = res.json<RolloutBody>()
  t.equal(res.headers.etag, `"${body.revision}"`)
  t.equal(body.phase, 'progressing')
  t.same(body.weights, { stable: 90, canary: 10, green: 0 })
  t.same(body.rollout?.steps, [10, 50], 'steps from the route')
  t.equal(body.rollout?.policy.intervalMs, 2000, 'interval from the body')
  t.equal(body.rollout?.policy.analysis.maxErrorRate, 0.05, 'analysis field from the body')
  t.equal(body.rollout?.policy.analysis.minRequests, 20, 'analysis field from the route')
  t.equal(body.rollout?.policy.analysis.maxP99Ratio, 1.5, 'analysis default')
  t.same(body.rollout?.policy.guard, { maxErrorRate: 0.5, minRequests: 20 })
  const route = (await admin.get('/api/v1/routes/app')).json<{ rollout: { phase: string; weight: number } }>()
  t.match(route.rollout, { phase: 'progressing', weight: 10 }, 'the route shows a summary')
  const metrics = await admin.get('/metrics')
  t.match(metrics.body, /weir_rollout_state\{route="app",phase="progressing"\} 1/)
  t.match(metrics.body, /weir_rollout_state\{route="app",phase="idle"\} 0/)
})

t.test('invalid policies are refused with every problem named, and nothing changes', async (t) => {
  const { admin } = await setup(t)
  const cases: [unknown, string[]][] = [
    [{ steps: [50, 10] }, ['rollout.steps[1]']],
    [{ steps: [10.123] }, ['rollout.steps[0]']],
    [{ interval: '500ms' }, ['rollout.interval']],
    [{ strategy: 'linear' }, ['rollout.strategy']],
    [{ analysis: { maxErrorRate: 2, bogus: 1 } }, ['rollout.analysis.maxErrorRate', 'rollout.analysis.bogus']],
    [{ webhooks: [{ name: 'a', type: 'pre-rollout', url: 'ftp://x' }] }, ['rollout.webhooks[0].url']],
    [{ webhooks: [{ name: 'a', type: 'sometimes', url: 'http://127.0.0.1:1/' }] }, ['rollout.webhooks[0].type']],
    [{ strategy: 'bluegreen' }, ['rollout.smoke']],
    [[1, 2], ['rollout']],
  ]
  for (const [body, paths] of cases) {
    const res = await admin.call('POST', '/api/v1/routes/app/rollout', body)
    t.equal(res.status, 400, JSON.stringify(body))
    const error = res.json<ErrorBody>()
    t.equal(error.error, 'WEIR_ERR_ADMIN_INVALID')
    for (const path of paths) t.ok(error.problems?.some((p) => p.path === path), `${JSON.stringify(body)} names ${path}: ${error.message}`)
  }
  const after = (await admin.get('/api/v1/routes/app/rollout')).json<RolloutBody>()
  t.equal(after.phase, 'idle')
  t.equal(after.revision, 0)
})

t.test('a rollout that the route cannot run is refused: missing upstream, other version with weight', async (t) => {
  const [stable] = await startUpstreams(t, 'stable')
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: stable!.url } }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  const res = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(res.status, 400)
  t.match(res.json<ErrorBody>().message, /a canary rollout needs upstreams\.canary/)
  const { admin: admin2 } = await setup(t, { weights: { stable: 90, green: 10 } })
  const res2 = await admin2.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(res2.status, 400)
  t.match(res2.json<ErrorBody>().message, /needs green at weight 0/)
})

t.test('while a rollout runs: a second start, a manual weight change and an upstream change are 409; force and rollback still work', async (t) => {
  const { admin } = await setup(t)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const again = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(again.status, 409)
  t.equal(again.json<ErrorBody>().error, 'WEIR_ERR_ADMIN_ROLLOUT_ACTIVE')
  t.equal((await admin.call('PUT', '/api/v1/routes/app/weights', { stable: 50, canary: 50 })).status, 409)
  t.equal((await admin.call('PUT', '/api/v1/routes/app/upstreams', { canary: 'http://127.0.0.1:1' })).status, 409)
  t.equal((await admin.call('PUT', '/api/v1/routes/app/weights?force=true', { stable: 80, canary: 20 })).status, 200)
  const rolledBack = await admin.call('POST', '/api/v1/routes/app/rollback')
  t.equal(rolledBack.status, 200)
  const after = (await admin.get('/api/v1/routes/app/rollout')).json<RolloutBody>()
  t.equal(after.phase, 'failed')
  t.same(after.weights, { stable: 100, canary: 0, green: 0 })
  t.match(after.rollout?.reason, /rolled back by local/)
})

t.test('pause, resume, promote (next step, then full) and abort', async (t) => {
  const { admin } = await setup(t, { rollout: { steps: [10, 30, 60], interval: '1m' } })
  const post = (path: string) => admin.call('POST', `/api/v1/routes/app/rollout${path}`)
  t.equal((await post('/pause')).status, 409, 'nothing to pause before a rollout')
  t.equal((await post('')).status, 201)
  const paused = await post('/pause')
  t.equal(paused.status, 200)
  t.equal(paused.json<RolloutBody>().phase, 'paused')
  t.equal((await post('/pause')).status, 409, 'already paused')
  const resumed = await post('/resume')
  t.equal(resumed.json<RolloutBody>().phase, 'progressing')
  t.equal((await post('/resume')).status, 409, 'not paused')
  const promoted = (await post('/promote')).json<RolloutBody>()
  t.equal(promoted.rollout?.step, 1)
  t.same(promoted.weights, { stable: 70, canary: 30, green: 0 }, 'promote moves to the next step')
  t.equal((await post('/promote?full=maybe')).status, 400)
  const full = (await post('/promote?full=true')).json<RolloutBody>()
  t.equal(full.phase, 'promoting')
  await sleep(500)
  const done = (await admin.get('/api/v1/routes/app/rollout')).json<RolloutBody>()
  t.equal(done.phase, 'succeeded', 'the controller finishes the promotion')
  t.same(done.weights, { stable: 100, canary: 0, green: 0 })
  t.equal((await post('/abort')).status, 409, 'nothing to abort after it ended')

  t.equal((await post('')).status, 201, 'a new rollout can start after one ended')
  const aborted = (await post('/abort')).json<RolloutBody>()
  t.equal(aborted.phase, 'failed')
  t.same(aborted.weights, { stable: 100, canary: 0, green: 0 })
  t.match(aborted.rollout?.reason, /aborted by local/)
  const events = (await admin.get('/api/v1/events')).json<{ events: { action: string; actor: string }[] }>().events
  t.same(events.filter((e) => e.action.startsWith('rollout.')).map((e) => `${e.actor}:${e.action}`), [
    'local:rollout.started', 'local:rollout.paused', 'local:rollout.resumed', 'local:rollout.step', 'local:rollout.promoting',
    'controller:rollout.succeeded', 'local:rollout.started', 'local:rollout.aborted',
  ])
})
