// The canary strategy end to end: real upstreams, real traffic through weir, the built-in
// controller stepping weights, judging canary against stable, promoting or reverting.

import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { dirname } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { rolloutClient, type RolloutBody } from '../helpers/rollout-client.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'

const fastPolicy = {
  steps: [10, 50, 100],
  interval: '1s',
  analysis: { minRequests: 20, failureThreshold: 2 },
}

async function setup (t: Test, policy: Record<string, unknown> = fastPolicy, route: Record<string, unknown> = {}) {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url },
    rollout: policy,
    ...route,
  }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  return { stable: stable!, canary: canary!, proxy, admin, ...rolloutClient(admin) }
}

t.test('a healthy canary walks 10, 50, 100 and is promoted; no client request fails', async (t) => {
  // The latency checks get room for the test machine's stalls: a few 30 ms requests among the
  // canary's first 30 put its p99 at twice stable's, and the check holds until the outliers are
  // significant, which they never are. The latency check is tested by the slow canary below.
  const { canary, proxy, admin, rollout, event, events } = await setup(t, { ...fastPolicy, analysis: { ...fastPolicy.analysis, maxP99Ms: 5000, maxP99Ratio: 20 } })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201, started.body)
  t.equal(started.json<RolloutBody>().weights.canary, 10, 'the first step applies at once')
  let last: RolloutBody | undefined
  for (let i = 0; i < 120; i++) {
    last = await rollout()
    if (last.phase === 'succeeded' || last.phase === 'failed') break
    await sleep(100)
  }
  t.equal(last?.phase, 'succeeded', JSON.stringify(last?.rollout?.history.map((h) => h.note)))
  const route = (await admin.get('/api/v1/routes/app')).json<{ upstreams: Record<string, string[]>; weights: Record<string, number> }>()
  t.same(route.upstreams.stable, [canary.url], 'stable now points at the canary\'s upstream')
  t.same(route.weights, { stable: 100, canary: 0, green: 0 })
  await sleep(300)
  const results = await traffic.stop()
  t.ok(results.length > 500, `traffic flowed (${results.length} requests)`)
  t.same(failures(results), [], 'no client request failed')
  t.ok(await event('rollout.succeeded'), 'the promotion is logged')
  const all = (await events()).filter((e) => e.action.startsWith('rollout.'))
  // A check may hold for more data (too few canary requests in a 1 s window); it never fails here.
  const holds = all.filter((e) => e.action === 'rollout.held').map((e) => e.reason?.detail)
  t.same(all.map((e) => e.action).filter((a) => a !== 'rollout.held'), ['rollout.started', 'rollout.step', 'rollout.step', 'rollout.promoting', 'rollout.succeeded'], JSON.stringify(holds))
  const metrics = await admin.get('/metrics')
  t.match(metrics.body, /weir_rollout_state\{route="app",phase="succeeded"\} 1/)
})

