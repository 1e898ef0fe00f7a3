// GET .../stats?series=N over real traffic: known requests and errors sent in two known 10-s
// intervals come back in exactly those points, per version, in one process and with the data
// path in two workers (whose readings the stats endpoint collects first); the parameter is
// validated like the others.

import t, { type Test } from 'tap'
import { adminClient, type AdminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'

interface Point { t: number; seconds: number; requests: number; rps: number; errors: number; errorRate: number; p99: number | null }
interface StatsReply {
  window: number
  versions: Record<string, { requests: number; errors: number }>
  series?: { interval: number; versions: Record<string, Point[]> }
}

const SLOW_MS = 40

async function setup (t: Test, workers: number): Promise<{ url: string; admin: AdminClient; flush: () => Promise<void> }> {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary') as [Upstream, Upstream]
  // /slow answers after SLOW_MS, /fail with a 500; anything else at once with a 200.
  for (const upstream of [stable, canary]) {
    upstream.handle((req, res) => {
      const status = req.url?.startsWith('/fail') === true ? 500 : 200
      setTimeout(() => res.writeHead(status).end(upstream.name), req.url?.startsWith('/slow') === true ? SLOW_MS : 0)
    })
  }
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: stable.url, canary: canary.url },
    weights: { stable: 100, canary: 0 },
    // A rule, not the override header: overridden requests stay out of the rolling stats.
    rules: [{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'canary' }],
    // Each worker judges its own share of the failures: one that got five in a row would eject
    // the host and send canary's requests to stable.
    upstreamPolicy: { outlierDetection: false },
  }], { workers }))
  t.teardown(() => proxy.close())
  return { url: proxy.url, admin: adminClient(proxy.adminUrl), flush: () => proxy.apps.dataPlane.flush() }
}

/** Sleeps until 1.2 s into the next 10-s interval of the unix clock (the stats' clock); returns the interval's end. */
async function nextIntervalStart (): Promise<number> {
  const start = Math.ceil(Date.now() / 10_000) * 10_000
  await sleep(start + 1200 - Date.now())
  return start / 1000 + 10
}

/** Sends each path in turn (fresh connections, so two workers share them), to canary with `beta`. */
async function sendAll (url: string, paths: string[], beta: boolean): Promise<void> {
  for (const path of paths) {
    const reply = await send(url + path, { headers: beta ? { 'x-beta': 'yes' } : {} })
    if (reply.body !== (beta ? 'canary' : 'stable')) throw new Error(`${path} answered ${reply.status} ${reply.body}`)
  }
}

const STABLE_A = [...Array(15).fill('/'), ...Array(5).fill('/slow')] as string[] // 20 requests, p99 slow
const CANARY_A = ['/', '/fail', '/', '/fail', '/', '/fail', '/', '/fail', '/', '/'] // 10 requests, 4 errors
const STABLE_B = ['/fail', '/', '/', '/', '/', '/', '/'] // 7 requests, 1 error
const CANARY_B = ['/fail', '/fail', '/', '/fail', '/fail', '/'] // 6 requests, 4 errors

