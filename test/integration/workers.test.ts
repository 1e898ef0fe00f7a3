// weir with the data path in two worker processes (config `workers: 2`), over real sockets and
// real processes: a change is in force on every worker by its reply, one set of numbers over
// the workers, the same decisions whichever worker takes a request, and faults (a worker killed
// under load, a worker that stops answering, a crash loop).

import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminClient, type AdminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { scrape } from '../helpers/prom-text.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { inParallel, sendMany } from '../helpers/send-many.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { exitWithin, runWeir, serveWeir, tempDir, waitForOutput, yamlConfig } from '../helpers/weir-process.ts'

interface WorkerView { worker: number; pid: number | null; state: string; requests: number; restarts: number }

async function workersOf (admin: AdminClient): Promise<WorkerView[]> {
  return (await admin.get('/api/v1/workers')).json<{ workers: WorkerView[] }>().workers
}

async function twoWorkers (t: Test, route: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; admin: AdminClient }> {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable?.url, canary: canary?.url },
    weights: { stable: 100, canary: 0 },
    stickiness: { userId: { header: 'x-user-id' }, cookie: { name: 'weir_b', maxAge: 3600 } },
    override: { header: 'x-weir-version' },
    ...route,
  }], { workers: 2 }))
  t.teardown(() => proxy.close())
  return { proxy, admin: adminClient(proxy.adminUrl) }
}

/** Sends `count` GETs, each on a fresh connection, `concurrency` at a time; returns the versions. */
async function freshConnections (url: string, count: number, concurrency: number, headers: (i: number) => Record<string, string> = () => ({})): Promise<string[]> {
  const versions: string[] = new Array(count)
  await inParallel(count, concurrency, async (i) => {
    const reply = await send(url + '/', { headers: headers(i) })
    versions[i] = reply.status === 200 ? String(reply.headers['x-weir-version']) : `status ${reply.status}`
  })
  return versions
}

const served = (before: WorkerView[], after: WorkerView[]): number[] => after.map((w, i) => w.requests - (before[i]?.requests ?? 0))

t.test('right after a weight change answers, 200 requests on 50 fresh connections all land where the new weights say, on both workers', async (t) => {
  const { proxy, admin } = await twoWorkers(t)
  t.same((await workersOf(admin)).map((w) => w.state), ['running', 'running'], 'two workers run')
  for (const [weights, expected] of [[{ stable: 0, canary: 100 }, 'canary'], [{ stable: 100, canary: 0 }, 'stable'], [{ stable: 0, canary: 100 }, 'canary']] as const) {
    const before = await workersOf(admin)
    const reply = await admin.call('PUT', '/api/v1/routes/app/weights', weights)
    t.equal(reply.status, 200)
    const versions = await freshConnections(proxy.url, 200, 50, (i) => ({ 'x-user-id': `user-${i}-${Math.random()}` }))
    t.same(versions.filter((v) => v !== expected), [], `every request went to ${expected}`)
    await proxy.apps.dataPlane.flush()
    const each = served(before, await workersOf(admin))
    t.ok(each.every((n) => n > 0), `both workers served some of them (${each.join(' + ')})`)
    t.equal(each.reduce((a, b) => a + b, 0), 200, 'and together all of them')
  }
})

t.test('a user id, a bucket cookie and an override get the same version on every worker', async (t) => {
  const { proxy, admin } = await twoWorkers(t)
  t.equal((await admin.call('PUT', '/api/v1/routes/app/weights', { stable: 50, canary: 50 })).status, 200)
  const before = await workersOf(admin)
  for (const user of ['alice', 'bob', 'carol', 'dave']) {
    const versions = await freshConnections(proxy.url, 20, 10, () => ({ 'x-user-id': user }))
    t.equal(new Set(versions).size, 1, `${user} always gets ${versions[0]}`)
  }
  // A cookie signed by whichever worker answered first verifies on the other.
  const first = await send(proxy.url + '/')
  const cookie = String(first.headers['set-cookie']?.[0]).split(';')[0] as string
  const withCookie = await freshConnections(proxy.url, 40, 10, () => ({ cookie }))
  t.same([...new Set(withCookie)], [first.headers['x-weir-version']], 'the bucket cookie keeps its version')
  const overridden = await freshConnections(proxy.url, 20, 10, () => ({ 'x-weir-version': 'canary' }))
  t.same([...new Set(overridden)], ['canary'], 'the override holds')
  await proxy.apps.dataPlane.flush()
  const each = served(before, await workersOf(admin))
  t.ok(each.every((n) => n > 20), `both workers took part (${each.join(' + ')})`)
})

