// The metrics of docs/metrics.md and the per-version rolling stats, end to end: real upstreams, real
// sockets, /metrics scraped from the admin port and parsed strictly.

import type { FastifyInstance } from 'fastify'
import { readFileSync } from 'node:fs'
import { createServer, request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { buildApps } from '../../src/app.ts'
import { kExchange, type Exchange, type WithExchange } from '../../src/proxy/exchange.ts'
import { createMetrics } from '../../src/metrics/registry.ts'
import { UPSTREAM_FAILURE_REASONS } from '../../src/vocabulary.ts'
import { adminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { nearestRank } from '../helpers/nearest-rank.ts'
import { scrape, type PromText } from '../helpers/prom-text.ts'
import { configDoc, mustBuild, startProxy } from '../helpers/proxy.ts'
import { eventually, sleep } from '../helpers/raw-http.ts'
import { inParallel } from '../helpers/send-many.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { closedPort, startUpstream, startUpstreams } from '../helpers/upstream.ts'

/** Scrapes until `check` holds or `limitMs` passes; returns the last scrape. */
async function scrapeUntil (adminUrl: string, check: (m: PromText) => boolean, limitMs = 3000): Promise<PromText> {
  const deadline = performance.now() + limitMs
  for (;;) {
    const m = await scrape(adminUrl)
    if (check(m) || performance.now() > deadline) return m
    await sleep(20)
  }
}

// A match rule per version (an override would leave the requests out of the stats checked below).
const over = (version: string): { headers: Record<string, string> } => ({ headers: { 'x-pick': version } })
const PICK_RULES = ['stable', 'canary', 'green'].map((version) => ({ match: { header: { name: 'x-pick', exact: version } }, version }))

t.test('a known mix of traffic is counted exactly by version, code and reason', async (t) => {
  const stable = await startUpstream('stable')
  stable.handle((req, res) => {
    if (req.url === '/slow') {
      const timer = setTimeout(() => res.end('late'), 5000)
      res.on('close', () => clearTimeout(timer))
      return
    }
    res.end('stable')
  })
  const canary = await startUpstream('canary')
  canary.handle((req, res) => {
    if (req.url === '/fail') {
      res.statusCode = 500
      res.end('boom')
    } else if (req.url === '/cut') {
      // Head and part of the body, then the connection dies: the proxy has already answered 200.
      res.writeHead(200, { 'content-length': '1000' })
      res.write('partial')
      setTimeout(() => res.socket?.destroy(), 30)
    } else {
      res.end('canary')
    }
  })
  const green = `http://127.0.0.1:${await closedPort()}`
  const proxy = await startProxy(configDoc([{
    name: 'mix',
    upstreams: { stable: stable.url, canary: canary.url, green },
    weights: { stable: 70, canary: 20, green: 10 },
    maxBodyBytes: '1kb',
    rules: PICK_RULES,
  }]))
  t.teardown(async () => { await proxy.close(); await stable.close(); await canary.close() })

  const statuses: number[] = []
  const go = async (url: string, options: Parameters<typeof send>[1]): Promise<void> => {
    statuses.push((await send(proxy.url + url, options)).status)
  }
  for (let i = 0; i < 5; i++) await go('/', over('stable'))
  for (let i = 0; i < 4; i++) await go('/ok', over('canary'))
  for (let i = 0; i < 3; i++) await go('/fail', over('canary'))
  // POST is not idempotent: never failed over, so green's refusal reaches the client.
  for (let i = 0; i < 2; i++) await go('/', { method: 'POST', body: 'x', ...over('green') })
  // GET is failed over: green's refusal is green's error, the client gets stable's 200.
  for (let i = 0; i < 3; i++) await go('/', over('green'))
  // Refused by Content-Length before any upstream is tried.
  await go('/', { method: 'POST', body: 'x'.repeat(2000), ...over('stable') })
  t.same(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 500, 500, 500, 502, 502, 200, 200, 200, 413])

  // The upstream cuts its response after the head: the client got a 200 head and a broken body.
  await t.rejects(send(proxy.url + '/cut', over('canary')), 'the client sees the cut body')
  // A client that leaves before the answer: 499.
  const leaving = httpRequest(proxy.url + '/slow', { headers: { 'x-pick': 'stable' }, agent: false })
  leaving.on('error', () => {})
  leaving.end()
  await new Promise((resolve) => setTimeout(resolve, 150))
  leaving.destroy()
  const m = await scrapeUntil(proxy.adminUrl, (m) => m.value('weir_requests_total', { route: 'mix', version: 'stable', code: '499' }) === 1 &&
    m.value('weir_requests_total', { route: 'mix', version: 'canary', code: '200' }) === 5)

  t.ok(['stable', 'canary', 'green'].every((version) => ['500', '502', '503', '504'].every((code) => typeof m.value('weir_requests_total', { route: 'mix', version, code }) === 'number')), 'the server-error codes exist (at 0 until sent) for every version')
  const requests = m.select('weir_requests_total', { route: 'mix' }).filter((s) => s.value > 0).map((s) => `${s.labels.version} ${s.labels.code} ${s.value}`).sort()
  t.same(requests, ['canary 200 5', 'canary 500 3', 'green 502 2', 'stable 200 8', 'stable 413 1', 'stable 499 1'])

  const errors = m.select('weir_upstream_errors_total', { route: 'mix' }).filter((s) => s.value > 0).map((s) => `${s.labels.version} ${s.labels.reason} ${s.value}`).sort()
  t.same(errors, ['canary reset 1', 'green refused 5'], 'refusals of green, failed over or not; the cut body of canary')
  t.equal(m.select('weir_upstream_errors_total', { route: 'mix' }).length, 4 * UPSTREAM_FAILURE_REASONS.length, 'every version (and shadow) × reason series exists')

  const decisions = m.select('weir_routing_decisions_total', { route: 'mix' }).filter((s) => s.value > 0)
    .map((s) => `${s.labels.version} ${s.labels.reason} ${s.value}`).sort()
  t.same(decisions, ['canary rule 8', 'green rule 5', 'stable rule 7'], 'every decision, including the refused 413 and the 499')
  t.equal(m.select('weir_routing_decisions_total', { route: 'mix' }).length, 15, 'every version × reason series exists')

  for (const [version, count] of [['stable', 10], ['canary', 8], ['green', 2]] as const) {
    t.equal(m.value('weir_request_duration_seconds_count', { route: 'mix', version }), count, `${version}: one duration per response counted`)
    const sum = m.value('weir_request_duration_seconds_sum', { route: 'mix', version }) as number
    t.ok(sum > 0 && sum < count * 6, `${version}: duration sum ${sum} s is plausible`)
  }
  t.equal(m.families.get('weir_request_duration_seconds')?.type, 'histogram')
  const les = m.select('weir_request_duration_seconds_bucket', { route: 'mix', version: 'stable' }).map((s) => s.labels.le)
  t.same(les, ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'])
  // The client that left waited 150 ms before it did.
  t.ok((m.value('weir_request_duration_seconds_bucket', { route: 'mix', version: 'stable', le: '0.1' }) as number) <= 9)

  t.same(m.select('weir_route_weight_percent').map((s) => `${s.labels.route} ${s.labels.version} ${s.value}`),
    ['mix stable 70', 'mix canary 20', 'mix green 10'])
  t.same(m.select('weir_shadow_requests_total').map((s) => `${s.labels.route} ${s.labels.outcome} ${s.value}`),
    ['mix ok 0', 'mix error 0', 'mix dropped 0', 'mix skipped 0'])
  t.same(m.select('weir_shadow_mismatches_total').map((s) => `${s.labels.route} ${s.labels.kind} ${s.value}`),
    ['mix status 0', 'mix headers 0', 'mix body 0'])
  t.same(m.select('weir_rollout_state').map((s) => `${s.labels.route} ${s.labels.phase} ${s.value}`),
    ['mix idle 1', 'mix progressing 0', 'mix paused 0', 'mix promoting 0', 'mix succeeded 0', 'mix failed 0'])

  // The stats the controller reads: 413 and 499 are not the version's doing and stay out;
  // green's failed-over attempts and canary's cut body are errors of those versions.
  const stats = proxy.apps.stats.forRoute('mix', 60).versions
  t.match(stats.stable, { requests: 8, errors: 0 })
  t.match(stats.canary, { requests: 8, errors: 4, errorRate: 0.5 })
  t.match(stats.green, { requests: 5, errors: 5, errorRate: 1 })

  const again = await scrape(proxy.adminUrl)
  t.equal(again.value('weir_requests_total', { route: 'mix', version: 'stable', code: '200' }), 8, 'a second scrape does not count twice')
})

t.test('the weight gauge shows the weights in force at scrape time and forgets routes that left the table', async (t) => {
  const up = await startUpstream('u')
  const doc = configDoc([
    { name: 'a', match: { pathPrefix: '/a' }, upstreams: { stable: up.url, canary: up.url }, weights: { stable: 90, canary: 10 }, rules: PICK_RULES.filter((r) => r.version !== 'green') },
    { name: 'b', upstreams: { stable: up.url } },
  ])
  const proxy = await startProxy(doc)
  t.teardown(async () => { await proxy.close(); await up.close() })
  await send(proxy.url + '/a/x', over('stable'))
  let m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_route_weight_percent').map((s) => `${s.labels.route} ${s.labels.version} ${s.value}`),
    ['a stable 90', 'a canary 10', 'a green 0', 'b stable 100', 'b canary 0', 'b green 0'])

  await proxy.apps.reload(mustBuild({ ...doc, routes: [{ name: 'a', match: { pathPrefix: '/a' }, upstreams: { stable: up.url, canary: up.url }, weights: { stable: 75.5, canary: 24.5 } }] }))
  m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_route_weight_percent').map((s) => `${s.labels.route} ${s.labels.version} ${s.value}`),
    ['a stable 75.5', 'a canary 24.5', 'a green 0'])
  t.same(m.select('weir_rollout_state', { phase: 'idle' }).map((s) => s.labels.route), ['a'])
  t.equal(m.value('weir_requests_total', { route: 'a', version: 'stable', code: '200' }), 1, 'counters survive the reload')
})

