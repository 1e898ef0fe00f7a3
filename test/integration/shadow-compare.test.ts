// Shadow comparison (docs/shadow.md): the shadow's answer is compared with the served one
// for the same request; differences are counted by kind, sampled with a short diff, and shown as
// a mismatch rate in stats. Real upstreams and sockets; the admin API and /metrics read back.

import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import t from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { scrape } from '../helpers/prom-text.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { settled } from '../helpers/shadow-settled.ts'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'

/** The body both versions build: volatile fields (timestamp, ids, trace header) differ every time. */
function catalog (req: IncomingMessage, res: ServerResponse, price: number, extraHeaders: Record<string, string> = {}): void {
  res.setHeader('content-type', 'application/json')
  res.setHeader('x-trace', randomUUID())
  res.setHeader('x-stable-header', 'same')
  for (const [name, value] of Object.entries(extraHeaders)) res.setHeader(name, value)
  res.end(JSON.stringify({
    path: req.url,
    price,
    meta: { timestamp: new Date().toISOString(), server: 'any' },
    items: [{ id: randomUUID(), name: 'apple' }, { id: randomUUID(), name: 'pear' }],
  }))
}

t.test('differences in status, headers and non-ignored JSON fields are counted, sampled and rated; ignored ones are not', async (t) => {
  const [primary, shadow] = await startUpstreams(t, 'stable', 'shadow') as [Upstream, Upstream]
  primary.handle((req, res) => catalog(req, res, 10))
  shadow.handle((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0]
    if (path === '/price') return catalog(req, res, 11)
    if (path === '/status') {
      res.statusCode = 503
      return res.end('busy')
    }
    if (path === '/header') return catalog(req, res, 10, { 'x-feature': 'on' })
    if (path === '/item-name') {
      res.setHeader('content-type', 'application/json')
      res.setHeader('x-stable-header', 'same')
      return res.end(JSON.stringify({ path: req.url, price: 10, meta: { timestamp: 'later', server: 'any' }, items: [{ id: 'x', name: 'apple' }, { id: 'y', name: 'plum' }] }))
    }
    catalog(req, res, 10)
  })
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: primary.url, shadow: shadow.url },
    shadow: { percent: 100, compare: true, ignore: { headers: ['x-trace'], json: ['$.meta.timestamp', 'items[*].id'] } },
  }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)

  // Differences only in ignored fields and headers, and in Date: 5 matching comparisons.
  for (let i = 0; i < 5; i++) t.equal((await send(proxy.url + '/same')).status, 200)
  await settled(proxy)
  let mismatches = await admin.get('/api/v1/routes/shop/shadow/mismatches')
  t.equal(mismatches.status, 200)
  t.same(mismatches.json().samples, [], 'no mismatch while only ignored fields differ')

  for (const path of ['/price', '/status', '/header', '/item-name']) {
    const reply = await send(proxy.url + path + '?q=1', { headers: { 'x-request-id': `req-${path.slice(1)}` } })
    t.equal(reply.status, 200, `${path}: the client gets the primary's answer`)
    t.equal(reply.json().price, 10)
  }
  await settled(proxy)

  mismatches = await admin.get('/api/v1/routes/shop/shadow/mismatches')
  const samples = mismatches.json().samples as Record<string, any>[]
  t.same(samples.map((s) => s.requestId), ['req-item-name', 'req-header', 'req-status', 'req-price'], 'newest first, one per differing request')
  const byId = Object.fromEntries(samples.map((s) => [s.requestId, s]))
  t.match(byId['req-price'], { method: 'GET', url: '/price?q=1', primary: { status: 200 }, shadow: { status: 200 }, kinds: ['body'], diff: [{ path: '$.price', primary: '10', shadow: '11' }] })
  t.match(byId['req-status'], { primary: { status: 200 }, shadow: { status: 503 }, kinds: ['status'], diff: [{ path: 'status', primary: '200', shadow: '503' }] })
  t.match(byId['req-header'], { kinds: ['headers'], diff: [{ path: 'headers.x-feature', primary: '(absent)', shadow: 'on' }] })
  t.same(byId['req-item-name']?.kinds, ['body'])
  t.same(byId['req-item-name']?.diff, [{ path: '$.items[1].name', primary: '"pear"', shadow: '"plum"' }], 'the ignored ids and timestamp are not in the diff')
  t.match(mismatches.json(), { route: 'shop', recorded: 4 })

  const limited = await admin.get('/api/v1/routes/shop/shadow/mismatches?limit=1')
  t.same((limited.json().samples as unknown[]).length, 1)
  t.equal((await admin.get('/api/v1/routes/shop/shadow/mismatches?limit=0')).status, 400)
  t.equal((await admin.get('/api/v1/routes/nope/shadow/mismatches')).status, 404)

  const stats = await admin.get('/api/v1/routes/shop/stats?window=60')
  t.same(stats.json().shadow, { compared: 9, mismatches: 4, mismatchRate: 4 / 9, byKind: { status: 1, headers: 1, body: 2 }, pausedForMs: 0 })
  t.match(stats.json<any>().versions.shadow, { requests: 9, errors: 1 }, 'the shadow\'s own requests and errors (its 503) over the window')

  const m = await scrape(proxy.adminUrl)
  t.same(m.select('weir_shadow_mismatches_total').map((s) => `${s.labels.kind} ${s.value}`).sort(), ['body 2', 'headers 1', 'status 1'])
  t.same(m.select('weir_shadow_requests_total').map((s) => `${s.labels.outcome} ${s.value}`).sort(), ['dropped 0', 'error 1', 'ok 8', 'skipped 0'])
  const count = m.select('weir_request_duration_seconds_count').find((s) => s.labels.version === 'shadow')
  t.equal(count?.value, 9, 'shadow latency is in the histogram under version="shadow"')
  t.equal(m.select('weir_requests_total').filter((s) => s.labels.version === 'shadow').length, 0, 'shadow answers are not client responses')
})

t.test('without compare, nothing is compared or sampled, and the primary body is not tapped', async (t) => {
  const [primary, shadow] = await startUpstreams(t, 'stable', 'shadow') as [Upstream, Upstream]
  shadow.handle((_req, res) => {
    res.statusCode = 500
    res.end('different')
  })
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: primary.url, shadow: shadow.url }, shadow: { percent: 100 } }]))
  t.teardown(() => proxy.close())
  for (let i = 0; i < 3; i++) t.equal((await send(proxy.url + '/x')).status, 200)
  await settled(proxy)
  const admin = adminClient(proxy.adminUrl)
  t.same((await admin.get('/api/v1/routes/shop/shadow/mismatches')).json().samples, [])
  t.match((await admin.get('/api/v1/routes/shop/stats')).json().shadow, { compared: 0, mismatches: 0 })
})