t.test('after 10 000 requests over both workers the counters sum to 10 000 and the stats count what was sent', async (t) => {
  const { proxy, admin } = await twoWorkers(t)
  t.equal((await admin.call('PUT', '/api/v1/routes/app/weights', { stable: 90, canary: 10 })).status, 200)
  const replies = await sendMany(proxy.url, 10_000, 50, (i) => ({ path: '/', headers: { 'x-user-id': `u${i}` } }))
  t.equal(replies.filter((r) => r.status === 200).length, 10_000)
  const sentTo = { stable: replies.filter((r) => r.headers['x-weir-version'] === 'stable').length, canary: replies.filter((r) => r.headers['x-weir-version'] === 'canary').length }
  const metrics = await scrape(proxy.adminUrl)
  const requests = metrics.select('weir_requests_total', { route: 'app' })
  t.equal(requests.reduce((sum, s) => sum + s.value, 0), 10_000, 'weir_requests_total sums to 10 000')
  t.equal(metrics.value('weir_requests_total', { route: 'app', version: 'canary', code: '200' }), sentTo.canary, 'canary counted as sent')
  t.equal(metrics.value('weir_request_duration_seconds_count', { route: 'app', version: 'stable' }), sentTo.stable, 'the histogram counts every stable response')
  const decisions = metrics.select('weir_routing_decisions_total', { route: 'app' }).reduce((sum, s) => sum + s.value, 0)
  t.equal(decisions, 10_000, 'every decision is counted once')
  const perWorker = metrics.select('weir_worker_requests_total')
  t.equal(perWorker.length, 2)
  t.equal(perWorker.reduce((sum, s) => sum + s.value, 0), 10_000, 'the per-worker counts add up')
  t.ok(perWorker.every((s) => s.value > 2000), `and both carried load (${perWorker.map((s) => s.value).join(' + ')})`)
  const stats = (await admin.get('/api/v1/routes/app/stats?window=60')).json<{ versions: Record<string, { requests: number; errors: number }> }>().versions
  t.equal(stats.stable?.requests, sentTo.stable, 'stats: stable requests as sent')
  t.equal(stats.canary?.requests, sentTo.canary, 'stats: canary requests as sent')
  t.equal((stats.stable?.errors ?? 0) + (stats.canary?.errors ?? 0), 0)
})