async function checkSeries (t: Test, workers: number): Promise<void> {
  const { url, admin, flush } = await setup(t, workers)
  const endA = await nextIntervalStart()
  await Promise.all([sendAll(url, STABLE_A, false), sendAll(url, CANARY_A, true)])
  await flush()
  t.ok(Date.now() < (endA - 1) * 1000, 'interval A\'s traffic was in before its last second')
  const endB = await nextIntervalStart()
  t.equal(endB, endA + 10, 'interval B follows A')
  await Promise.all([sendAll(url, STABLE_B, false), sendAll(url, CANARY_B, true)])

  const reply = await admin.get('/api/v1/routes/shop/stats?window=600&series=10')
  t.equal(reply.status, 200)
  const stats = reply.json<StatsReply>()
  t.ok(Date.now() < endB * 1000, 'read while interval B is still the current one')
  t.equal(stats.series?.interval, 10)
  const series = stats.series?.versions ?? {}
  t.same(Object.keys(series).sort(), ['canary', 'stable'], 'a series per version with stats')
  for (const [version, points] of Object.entries(series)) {
    t.equal(points.length, 61, `${version}: 600 s that do not start at a multiple of 10 span 61 intervals`)
    t.same(points.map((p) => p.t), points.map((_p, i) => endB - (points.length - 1 - i) * 10), `${version}: consecutive 10-s ends up to B's`)
    t.equal(points.at(-1)?.t, endB)
    const busy = points.filter((p) => p.requests > 0).map((p) => p.t)
    t.same(busy, [endA, endB], `${version}: traffic in A and B only`)
    const odd = points.find((p) => p.requests === 0 && (p.errors !== 0 || p.errorRate !== 0 || p.rps !== 0 || p.p99 !== null))
    t.equal(odd, undefined, `${version}: the empty intervals read 0, p99 null`)
    t.equal(points.reduce((sum, p) => sum + p.requests, 0), stats.versions[version]?.requests, `${version}: the points add up to the window's requests`)
    t.equal(points.reduce((sum, p) => sum + p.errors, 0), stats.versions[version]?.errors, `${version}: and its errors`)
  }
  const at = (version: string, end: number): Point | undefined => series[version]?.find((p) => p.t === end)
  t.match(at('stable', endA), { seconds: 10, requests: 20, rps: 2, errors: 0, errorRate: 0 }, 'stable in A: 20 requests over the whole 10 s, no error')
  t.match(at('canary', endA), { seconds: 10, requests: 10, rps: 1, errors: 4, errorRate: 0.4 }, 'canary in A: 10 requests, 4 errors')
  const stableP99 = at('stable', endA)?.p99 ?? 0
  t.ok(stableP99 >= SLOW_MS && stableP99 < SLOW_MS * 5, `stable's p99 in A is a slow request's (${stableP99} ms)`)
  t.ok((at('canary', endA)?.p99 ?? 0) > 0, 'canary has a p99 in A')
  t.match(at('stable', endB), { requests: 7, errors: 1, errorRate: 1 / 7 }, 'stable in B: 7 requests, 1 error')
  t.match(at('canary', endB), { requests: 6, errors: 4, errorRate: 4 / 6 }, 'canary in B: 6 requests, 4 errors')
  const partial = at('canary', endB)?.seconds ?? 0
  t.ok(partial > 1 && partial < 10, `B, still counting, covers the part of it gone (${partial} s)`)
  const rate = at('canary', endB)?.rps ?? 0
  t.ok(Math.abs(rate - 6 / partial) < 0.01, `and its rate is over that part (${rate}/s)`)
}

t.test('one process: the series counts every interval\'s requests and errors exactly', async (t) => {
  await checkSeries(t, 1)
})

t.test('two workers: the series counts them exactly too (their readings are collected first)', async (t) => {
  await checkSeries(t, 2)
})

t.test('series is validated: 1–600 whole seconds, not with scope=fleet; absent, the reply has no series', async (t) => {
  const { admin } = await setup(t, 1)
  for (const bad of ['0', '601', '1.5', 'ten', '']) {
    const reply = await admin.get(`/api/v1/routes/shop/stats?series=${bad}`)
    t.equal(reply.status, 400, `series=${bad} is refused`)
    t.match(reply.json(), { error: 'WEIR_ERR_ADMIN_INVALID', problems: [{ path: 'series', reason: 'must be an integer from 1 to 600' }] })
  }
  const fleet = await admin.get('/api/v1/routes/shop/stats?series=10&scope=fleet')
  t.equal(fleet.status, 400)
  t.match(fleet.json(), { error: 'WEIR_ERR_ADMIN_INVALID', problems: [{ path: 'series', reason: 'not with scope=fleet' }] })
  const plain = (await admin.get('/api/v1/routes/shop/stats?window=60')).json<StatsReply>()
  t.notOk('series' in plain, 'no series unless asked')
  const one = (await admin.get('/api/v1/routes/shop/stats?window=5&series=600')).json<StatsReply>()
  t.same(one.series?.versions, { stable: [one.series?.versions.stable?.[0]], canary: [one.series?.versions.canary?.[0]] }, 'series=600 over 5 s: one interval per version')
  t.match(one.series?.versions.stable?.[0], { requests: 0, errors: 0, p99: null })
})