t.test('a canary answering 30 % of requests with 500 is reverted within two intervals', async (t) => {
  const { canary, proxy, admin, rollout, event, events } = await setup(t)
  let n = 0
  canary.handle((_req, res) => {
    n++
    res.statusCode = n % 10 < 3 ? 500 : 200
    res.end('canary')
  })
  const traffic = startTraffic(proxy.url, { rate: 300, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201, started.body)
  const startedAt = Date.now()
  let last: RolloutBody | undefined
  for (let i = 0; i < 100; i++) {
    last = await rollout()
    if (last.phase !== 'progressing') break
    await sleep(50)
  }
  const tookMs = Date.now() - startedAt
  t.equal(last?.phase, 'failed')
  t.same(last?.weights, { stable: 100, canary: 0, green: 0 })
  // Two 1 s intervals, plus a controller tick and the write for each check; a check that held
  // for too few canary requests (a loaded machine's traffic can fall short) is an interval more.
  const held = (await events()).filter((e) => e.action === 'rollout.held').length
  t.ok(held <= 1, `at most one check held for lack of data (${held})`)
  t.ok(tookMs < 2600 + held * 1000, `reverted after ${tookMs} ms with ${held} held check(s)`)
  await traffic.stop()
  const failed = await event('rollout.failed')
  t.equal(failed?.actor, 'controller')
  t.equal(failed?.reason?.check, 'error-rate')
  t.ok((failed?.reason?.value ?? 0) > 0.2, `measured value ${failed?.reason?.value}`)
  t.equal(failed?.reason?.threshold, 0.01)
  t.match(failed?.reason?.detail ?? '', /canary error rate .* is above maxErrorRate 0\.01/)
})

t.test('a canary 200 ms slower than stable is reverted on the latency check', async (t) => {
  const { canary, proxy, admin, event, events, leaves } = await setup(t, { ...fastPolicy, analysis: { ...fastPolicy.analysis, maxP99Ms: 1000 } })
  canary.handle((_req, res) => { setTimeout(() => res.end('slow canary'), 200) })
  const traffic = startTraffic(proxy.url, { rate: 300, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const last = await leaves('progressing', 6000)
  t.equal(last.phase, 'failed')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  const failed = await event('rollout.failed')
  t.equal(failed?.reason?.check, 'p99-ratio', JSON.stringify(failed ?? (await events()).map((e) => e.action)))
  t.ok((failed?.reason?.value ?? 0) > 1.5, `p99 ratio ${failed?.reason?.value}`)
  t.equal(failed?.reason?.threshold, 1.5)
})

t.test('at 2 requests per second the rollout holds, neither promoting nor reverting, and says why', async (t) => {
  const { proxy, admin, rollout } = await setup(t)
  const traffic = startTraffic(proxy.url, { rate: 2, maxMs: 10_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  await sleep(3500)
  const last = await rollout()
  t.equal(last.phase, 'progressing')
  t.equal(last.rollout?.step, 0, 'still at the first step')
  t.equal(last.weights.canary, 10)
  t.equal(last.rollout?.failures, 0)
  t.match(last.rollout?.reason ?? '', /^holding: requests: canary had [0-9]+ requests in [0-9]+s; a check needs 20 \(no data means halt, not promote\)/)
  const check = last.rollout?.lastCheck?.checks[0]
  t.equal(check?.name, 'requests')
  t.equal(check?.verdict, 'hold')
  t.equal(check?.threshold, 20)
})

t.test('a canary whose process dies is reverted by the fast guard within 2 s; GET clients see no error', async (t) => {
  const { canary, proxy, admin, event, leaves } = await setup(t, { ...fastPolicy, interval: '30s' })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { steps: [50] })).status, 201)
  await sleep(1000)
  const diedAt = Date.now()
  await canary.close()
  const last = await leaves('progressing', 5000)
  const revertedAfter = Date.now() - diedAt
  t.equal(last.phase, 'failed')
  t.ok(revertedAfter < 2000, `reverted ${revertedAfter} ms after the canary died`)
  await sleep(300)
  const results = await traffic.stop()
  t.same(failures(results), [], 'every GET was answered (failed over to stable)')
  const failed = await event('rollout.failed')
  t.equal(failed?.reason?.check, 'guard')
  t.match(failed?.reason?.detail ?? '', /canary (error rate|failed [0-9]+ requests in a row)/)
})

t.test('a failure streak that reverted one rollout does not revert the next one at its canary\'s first failure', async (t) => {
  // No outlier ejection: an ejected canary host would fail the next rollout's every request
  // (503, its version's error), which the guard rightly reverts.
  const { canary, proxy, admin, leaves, rollout, events } = await setup(t, { ...fastPolicy, interval: '30s' }, { upstreamPolicy: { outlierDetection: false } })
  canary.handle((_req, res) => { res.statusCode = 500; res.end('down') })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { steps: [50] })).status, 201)
  const first = await leaves('progressing', 5000)
  t.equal(first.phase, 'failed', 'the first rollout is reverted by the guard')
  t.match(first.rollout?.reason, /guard/)
  await traffic.stop()
  // The canary's error run (20 and more, from the first rollout) is still the stats' current
  // run: it took no request since. The next canary fails its first request, then answers.
  let failedOnce = false
  canary.handle((_req, res) => {
    failedOnce = true
    canary.handle(null)
    res.statusCode = 500
    res.end('one failure')
  })
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { steps: [50] })).status, 201)
  // The guard samples the new rollout for a few ticks before the canary's first request, then
  // requests go one at a time until one reaches the canary (half of them do) and fails.
  await sleep(300)
  for (let i = 0; i < 100; i++) {
    if (failedOnce) break
    await send(proxy.url + '/')
  }
  t.ok(failedOnce, 'the new canary failed one request')
  // Ten guard ticks after that failure, with no canary success to end the run meanwhile.
  await sleep(1000)
  const second = await rollout()
  t.equal(second.phase, 'progressing', `one failure does not revert the new rollout (${second.rollout?.reason ?? ''})`)
  const reverts = (await events()).filter((e) => e.action === 'rollout.failed')
  t.equal(reverts.length, 1, 'only the first rollout was reverted')
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout/abort')).status, 200)
})