t.test('kill -9 of a worker under 500 req/s: weir keeps answering, the replacement serves within 2 s, counters never go back, the rollout goes on', async (t) => {
  const { proxy, admin } = await twoWorkers(t)
  const rollout = rolloutClient(admin, 'app')
  const traffic = startTraffic(proxy.url, { rate: 500, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  await sleep(500)
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {
    steps: [10, 50, 100], interval: '1s', analysis: { minRequests: 20, maxErrorRate: 0.5, maxErrorRatio: 100, maxP99Ms: 5000, maxP99Ratio: 100, failureThreshold: 3 },
  })
  t.equal(started.status, 201, started.body)
  await sleep(1000)
  const [victim] = await workersOf(admin)
  const killedAt = Date.now()
  process.kill(victim?.pid as number, 'SIGKILL')
  // Scrape through the replacement: the totals must never decrease.
  let last = -1
  let decreased = false
  let replacedAt: number | null = null
  const seen: string[] = []
  while (Date.now() - killedAt < 3000) {
    const total = (await scrape(proxy.adminUrl)).select('weir_requests_total', { route: 'app' }).reduce((sum, s) => sum + s.value, 0)
    if (total < last) decreased = true
    last = total
    const slot = (await workersOf(admin))[0]
    seen.push(`${Date.now() - killedAt}ms ${slot?.pid} ${slot?.state} ${slot?.requests}`)
    if (replacedAt === null && slot !== undefined && slot.pid !== victim?.pid && slot.state === 'running') {
      // The load's keep-alive connections all moved to the surviving worker when the victim's
      // closed; fresh connections are what the replacement is handed.
      const before = slot.requests
      await freshConnections(proxy.url, 10, 10)
      await proxy.apps.dataPlane.flush()
      if (((await workersOf(admin))[0]?.requests ?? 0) > before) replacedAt = Date.now()
    }
    await sleep(50)
  }
  t.notOk(decreased, 'weir_requests_total never decreased')
  t.ok(replacedAt !== null && replacedAt - killedAt <= 2000, `the replacement took traffic ${replacedAt === null ? 'never' : `${replacedAt - killedAt} ms`} after the kill`, { seen })
  const view = await rollout.leaves('progressing', 15_000)
  const results = await traffic.stop()
  t.equal(view.phase, 'succeeded', 'the rollout went on to the end')
  const late = failures(results).filter((r) => r.at > killedAt + 1000)
  t.same(late, [], 'every request sent from a second after the kill was answered with a 2xx')
  t.ok(failures(results).length <= 100, `only requests on the killed worker's connections failed (${failures(results).length} of ${results.length})`)
  const events = await rollout.events()
  const crash = events.find((e) => e.action === 'worker.crashed') as { reason?: { worker?: number; signal?: string } } | undefined
  t.same([crash?.reason?.worker, crash?.reason?.signal], [1, 'SIGKILL'], 'the crash is an event naming the worker and the signal')
  t.equal((await workersOf(admin))[0]?.restarts, 1)
  const metrics = await scrape(proxy.adminUrl)
  t.equal(metrics.value('weir_worker_restarts_total', { worker: '1' }), 1)
})

t.test('a worker that stops acknowledging is replaced, and the write still answers within the bound', async (t) => {
  const { proxy, admin } = await twoWorkers(t)
  const [, stuck] = await workersOf(admin)
  process.kill(stuck?.pid as number, 'SIGSTOP')
  t.teardown(() => {
    try { process.kill(stuck?.pid as number, 'SIGKILL') } catch {}
  })
  const began = performance.now()
  const reply = await admin.call('PUT', '/api/v1/routes/app/weights', { stable: 0, canary: 100 })
  const tookMs = performance.now() - began
  t.equal(reply.status, 200, 'the write answers')
  t.ok(tookMs >= 1900 && tookMs < 5000, `after the acknowledgement bound (2 s) and the kill (${Math.round(tookMs)} ms)`)
  const deadline = Date.now() + 10_000
  let slot = (await workersOf(admin))[1]
  while ((slot?.pid === stuck?.pid || slot?.state !== 'running') && Date.now() < deadline) {
    await sleep(50)
    slot = (await workersOf(admin))[1]
  }
  t.not(slot?.pid, stuck?.pid, 'the stuck worker was replaced')
  t.equal(slot?.state, 'running')
  const versions = await freshConnections(proxy.url, 100, 20, (i) => ({ 'x-user-id': `v${i}` }))
  t.same([...new Set(versions)], ['canary'], 'the replacement serves the new weights')
  const events = (await admin.get('/api/v1/events')).json<{ events: { action: string; reason?: { worker?: number } }[] }>().events
  t.ok(events.some((e) => e.action === 'worker.unresponsive' && e.reason?.worker === 2), 'an event says which worker was restarted and why')
})

t.test('a reload is in force on every worker once it resolves', async (t) => {
  const { proxy, admin } = await twoWorkers(t)
  const next = { ...proxy.config, routes: proxy.config.routes.map((r) => ({ ...r, weights: { stable: 0, canary: 10000, green: 0 } })) }
  await proxy.apps.reload(next)
  const versions = await freshConnections(proxy.url, 60, 20, (i) => ({ 'x-user-id': `r${i}` }))
  t.same([...new Set(versions)], ['canary'], 'a reload is in force on every worker once it resolves')
  t.ok((await workersOf(admin)).every((w) => w.state === 'running'))
})

t.test('weir serve with workers: 2 stops with exit code 1 and a clear error on a crash loop', async (t) => {
  const [up] = await startUpstreams(t, 'up')
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${up?.url} }`).replace(/^workers: .*$/m, 'workers: 2'))
  const { weir, url, adminUrl } = await serveWeir(t, file)
  t.equal((await send(url + '/')).status, 200)
  t.match(weir.output(), /weir proxy listening on http:\/\/127\.0\.0\.1:[0-9]+ \(2 worker processes\)/)
  const admin = adminClient(adminUrl)
  const killed = new Set<number>()
  for (let crash = 1; crash <= 5; crash++) {
    const deadline = Date.now() + 10_000
    let pid: number | null = null
    while (pid === null && Date.now() < deadline) {
      const running = (await workersOf(admin).catch(() => [])).find((w) => w.state === 'running' && w.pid !== null && !killed.has(w.pid))
      pid = running?.pid ?? null
      if (pid === null) await sleep(20)
    }
    if (pid === null) break
    killed.add(pid)
    process.kill(pid, 'SIGKILL')
    if (crash < 5) await waitForOutput(weir, new RegExp(`pid ${pid}\\) exited unexpectedly \\(signal SIGKILL\\); replacing it`), 5000)
  }
  const exit = await exitWithin(weir, 10_000)
  t.equal(exit?.code, 1, 'exit code 1')
  t.match(weir.output(), /weir: 5 worker exits within 30 s .*: stopping instead of restarting them/, 'a clear error on stderr')
  t.match(weir.output(), /WEIR_ERR_WORKER_CRASH_LOOP/, 'with its code in the log')
})

t.test('weir serve --workers overrides the config; a bad value is refused', async (t) => {
  const [up] = await startUpstreams(t, 'up')
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${up?.url} }`).replace(/^workers: .*$/m, 'workers: 1'))
  const weir = runWeir(t, ['serve', '--config', file, '--workers', '2'])
  const match = await waitForOutput(weir, /weir proxy listening on (http:\/\/127\.0\.0\.1:[0-9]+) \(2 worker processes\)/, 15_000)
  t.equal((await send(`${match[1]}/`)).status, 200, 'two workers from the flag')
  weir.child.kill('SIGTERM')
  t.equal((await exitWithin(weir, 10_000))?.code, 0, 'SIGTERM drains the workers and exits 0')
  for (const bad of ['0', 'two', '1.5', '300']) {
    const refused = runWeir(t, ['serve', '--config', file, '--workers', bad])
    t.equal((await exitWithin(refused, 10_000))?.code, 2, `--workers ${bad} exits 2`)
    t.match(refused.output(), /--workers must be auto or a whole number from 1 to 256/)
  }
})