t.test('p50/p90/p99 and the error rate of the stats match the latencies of the same requests', async (t) => {
  // 200 requests taking 20 ms (70 %), 80 ms (25 %) or 250 ms (5 %) at the upstream, interleaved,
  // so p50 (rank 100), p90 (rank 180) and p99 (rank 198) each fall inside a group, not on the
  // edge between two; 37 of them, spread over all groups, answer 500.
  const TOTAL = 200
  const delayOf = (i: number): number => (i % 20 === 7 ? 250 : i % 4 === 1 ? 80 : 20)
  const failing = new Set(Array.from({ length: 37 }, (_, i) => (i * 53) % TOTAL))
  const up = await startUpstream('timed')
  up.handle((req, res) => {
    const i = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('i'))
    setTimeout(() => {
      res.statusCode = failing.has(i) ? 500 : 200
      res.end('x')
    }, delayOf(i))
  })
  const proxy = await startProxy(configDoc([{ name: 'timed', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })

  // The truth, each request's own interval read from outside the stats: a 'close' listener on
  // the response (added before weir's, so it runs just before weir records), timed from the
  // exchange's start (weir's onRequest hook). Not from the server's 'request' event: fastify
  // builds its request and reply between the two, and a GC pause there, measured at up to 7 ms
  // under CI load, is no latency of weir's. The client's figure below checks the start from outside.
  const observed: number[] = []
  const server = (proxy.apps.proxyApp as FastifyInstance).server
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    res.on('close', () => observed.push(performance.now() - ((req as WithExchange)[kExchange] as Exchange).startedAt))
  })
  // And as the client sees it (keep-alive, so no connection set-up in the figure).
  const agent = new Agent({ keepAlive: true, maxSockets: 2 })
  t.teardown(() => agent.destroy())
  const client: number[] = []
  let errors = 0
  await inParallel(TOTAL, 2, async (i) => {
    const start = performance.now()
    const reply = await send(`${proxy.url}/?i=${i}`, { agent })
    client.push(performance.now() - start)
    if (reply.status === 500) errors++
  })
  t.equal(errors, 37)
  t.ok(await eventually(() => observed.length === TOTAL, 2000))

  const stats = proxy.apps.stats.forRoute('timed', 60).versions.stable
  t.match(stats, { requests: 200, errors: 37, errorRate: 37 / 200 }, 'requests and errors exactly')
  const sortedObserved = [...observed].sort((a, b) => a - b)
  const sortedClient = [...client].sort((a, b) => a - b)
  for (const [name, q] of [['p50', 50], ['p90', 90], ['p99', 99]] as const) {
    const got = stats?.[name] as number
    const truth = nearestRank(sortedObserved, q)
    // ≤ 2 % (the histogram's bound is 1.93 %) plus 0.1 ms.
    t.ok(Math.abs(got - truth) <= 0.02 * truth + 0.1, `${name} ${got.toFixed(3)} ms vs ${truth.toFixed(3)} ms at the proxy boundary`)
    // A sanity check against the client's figure, which contains weir's interval (so it is
    // never less, bar the histogram's 2 %) and adds the loopback hops, the client's parsing and,
    // in this one process, time queued behind other requests' work: 1–5 ms measured on a
    // 2-core machine, hence 10 ms of slack on this side only.
    const seen = nearestRank(sortedClient, q)
    t.ok(got <= seen * 1.02 && seen - got <= 0.02 * seen + 10, `${name} ${got.toFixed(3)} ms vs ${seen.toFixed(3)} ms at the client`)
  }
  t.ok((stats?.p50 as number) < 40 && (stats?.p90 as number) > 80 && (stats?.p90 as number) < 120 && (stats?.p99 as number) > 250,
    'p50, p90 and p99 each in their group')
})