t.test('a new canary upstream starts the guard afresh (its run of failures and its last second): the old upstream\'s failures are not its', async (t) => {
  const { canary, proxy, admin, rollout } = await setup(t, { ...fastPolicy, interval: '30s' }, { upstreamPolicy: { outlierDetection: false } })
  const [next] = await startUpstreams(t, 'next')
  let failures = 0
  const failing = (_req: unknown, res: { statusCode: number; end: (body: string) => void }): void => {
    failures++
    res.statusCode = 500
    res.end('no')
  }
  canary.handle(failing)
  next!.handle(failing)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { steps: [50] })).status, 201)
  await sleep(300)
  // One request at a time: the old canary fails 12 in a row (the guard allows 19), the new one
  // 12 more. Counted together that is 24 in a row, and 24 of 24 in the last second.
  const sendUntil = async (count: number): Promise<void> => {
    for (let i = 0; i < 500; i++) {
      if (failures >= count) return
      await send(proxy.url + '/')
    }
  }
  await sendUntil(12)
  t.equal((await rollout()).phase, 'progressing', 'below the guard\'s threshold')
  const moved = await admin.call('PUT', '/api/v1/routes/app/upstreams?force=true', { canary: next!.url })
  t.equal(moved.status, 200, 'the canary moves to another upstream mid-rollout')
  await sleep(300)
  await sendUntil(24)
  await sleep(1000)
  const view = await rollout()
  t.equal(view.phase, 'progressing', `12 failures of the new upstream do not revert it (${view.rollout?.reason ?? ''})`)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout/abort')).status, 200)
})

