// The hosts of one version, end to end (docs/proxying.md, "Hosts"): a host that refuses is
// ejected and its requests retried on the others; active checks take a failing host out and
// bring it back; a canary whose hosts are all down is reverted while GETs fail over; the retry
// budget bounds the extra attempts; least-request steers away from a slow host. Real upstreams,
// real sockets, real metrics.

import t, { type Test } from 'tap'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { adminClient, type AdminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { parsePromText } from '../helpers/prom-text.ts'
import { configDoc, startProxy, type RouteDoc } from '../helpers/proxy.ts'
import { eventually, sleep } from '../helpers/raw-http.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { sendMany } from '../helpers/send-many.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'
import { closedPort, startUpstream, startUpstreams, type Upstream } from '../helpers/upstream.ts'

interface HostEvent { action: string; route?: string; reason?: { version?: string; host?: string; detail?: string; forMs?: number } }

async function start (t: Test, route: RouteDoc) {
  const proxy = await startProxy(configDoc([{ name: 'app', ...route }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  return { proxy, admin }
}

async function hostEvents (admin: AdminClient): Promise<HostEvent[]> {
  return (await admin.get('/api/v1/events')).json<{ events: HostEvent[] }>().events.filter((e) => e.action.startsWith('host.'))
}

/** weir_upstream_host_healthy of one host (undefined: no such series). */
async function hostHealthy (admin: AdminClient, host: string): Promise<number | undefined> {
  return parsePromText((await admin.get('/metrics')).body).select('weir_upstream_host_healthy', { host })[0]?.value
}

async function metricSum (admin: AdminClient, name: string, labels: Record<string, string>): Promise<number> {
  return parsePromText((await admin.get('/metrics')).body).select(name, labels).reduce((sum, s) => sum + s.value, 0)
}

const served = (u: Upstream, method = 'GET'): number => u.received.filter((r) => r.method === method && !r.url.startsWith('/health')).length

t.test('three hosts, one refusing: GETs are retried and the host ejected (event, metric); POSTs are never retried; the host returns once it heals', async (t) => {
  const [a, b] = await startUpstreams(t, 'a', 'b')
  const cPort = await closedPort()
  const cUrl = `http://127.0.0.1:${cPort}`
  const { proxy, admin } = await start(t, {
    upstreams: { stable: [a!.url, b!.url, cUrl] },
    upstreamPolicy: { outlierDetection: { baseEjectionTime: '3s', maxEjectionTime: '3s' } },
  })
  // Watch the gauge while the GETs run: the ejection happens within the first requests.
  let sawEjected = false
  const watching = eventually(async () => (sawEjected = (await hostHealthy(admin, cUrl)) === 0), 5000)
  const replies = await sendMany(proxy.url, 600, 10, (i) => ({ path: `/get/${i}` }))
  const ok = replies.filter((r) => r.status === 200).length
  t.ok(ok >= 594, `at least 99 % of 600 GETs succeed (${ok}; others: ${JSON.stringify(replies.filter((r) => r.status !== 200).map((r) => r.status))})`)
  await watching
  t.ok(sawEjected, 'weir_upstream_host_healthy shows the refusing host at 0')
  const ejected = (await hostEvents(admin)).find((e) => e.action === 'host.ejected')
  t.equal(ejected?.route, 'app')
  t.equal(ejected?.reason?.version, 'stable')
  t.equal(ejected?.reason?.host, cUrl, 'the event names the host as configured')
  t.match(ejected?.reason?.detail ?? '', /5 failed attempts in a row \(the last: refused\)/)
  t.equal(ejected?.reason?.forMs, 3000)
  t.ok(await metricSum(admin, 'weir_upstream_retries_total', { route: 'app', version: 'stable', result: 'retried' }) >= 1, 'the retries are counted')
  t.equal(await hostHealthy(admin, a!.url), 1, 'the healthy hosts stay at 1')
  // No error a client sees names the host.
  for (const reply of replies.filter((r) => r.status !== 200)) t.notMatch(reply.body, String(cPort))

  // The host heals: after its ejection it takes requests again.
  const c = await startUpstream('c', cPort)
  t.teardown(() => c.close())
  const back = await eventually(async () => {
    await send(`${proxy.url}/again`)
    return served(c) > 0
  }, 10_000)
  t.ok(back, 'the healed host serves again after its ejection time')
  // With workers, once the last process that had it out returned it.
  t.ok(await eventually(async () => (await hostEvents(admin)).some((e) => e.action === 'host.returned' && e.reason?.host === cUrl), 5000), 'its return is an event')
  t.equal(await hostHealthy(admin, cUrl), 1)
})

t.test('a host taken out of the upstreams while ejected leaves with a host.removed event; added back, it starts healthy', async (t) => {
  const [a, b] = await startUpstreams(t, 'a', 'b')
  const cUrl = `http://127.0.0.1:${await closedPort()}`
  const { proxy, admin } = await start(t, {
    upstreams: { stable: [a!.url, b!.url, cUrl] },
    upstreamPolicy: { outlierDetection: { baseEjectionTime: '1m' } },
  })
  await sendMany(proxy.url, 30, 1, (i) => ({ path: `/r/${i}` }))
  t.ok(await eventually(async () => (await hostHealthy(admin, cUrl)) === 0, 3000), 'ejected')
  t.equal((await admin.call('PUT', '/api/v1/routes/app/upstreams', { stable: [a!.url, b!.url] })).status, 200)
  t.ok(await eventually(async () => (await hostEvents(admin)).some((e) => e.action === 'host.removed' && e.reason?.host === cUrl), 3000), 'host.removed')
  t.equal(await hostHealthy(admin, cUrl), undefined, 'no series for a host no route has')
  t.equal((await admin.call('PUT', '/api/v1/routes/app/upstreams', { stable: [a!.url, b!.url, cUrl] })).status, 200)
  t.equal(await hostHealthy(admin, cUrl), 1, 'added back, it starts healthy (its old ejection is forgotten)')
})

t.test('a POST to a refusing host is answered 502 and never sent again, to another host or the same one', async (t) => {
  const [a, b] = await startUpstreams(t, 'a', 'b')
  const cUrl = `http://127.0.0.1:${await closedPort()}`
  const { proxy } = await start(t, {
    upstreams: { stable: [a!.url, b!.url, cUrl] },
    // No ejection: every third POST goes to the refusing host.
    upstreamPolicy: { outlierDetection: false },
  })
  const replies = await sendMany(proxy.url, 30, 1, (i) => ({ method: 'POST', path: `/post/${i}`, body: `{"n":${i}}`, headers: { 'content-type': 'application/json' } }))
  const refused = replies.filter((r) => r.status === 502)
  t.equal(refused.length, 10, 'the POSTs that reached the refusing host failed')
  t.equal(refused.filter((r) => /WEIR_ERR_UPSTREAM_REFUSED/.test(r.body)).length, 10)
  t.equal(served(a!, 'POST') + served(b!, 'POST'), 20, 'the others were each received once; none was retried')
})

t.test('active checks take a host whose health path fails out within unhealthyThreshold × interval and bring it back after healthyThreshold passes; probes are in no metric', async (t) => {
  const [a, b] = await startUpstreams(t, 'a', 'b')
  let bHealthy = true
  b!.handle((req, res) => {
    if (req.url === '/health') res.statusCode = bHealthy ? 200 : 503
    res.end(JSON.stringify({ version: 'b' }))
  })
  const interval = 300
  const { proxy, admin } = await start(t, {
    upstreams: { stable: [a!.url, b!.url] },
    upstreamPolicy: { stable: { healthCheck: { path: '/health', interval: `${interval}ms`, timeout: '200ms', unhealthyThreshold: 2, healthyThreshold: 2 } } },
  })
  t.ok(await eventually(async () => b!.received.some((r) => r.url === '/health'), 2000), 'the checks reach the host')
  const probe = b!.received.find((r) => r.url === '/health')
  t.equal(probe?.headers['user-agent'], 'weir-health-check')

  // No client traffic: the probes alone must not show in any version metric or in the stats.
  const requestsBefore = await metricSum(admin, 'weir_requests_total', { route: 'app' })
  const probesBefore = b!.received.length
  await sleep(interval * 3)
  t.ok(b!.received.length > probesBefore, 'probes went on')
  t.equal(await metricSum(admin, 'weir_requests_total', { route: 'app' }), requestsBefore, 'weir_requests_total counts no probe')
  t.equal(await metricSum(admin, 'weir_request_duration_seconds_count', { route: 'app' }), requestsBefore, 'nor does the latency histogram')
  const stats = (await admin.get('/api/v1/routes/app/stats?window=10')).json<{ versions: Record<string, { requests: number }> }>()
  t.equal(stats.versions.stable?.requests ?? 0, 0, 'the rolling stats saw no request')

  // The health path starts failing: b leaves the rotation.
  const traffic = startTraffic(proxy.url, { rate: 100, maxMs: 15_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  const failedAt = Date.now()
  bHealthy = false
  const out = await eventually(async () => (await hostHealthy(admin, b!.url)) === 0, 5000)
  const outAfter = Date.now() - failedAt
  t.ok(out, 'b is marked unhealthy')
  // Two failed probes at most one interval apart, after up to one interval's wait, plus the probe's own time.
  t.ok(outAfter <= 3 * interval + 500, `out ${outAfter} ms after its health path failed (unhealthyThreshold × interval = ${2 * interval} ms)`)
  // With workers, each process probes on its own schedule: the last one takes b out within one more interval.
  if (proxy.config.workers > 1) await sleep(interval + 200)
  const servedWhenOut = served(b!)
  await sleep(500)
  t.equal(served(b!), servedWhenOut, 'no request reaches b while it is unhealthy')
  const healedAt = Date.now()
  bHealthy = true
  t.ok(await eventually(async () => served(b!) > servedWhenOut, 5000), 'b serves again once its checks pass')
  const backAfter = Date.now() - healedAt
  t.ok(backAfter <= 3 * interval + 500, `back ${backAfter} ms after its health path healed (healthyThreshold × interval = ${2 * interval} ms)`)
  const results = await traffic.stop()
  t.same(failures(results), [], `no client request failed meanwhile (${JSON.stringify(failures(results).slice(0, 3))})`)
  // With workers, each process checks on its own: the event comes once the last one sees b healthy.
  let actions: string[] = []
  await eventually(async () => (actions = (await hostEvents(admin)).filter((e) => e.reason?.host === b!.url).map((e) => e.action)).length >= 2, 3000)
  t.same(actions, ['host.unhealthy', 'host.healthy'], 'one event when b left, one when it came back')
  t.equal(await hostHealthy(admin, a!.url), 1)
})

t.test('a canary whose every host is down: GETs fail over to stable, and the guard reverts the rollout', async (t) => {
  const [stable] = await startUpstreams(t, 'stable')
  const canaryHosts = [`http://127.0.0.1:${await closedPort()}`, `http://127.0.0.1:${await closedPort()}`]
  const { proxy, admin } = await start(t, {
    upstreams: { stable: stable!.url, canary: canaryHosts },
    rollout: { steps: [50], interval: '30s', analysis: { minRequests: 20, failureThreshold: 2 } },
  })
  const { leaves, event } = rolloutClient(admin)
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 15_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const last = await leaves('progressing', 8000)
  t.equal(last.phase, 'failed', 'the rollout reverted')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  t.equal((await event('rollout.failed'))?.reason?.check, 'guard')
  await sleep(200)
  const results = await traffic.stop()
  t.ok(results.length > 50, `traffic flowed (${results.length})`)
  t.same(failures(results), [], 'every GET was answered by stable')
  const ejected = (await hostEvents(admin)).filter((e) => e.action === 'host.ejected' && e.reason?.version === 'canary').map((e) => e.reason?.host)
  t.ok(ejected.length >= 1, `the canary's hosts were ejected (${JSON.stringify(ejected)})`)
})

t.test('the retry budget bounds the extra attempts under a stable host that fails every request', async (t) => {
  // A host that accepts and resets every connection, counting them: each is one attempt.
  let attemptsOnBad = 0
  const sockets = new Set<Socket>()
  const bad = createServer((socket) => {
    attemptsOnBad++
    sockets.add(socket)
    socket.on('data', () => socket.resetAndDestroy())
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => bad.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    bad.close(() => resolve())
  }))
  const badUrl = `http://127.0.0.1:${(bad.address() as AddressInfo).port}`
  const [good] = await startUpstreams(t, 'good')
  const { proxy, admin } = await start(t, {
    upstreams: { stable: [badUrl, good!.url] },
    upstreamPolicy: { outlierDetection: false, retry: { budgetPercent: 20, minRetries: 0, window: '10s' } },
  })
  // 50 requests a second for 4 s, one at a time: 200 requests, 100 of them first sent to the bad host.
  const traffic = startTraffic(proxy.url, { rate: 50, maxMs: 4000 })
  await sleep(4200)
  const results = await traffic.stop()
  // The requests as the proxy counted them (the budget's base), and as the client saw them.
  const requests = await metricSum(admin, 'weir_requests_total', { route: 'app' })
  t.equal(results.length, requests)
  const attempts = attemptsOnBad + served(good!)
  const retried = await metricSum(admin, 'weir_upstream_retries_total', { route: 'app', result: 'retried' })
  const exhausted = await metricSum(admin, 'weir_upstream_retries_total', { route: 'app', result: 'budget_exhausted' })
  // minRetries is 0: the same bound holds with one data path process or several (each has its own budget).
  const budget = 0.2 * requests
  t.ok(requests >= 150, `the load ran (${requests} requests)`)
  t.ok(attempts <= requests + budget, `${attempts} upstream attempts for ${requests} requests: within the budget (at most ${requests + budget})`)
  t.ok(retried <= budget, `${retried} retries, at most ${budget}`)
  t.ok(retried >= 1, 'some were retried')
  t.ok(exhausted >= 1, `the rest were refused by the budget (${exhausted})`)
  t.equal(failures(results).length, attemptsOnBad - retried, 'every attempt on the bad host that was not retried is a client error')
})

t.test('least-request sends most requests to the host that answers faster; round-robin would split them evenly', async (t) => {
  const [slow, fast] = await startUpstreams(t, 'slow', 'fast')
  slow!.handle((_req, res) => { setTimeout(() => res.end('slow'), 100) })
  const { proxy } = await start(t, {
    upstreams: { stable: [slow!.url, fast!.url] },
    upstreamPolicy: { stable: { balance: 'least-request' } },
  })
  const replies = await sendMany(proxy.url, 300, 8, (i) => ({ path: `/lr/${i}` }))
  t.equal(replies.filter((r) => r.status === 200).length, 300)
  const share = served(fast!) / 300
  t.ok(share > 0.75, `the fast host served ${Math.round(share * 100)} % of the requests`)
})