t.test('a canary refused and failed over is a canary error in the stats while the client gets 200 from stable', async (t) => {
  const stable = await startUpstream('stable')
  const proxy = await startProxy(configDoc([{
    name: 'fo', upstreams: { stable: stable.url, canary: `http://127.0.0.1:${await closedPort()}` }, weights: { stable: 100 }, rules: PICK_RULES.filter((r) => r.version !== 'green'),
  }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  const reply = await send(proxy.url + '/', over('canary'))
  t.equal(reply.status, 200)
  t.equal(reply.headers['x-weir-version'], 'stable')
  t.ok(await eventually(() => proxy.apps.stats.forRoute('fo', 60).versions.stable?.requests === 1, 2000))
  const { versions } = proxy.apps.stats.forRoute('fo', 60)
  t.match(versions.canary, { requests: 1, errors: 1, errorRate: 1 })
  t.match(versions.stable, { requests: 1, errors: 0, errorRate: 0 })
  const m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_requests_total', { route: 'fo' }).filter((s) => s.value > 0).map((s) => `${s.labels.version} ${s.labels.code} ${s.value}`), ['stable 200 1'])
  t.equal(m.value('weir_upstream_errors_total', { route: 'fo', version: 'canary', reason: 'refused' }), 1)
})

t.test('a WebSocket session counts as a routing decision, not as a request or a latency', async (t) => {
  const server = createServer((_req, res) => res.end('plain'))
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo ${String(data)}`)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const proxy = await startProxy(configDoc([{ name: 'ws', upstreams: { stable: `http://127.0.0.1:${(server.address() as AddressInfo).port}` } }]))
  t.teardown(async () => {
    await proxy.close()
    wss.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const ws = new WebSocket(proxy.url.replace('http:', 'ws:') + '/')
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  ws.send('hi')
  t.equal(String(await new Promise((resolve) => ws.once('message', resolve))), 'echo hi')
  ws.close()
  await new Promise((resolve) => ws.once('close', resolve))
  await sleep(100)
  const m = await scrape(proxy.adminUrl)
  t.equal(m.value('weir_routing_decisions_total', { route: 'ws', version: 'stable', reason: 'random' }), 1)
  t.same(m.select('weir_requests_total', { route: 'ws' }).filter((s) => s.value > 0), [], 'not a 499 when the session ends')
  t.equal(m.value('weir_request_duration_seconds_count', { route: 'ws', version: 'stable' }), 0)
  t.equal(proxy.apps.stats.forRoute('ws', 60).versions.stable?.requests, 0)
})

t.test('with recordRequests off nothing is counted per request, and routing decisions still are', async (t) => {
  const up = await startUpstream('u')
  const apps = await buildApps(mustBuild(configDoc([{ name: 'off', upstreams: { stable: up.url } }])), { processMetrics: false, recordRequests: false })
  const adminUrl = await apps.admin.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${await apps.dataPlane.listen('127.0.0.1', 0)}`
  t.teardown(async () => { await apps.close(); await up.close() })
  for (let i = 0; i < 3; i++) t.equal((await send(url + '/')).status, 200)
  const m = await scrape(adminUrl)
  t.same(m.select('weir_requests_total').filter((s) => s.value > 0), [], 'nothing counted with recording off')
  t.equal(m.value('weir_request_duration_seconds_count', { route: 'off', version: 'stable' }), 0)
  t.equal(m.value('weir_routing_decisions_total', { route: 'off', version: 'stable', reason: 'random' }), 3)
  t.same(apps.stats.forRoute('off', 60).versions.stable, { requests: 0, errors: 0, errorRate: 0, p50: null, p90: null, p99: null })
})

t.test('every weir_upstream_errors_total series exists at 0 from the start, also for a route a reload adds', async (t) => {
  const up = await startUpstream('u')
  const doc = configDoc([{ name: 'a', upstreams: { stable: up.url } }])
  const proxy = await startProxy(doc)
  t.teardown(async () => { await proxy.close(); await up.close() })
  const series = (m: PromText, route: string): string[] => m.select('weir_upstream_errors_total', { route }).map((s) => `${s.labels.version} ${s.labels.reason} ${s.value}`).sort()
  const zeros = ['stable', 'canary', 'green', 'shadow'].flatMap((v) => UPSTREAM_FAILURE_REASONS.map((r) => `${v} ${r} 0`)).sort()
  t.same(series(await scrape(proxy.adminUrl), 'a'), zeros, 'before any request or failure')
  await proxy.apps.reload(mustBuild({ ...doc, routes: [...doc.routes as object[], { name: 'b', match: { pathPrefix: '/b' }, upstreams: { stable: up.url } }] }))
  const m = await scrape(proxy.adminUrl)
  t.same(series(m, 'b'), zeros, 'the added route\'s too')
  t.equal(m.select('weir_request_duration_seconds_count', { route: 'b' }).length, 4, 'and its histograms')
})

t.test('weir_build_info names weir\'s and Node\'s versions; weir_route_upstream_info follows live upstream changes', async (t) => {
  const [stable, canary, next] = await startUpstreams(t, 'stable', 'canary', 'next')
  const proxy = await startProxy(configDoc([{ name: 'a', upstreams: { stable: stable!.url, canary: canary!.url } }]))
  t.teardown(() => proxy.close())
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  let m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_build_info'), [{ name: 'weir_build_info', labels: { version, node: process.version }, value: 1 }])
  const info = (m: PromText): string[] => m.select('weir_route_upstream_info', { route: 'a' }).map((s) => `${s.labels.version} ${s.labels.upstream} ${s.value}`).sort()
  t.same(info(m), [`canary ${canary!.url} 1`, `stable ${stable!.url} 1`])
  const reply = await adminClient(proxy.adminUrl).call('PUT', '/api/v1/routes/a/upstreams', { canary: [next!.url] })
  t.equal(reply.status, 200, reply.body)
  m = await scrape(proxy.adminUrl)
  t.same(info(m), [`canary ${next!.url} 1`, `stable ${stable!.url} 1`], 'the old canary origin left the gauge')
})

t.test('a rollout exports its last checks with thresholds, its failed checks and its duration; the promotion shows in the upstream info', async (t) => {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url },
    rollout: { steps: [50, 100], interval: '1s', analysis: { minRequests: 20, failureThreshold: 3 } },
  }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  const { rollout } = rolloutClient(admin)
  let m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_rollout_check_value'), [], 'no rollout yet: no check series')
  t.same(m.select('weir_rollout_duration_seconds'), [])
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  m = await scrape(proxy.adminUrl)
  t.equal(m.value('weir_rollout_failed_checks', { route: 'app' }), 0)
  t.ok((m.value('weir_rollout_duration_seconds', { route: 'app' }) ?? -1) >= 0, 'the duration runs from the start')
  let phase = ''
  for (let i = 0; i < 150 && phase !== 'succeeded' && phase !== 'failed'; i++) {
    await sleep(100)
    phase = (await rollout()).phase
  }
  t.equal(phase, 'succeeded')
  await traffic.stop()
  const view = await rollout()
  m = await scrape(proxy.adminUrl)
  for (const check of view.rollout?.lastCheck?.checks ?? []) {
    if (check.value !== null) t.equal(m.value('weir_rollout_check_value', { route: 'app', check: check.name }), check.value, `${check.name} value`)
    if (check.threshold !== null) t.equal(m.value('weir_rollout_check_threshold', { route: 'app', check: check.name }), check.threshold, `${check.name} threshold`)
  }
  t.equal(m.value('weir_rollout_check_threshold', { route: 'app', check: 'error-rate' }), 0.01, 'the error-rate limit, as a rate')
  t.equal(m.value('weir_rollout_failed_checks', { route: 'app' }), view.rollout?.failures)
  const took = m.value('weir_rollout_duration_seconds', { route: 'app' }) as number
  t.ok(took > 1 && took < 15, `the finished rollout took ${took} s`)
  await sleep(1100)
  t.equal((await scrape(proxy.adminUrl)).value('weir_rollout_duration_seconds', { route: 'app' }), took, 'a finished rollout\'s duration stays put')
  t.same(m.select('weir_route_upstream_info', { route: 'app', version: 'stable' }).map((s) => s.labels.upstream), [canary!.url],
    'after the promotion, stable is the canary\'s deployment')
})

t.test('every weir_ metric the registry defines is in docs/metrics.md, and every one documented exists', async (t) => {
  const defined = (await createMetrics({ processDefaults: false }).registry.getMetricsAsJSON()).map((m) => m.name).sort()
  const docs = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8')
  const documented = [...new Set([...docs.matchAll(/^\| `(weir_[a-z_]+)` \|/gm)].map((m) => m[1] as string))].sort()
  t.same(documented, defined)
})