t.test('a fast guard whose revert cannot be written (state directory gone) serves stable at once and writes the revert once it can', async (t) => {
  const { canary, proxy, admin } = await setup(t, { ...fastPolicy, interval: '30s' })
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', { steps: [50] })).status, 201)
  // The state file's directory is moved away and a file put in its place: every write fails (ENOTDIR).
  const dir = dirname(proxy.config.stateFile)
  renameSync(dir, dir + '.away')
  writeFileSync(dir, 'not a directory')
  t.teardown(() => {
    if (existsSync(dir + '.away')) {
      rmSync(dir, { force: true })
      renameSync(dir + '.away', dir)
    }
  })
  canary.handle((_req, res) => { res.statusCode = 500; res.end('{}') })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  const deadline = Date.now() + 5000
  let view = (await admin.get('/api/v1/routes/app/rollout')).json<RolloutBody & { failSafe: { since: string; weights: Record<string, number>; failedWrites: number } | null }>()
  while (Date.now() < deadline && (view.failSafe === null || view.failSafe.failedWrites === 0)) {
    await sleep(50)
    view = (await admin.get('/api/v1/routes/app/rollout')).json()
  }
  t.same(view.failSafe?.weights, { stable: 100, canary: 0, green: 0 }, `the guard tripped and its revert is held (${JSON.stringify(view.failSafe)})`)
  t.equal(view.phase, 'progressing', 'the state could not record it')
  const from = traffic.results.length
  await sleep(1000)
  // Requests already in flight when the hold began (with workers, the snapshot reaches them over
  // IPC a few ms later) may still answer from the canary: judge those that finished 250 ms after.
  const heldSince = Date.parse(view.failSafe?.since ?? '') + 250
  const held = traffic.results.slice(from).filter((r) => r.at > heldSince)
  t.ok(held.length > 100, `${held.length} requests while held`)
  t.same(held.filter((r) => r.version !== 'stable'), [], 'every one of them went to stable')
  rmSync(dir)
  renameSync(dir + '.away', dir)
  const written = Date.now() + 5000
  // The hold ends within a controller tick (100 ms) of the store no longer driving the rollout.
  while (Date.now() < written && (view.phase !== 'failed' || view.failSafe !== null)) {
    await sleep(50)
    view = (await admin.get('/api/v1/routes/app/rollout')).json()
  }
  t.equal(view.phase, 'failed', 'once the directory is back the revert is written')
  t.equal(view.failSafe, null, 'and nothing is held any more')
  t.same(view.weights, { stable: 100, canary: 0, green: 0 })
  t.same(failures(await traffic.stop()).filter((r) => r.status === null), [], 'no request failed at the proxy')
})

t.test('a confirm-promotion webhook that answers 403 holds the last step until it answers 200', async (t) => {
  let answer = 403
  const calls: { type: string; step: number }[] = []
  const hooks = createServer((req, res) => {
    let text = ''
    req.on('data', (c: Buffer) => { text += c.toString() })
    req.on('end', () => {
      const payload = JSON.parse(text) as { type: string; step: number }
      calls.push({ type: payload.type, step: payload.step })
      res.statusCode = payload.type === 'confirm-promotion' ? answer : 200
      res.end(res.statusCode === 200 ? 'ok' : 'not yet: waiting for sign-off')
    })
  })
  await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => hooks.close(() => resolve())))
  const hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/`
  const { proxy, admin, rollout, leaves } = await setup(t, {
    ...fastPolicy,
    steps: [50],
    // The gate is the subject: a latency blip on a loaded machine must not hold the check first.
    analysis: { ...fastPolicy.analysis, maxP99Ms: 5000, maxP99Ratio: 100 },
    webhooks: [
      { name: 'sign-off', type: 'confirm-promotion', url: hookUrl, timeout: '2s' },
      { name: 'notify', type: 'post-rollout', url: hookUrl },
    ],
  })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  await sleep(3500)
  const held = await rollout()
  t.equal(held.phase, 'progressing')
  t.equal(held.weights.canary, 50, 'held at the last step')
  t.match(held.rollout?.reason ?? '', /waiting for confirm-promotion: webhook sign-off \(confirm-promotion\) answered 403: not yet/)
  t.ok(calls.filter((c) => c.type === 'confirm-promotion').length >= 1, 'the gate was asked')
  answer = 200
  const last = await leaves('progressing', 5000)
  t.equal((await leaves('promoting', 2000)).phase, 'succeeded', JSON.stringify(last.rollout?.reason))
  await traffic.stop()
  t.ok(await waitFor(() => calls.some((c) => c.type === 'post-rollout'), 2000), 'post-rollout was notified')
})

async function waitFor (check: () => boolean, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs
  while (!check() && Date.now() < deadline) await sleep(20)
  return check()
}
