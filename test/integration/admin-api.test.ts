// The /api/v1 control API over real sockets: every endpoint's success path and refusals, and
// that a refusal changes nothing (state, revision, state file, weight gauge, traffic).

import t, { type Test } from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { startUpstream, startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { configDoc, startProxy, type RouteDoc, type TestProxy } from '../helpers/proxy.ts'
import { runningRollout } from '../helpers/rollout-state.ts'
import { send } from '../helpers/http.ts'
import { adminClient, type AdminClient } from '../helpers/admin.ts'
import { bareRequest } from '../helpers/raw-http.ts'

interface Setup { proxy: TestProxy; api: AdminClient; stable: Upstream; canary: Upstream; green: Upstream }

async function setup (t: Test, route: Partial<RouteDoc> = {}, extra: Record<string, unknown> = {}, token?: string): Promise<Setup> {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green') as [Upstream, Upstream, Upstream]
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: stable.url, canary: canary.url, green: green.url },
    weights: { stable: 90, canary: 10 },
    override: { header: 'x-weir-version' },
    ...route,
  }], extra))
  // Registered after the upstreams' teardown, so it runs first: the proxy closes before them.
  t.teardown(() => proxy.close())
  return { proxy, api: adminClient(proxy.adminUrl, token), stable, canary, green }
}

/** Which version answers a request of a user with no id and no cookie, 200 times: the share per version. */
async function versionsServed (proxy: TestProxy, n = 200): Promise<Record<string, number>> {
  const seen: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const reply = await send(proxy.url + '/', { headers: { 'x-user-id': `u${i}` } })
    const version = String(reply.headers['x-weir-version'])
    seen[version] = (seen[version] ?? 0) + 1
  }
  return seen
}

t.test('GET routes and one route: upstreams, weights in percent, revision 0 from the config, rollout null', async (t) => {
  const { api, stable, canary, green } = await setup(t)
  const list = await api.get('/api/v1/routes')
  t.equal(list.status, 200)
  const expected = {
    name: 'shop',
    upstreams: { stable: [stable.url], canary: [canary.url], green: [green.url] },
    weights: { stable: 90, canary: 10, green: 0 },
    revision: 0,
    rollout: null,
    source: 'config',
  }
  t.match(list.json<unknown[]>(), [expected])
  const one = await api.get('/api/v1/routes/shop')
  t.match(one.json(), expected)
  t.equal(one.headers.etag, '"0"')
  const missing = await api.get('/api/v1/routes/nope')
  t.equal(missing.status, 404)
  t.equal(missing.json().error, 'WEIR_ERR_ADMIN_ROUTE_NOT_FOUND')
})

t.test('PUT weights: persisted, in force before the reply, revision bumped, event logged, gauge updated', async (t) => {
  const { proxy, api } = await setup(t)
  const reply = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 0, canary: 100, green: 0 })
  t.equal(reply.status, 200, reply.body)
  t.match(reply.json(), { weights: { stable: 0, canary: 100, green: 0 }, revision: 1, source: 'live' })
  t.equal(reply.headers.etag, '"1"')
  // The very next request after the reply already follows the new weights.
  t.same(await versionsServed(proxy, 50), { canary: 50 })
  const file = JSON.parse(readFileSync(proxy.config.stateFile, 'utf8'))
  t.match(file.routes.shop, { revision: 1, weights: { stable: 0, canary: 10_000, green: 0 } })
  const events = (await api.get('/api/v1/events')).json<{ events: Record<string, unknown>[] }>().events
  t.match(events.at(-1), { actor: 'local', route: 'shop', action: 'weights.set', old: { revision: 0, weights: { canary: 10 } }, new: { revision: 1, weights: { canary: 100 } } })
  t.type(events.at(-1)?.requestId, 'string')
  const metrics = (await send(proxy.adminUrl + '/metrics')).body
  t.match(metrics, /weir_route_weight_percent\{route="shop",version="canary"\} 100\n/)
  t.match(metrics, /weir_route_weight_percent\{route="shop",version="stable"\} 0\n/)
})

t.test('an omitted version weighs 0, and two decimals are kept exactly', async (t) => {
  const { api } = await setup(t)
  const reply = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 66.67, canary: 33.33 })
  t.equal(reply.status, 200, reply.body)
  t.same(reply.json().weights, { stable: 66.67, canary: 33.33, green: 0 })
})

t.test('invalid weights: a 4xx naming the field, and nothing changes (state, revision, file, gauge, traffic)', async (t) => {
  const { proxy, api } = await setup(t)
  const reply0 = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 80, canary: 20 })
  t.equal(reply0.status, 200, 'a first valid change, so the state file exists')
  const before = {
    route: (await api.get('/api/v1/routes/shop')).body,
    file: readFileSync(proxy.config.stateFile, 'utf8'),
    gauge: (await send(proxy.adminUrl + '/metrics')).body.split('\n').filter((l) => l.startsWith('weir_route_weight_percent')).join('\n'),
  }
  const deep = '['.repeat(10_000) + ']'.repeat(10_000)
  const cases: [string, unknown, number, RegExp][] = [
    ['sum 99', { stable: 89, canary: 10 }, 400, /weights: must sum to 100 \(they sum to 99\)/],
    ['sum 101', { stable: 91, canary: 10 }, 400, /weights: must sum to 100 \(they sum to 101\)/],
    ['negative', { stable: 110, canary: -10 }, 400, /weights\.canary: /],
    ['three decimals', { stable: 89.995, canary: 10.005 }, 400, /weights\.stable: must have at most two decimals/],
    ['a string', { stable: '90', canary: 10 }, 400, /weights\.stable: expected number/i],
    ['null', { stable: null, canary: 100 }, 400, /weights\.stable: expected number/i],
    ['NaN (not JSON)', '{"stable": NaN, "canary": 10}', 400, /body: not valid JSON/],
    ['an unknown version', { stable: 90, blue: 10 }, 400, /weights(\.blue)?: .*(unexpected|additional)/i],
    ['an array', [90, 10], 400, /weights: expected object/i],
    ['no body', undefined, 400, /weights: is required/],
    ['1 MiB body', JSON.stringify({ stable: 100, pad: 'x'.repeat(1 << 20) }), 413, /64 KiB/],
    ['10 000-deep nesting', deep, 400, /body: nests deeper than 32 levels/],
  ]
  for (const [name, body, status, message] of cases) {
    const reply = await api.call('PUT', '/api/v1/routes/shop/weights', body)
    t.equal(reply.status, status, `${name}: status`)
    const error = reply.json<{ error: string; message: string; requestId: string }>()
    t.match(error.message, message, `${name}: message names the field`)
    t.match(error.error, /^WEIR_ERR_ADMIN_/, `${name}: error code`)
    t.type(error.requestId, 'string')
  }
  t.equal((await api.get('/api/v1/routes/shop')).body, before.route, 'route (weights, revision) unchanged')
  t.equal(readFileSync(proxy.config.stateFile, 'utf8'), before.file, 'state file unchanged')
  const gauge = (await send(proxy.adminUrl + '/metrics')).body.split('\n').filter((l) => l.startsWith('weir_route_weight_percent')).join('\n')
  t.equal(gauge, before.gauge, 'weight gauge unchanged')
  const rejected = (await api.get('/api/v1/events')).json<{ events: { action: string; reason: { status: number } }[] }>().events
    .filter((e) => e.action === 'rejected')
  t.equal(rejected.length, cases.length, 'every refusal is in the event log')
})

t.test('a weight on a version with no upstream is refused, naming the version', async (t) => {
  const stable = await startUpstream('s')
  const proxy = await startProxy(configDoc([{ name: 'solo', upstreams: { stable: stable.url } }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  const api = adminClient(proxy.adminUrl)
  const reply = await api.call('PUT', '/api/v1/routes/solo/weights', { stable: 90, canary: 10 })
  t.equal(reply.status, 400)
  t.match(reply.json(), { error: 'WEIR_ERR_ADMIN_INVALID', message: /weights\.canary: must be 0: version canary has no upstream/, problems: [{ path: 'weights.canary' }] })
  t.equal((await api.get('/api/v1/routes/solo')).json().revision, 0)
})

t.test('If-Match: a stale revision is 412; of 20 concurrent writes with the same revision exactly one wins', async (t) => {
  const { api } = await setup(t)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 }, { 'if-match': '"3"' })).status, 412)
  const bad = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 }, { 'if-match': 'abc' })
  t.equal(bad.status, 400)
  t.match(bad.json().message, /If-Match/)
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 - i, canary: i }, { 'if-match': '0' })))
  const statuses = replies.map((r) => r.status).sort()
  t.same(statuses, [200, ...Array<number>(19).fill(412)])
  const winner = replies.find((r) => r.status === 200)?.json<{ weights: unknown; revision: number }>()
  const now = (await api.get('/api/v1/routes/shop')).json()
  t.equal(now.revision, 1)
  t.same(now.weights, winner?.weights, 'the state is the winner\'s')
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 }, { 'if-match': 'W/"1"' })).status, 200, 'the current revision (weak ETag form) passes')
})

t.test('writes without If-Match from many callers all apply, one after another', async (t) => {
  const { api } = await setup(t)
  const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 - i, canary: i })))
  t.same(replies.map((r) => r.status), Array<number>(10).fill(200))
  t.same(replies.map((r) => r.json().revision).sort((a, b) => Number(a) - Number(b)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
})

t.test('PUT upstreams points a version at a new deployment; null takes one away only at weight 0', async (t) => {
  const { proxy, api } = await setup(t)
  const next = await startUpstream('canary-v2')
  t.teardown(() => next.close())
  const reply = await api.call('PUT', '/api/v1/routes/shop/upstreams', { canary: [next.url] })
  t.equal(reply.status, 200, reply.body)
  t.same(reply.json<{ upstreams: Record<string, unknown> }>().upstreams.canary, [next.url])
  const served = await send(proxy.url + '/', { headers: { 'x-weir-version': 'canary' } })
  t.equal(served.json().version, 'canary-v2', 'the override reaches the new deployment at once')

  const refused = await api.call('PUT', '/api/v1/routes/shop/upstreams', { canary: null })
  t.equal(refused.status, 400)
  t.match(refused.json().message, /upstreams\.canary: cannot be removed while canary has weight 10/)
  const cases: [unknown, RegExp][] = [
    [{ canary: 'ftp://x' }, /upstreams\.canary/],
    [{ canary: ['http://127.0.0.1:1/path'] }, /upstreams\.canary\[0\]: must be an origin/],
    [{ stable: null }, /upstreams\.stable/],
    [{ blue: 'http://127.0.0.1:1' }, /upstreams/],
    [{}, /upstreams/],
  ]
  for (const [body, message] of cases) {
    const r = await api.call('PUT', '/api/v1/routes/shop/upstreams', body)
    t.equal(r.status, 400, JSON.stringify(body))
    t.match(r.json().message, message)
  }
  t.equal((await api.get('/api/v1/routes/shop')).json().revision, 1, 'no refused write changed the revision')
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 })).status, 200)
  const removed = await api.call('PUT', '/api/v1/routes/shop/upstreams', { canary: null })
  t.equal(removed.status, 200, removed.body)
  t.equal(removed.json<{ upstreams: Record<string, unknown> }>().upstreams.canary, undefined)
  const override = await send(proxy.url + '/', { headers: { 'x-weir-version': 'canary' } })
  t.equal(override.json().version, 'stable', 'an override of a version without upstream falls back to stable')
})

t.test('switch moves 100 % at once; rollback returns to stable; both refuse bad input', async (t) => {
  const { proxy, api } = await setup(t)
  const toGreen = await api.call('POST', '/api/v1/routes/shop/switch', { to: 'green' })
  t.equal(toGreen.status, 200, toGreen.body)
  t.same(toGreen.json().weights, { stable: 0, canary: 0, green: 100 })
  t.same(await versionsServed(proxy, 30), { green: 30 })
  const bad = await api.call('POST', '/api/v1/routes/shop/switch', { to: 'blue' })
  t.equal(bad.status, 400)
  t.match(bad.json().message, /body\.to: must be "green" or "stable"/)
  const back = await api.call('POST', '/api/v1/routes/shop/rollback')
  t.equal(back.status, 200, back.body)
  t.same(back.json().weights, { stable: 100, canary: 0, green: 0 })
  t.same(await versionsServed(proxy, 30), { stable: 30 })
})

t.test('switch to a version without upstream is refused', async (t) => {
  const stable = await startUpstream('s')
  const proxy = await startProxy(configDoc([{ name: 'bg', upstreams: { stable: stable.url } }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  const reply = await adminClient(proxy.adminUrl).call('POST', '/api/v1/routes/bg/switch', { to: 'green' })
  t.equal(reply.status, 400)
  t.match(reply.json().message, /body\.to: version green has no upstream/)
})

t.test('while a rollout drives the route: manual writes are 409 unless forced; rollback always works', async (t) => {
  const stable = await startUpstream('s')
  const canary = await startUpstream('c')
  const doc = configDoc([{ name: 'r', upstreams: { stable: stable.url, canary: canary.url }, weights: { stable: 90, canary: 10 } }])
  const stateFile = (doc.state as { file: string }).file
  writeFileSync(stateFile, JSON.stringify({
    version: 1,
    routes: { r: { revision: 4, weights: { stable: 9000, canary: 1000, green: 0 }, rollout: runningRollout(1), updatedAt: new Date().toISOString() } },
  }))
  const proxy = await startProxy(doc)
  t.teardown(async () => { await proxy.close(); await stable.close(); await canary.close() })
  const api = adminClient(proxy.adminUrl)
  t.match((await send(proxy.adminUrl + '/metrics')).body, /weir_rollout_state\{route="r",phase="progressing"\} 1\n/)
  const refused = await api.call('PUT', '/api/v1/routes/r/weights', { stable: 50, canary: 50 })
  t.equal(refused.status, 409)
  t.equal(refused.json().error, 'WEIR_ERR_ADMIN_ROLLOUT_ACTIVE')
  t.equal((await api.call('POST', '/api/v1/routes/r/switch', { to: 'stable' })).status, 409)
  const forced = await api.call('PUT', '/api/v1/routes/r/weights?force=true', { stable: 50, canary: 50 })
  t.equal(forced.status, 200, forced.body)
  // 4 in the file, 5 for the controller's note that it resumed the rollout after the start.
  t.equal(forced.json().revision, 6)
  const rolledBack = await api.call('POST', '/api/v1/routes/r/rollback')
  t.equal(rolledBack.status, 200)
  t.match(rolledBack.json(), { weights: { stable: 100, canary: 0 }, rollout: { phase: 'failed', step: 1 } })
  const metrics = (await send(proxy.adminUrl + '/metrics')).body
  t.match(metrics, /weir_rollout_state\{route="r",phase="failed"\} 1\n/)
  t.match(metrics, /weir_rollout_state\{route="r",phase="progressing"\} 0\n/)
  t.equal((await api.call('PUT', '/api/v1/routes/r/weights', { stable: 100 })).status, 200, 'a failed rollout no longer blocks writes')
})

t.test('bearer tokens: none or wrong → 401 and nothing changes; the token name is the actor; no token is ever logged', async (t) => {
  const token = 'tok-' + 'x'.repeat(40)
  const ciToken = 'ci-secret-' + 'y'.repeat(30)
  const { proxy, api } = await setup(t, {}, { admin: { host: '127.0.0.1', port: 0, token, tokens: { ci: ciToken } } }, token)
  const anonymous = adminClient(proxy.adminUrl)
  const wrong = adminClient(proxy.adminUrl, token + 'z')
  for (const client of [anonymous, wrong]) {
    const r = await client.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 })
    t.equal(r.status, 401)
    t.equal(r.json().error, 'WEIR_ERR_ADMIN_UNAUTHORIZED')
    t.match(String(r.headers['www-authenticate']), /^Bearer/)
    t.equal((await client.get('/api/v1/routes')).status, 401, 'reads need the token too')
  }
  t.equal((await send(proxy.adminUrl + '/api/v1/routes', { headers: { authorization: `Basic ${token}` } })).status, 401)
  t.equal((await api.get('/api/v1/routes/shop')).json().revision, 0)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 })).status, 200)
  const ci = adminClient(proxy.adminUrl, ciToken)
  t.equal((await ci.call('PUT', '/api/v1/routes/shop/weights', { stable: 50, canary: 50 })).status, 200)
  t.equal((await send(proxy.adminUrl + '/metrics')).status, 200, '/metrics needs no token')
  const events = (await api.get('/api/v1/events')).json<{ events: { actor: string; action: string }[] }>().events
  t.same(events.map((e) => [e.actor, e.action]), [
    ['unauthenticated', 'rejected'], ['unauthenticated', 'rejected'], ['admin', 'weights.set'], ['ci', 'weights.set'],
  ])
  const log = readFileSync(proxy.config.eventsFile, 'utf8')
  t.notMatch(log, token.slice(0, 12), 'the admin token is not in the event log')
  t.notMatch(log, ciToken.slice(0, 12), 'the ci token is not in the event log')
})

t.test('cross-site writes and DNS-rebinding hosts are refused with 403; non-JSON writes with 415', async (t) => {
  const { api } = await setup(t)
  const attempts: [Record<string, string>, number, string][] = [
    [{ origin: 'http://evil.example' }, 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    [{ origin: 'null' }, 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    [{ 'sec-fetch-site': 'cross-site' }, 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    [{ 'sec-fetch-site': 'same-site' }, 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    [{ host: 'rebind.evil.example:9901' }, 403, 'WEIR_ERR_ADMIN_HOST'],
    [{ host: '127.evil.example' }, 403, 'WEIR_ERR_ADMIN_HOST'],
    [{ 'content-type': 'text/plain' }, 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    [{ 'content-type': 'application/x-www-form-urlencoded' }, 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    [{ 'content-type': 'multipart/form-data; boundary=x' }, 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
  ]
  for (const [headers, status, code] of attempts) {
    const r = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 }, headers)
    t.equal(r.status, status, JSON.stringify(headers))
    t.equal(r.json().error, code)
  }
  t.equal((await api.get('/api/v1/routes/shop')).json().revision, 0, 'nothing changed')
  const sameOrigin = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 }, { 'sec-fetch-site': 'same-origin' })
  t.equal(sameOrigin.status, 200, 'a same-origin write (e.g. a dashboard served by weir) passes')
})

t.test('stats: per-version window over real traffic; window validated', async (t) => {
  const { proxy, api } = await setup(t, { weights: { stable: 100 } })
  for (let i = 0; i < 20; i++) await send(proxy.url + '/')
  const reply = await api.get('/api/v1/routes/shop/stats?window=30')
  t.equal(reply.status, 200, reply.body)
  const stats = reply.json<{ window: number; versions: Record<string, { requests: number; errors: number; errorRate: number; p50: number; p99: number }> }>()
  t.equal(stats.window, 30)
  t.match(stats.versions.stable, { requests: 20, errors: 0, errorRate: 0 })
  t.type(stats.versions.stable?.p50, 'number')
  for (const q of ['p50', 'p99'] as const) {
    const ms = stats.versions.stable?.[q] as number
    t.equal(ms, Number(ms.toPrecision(3)), `${q} (${ms} ms) is shown to 3 significant digits`)
  }
  const exact = (await api.get('/api/v1/routes/shop/stats?window=30&histograms=true')).json<{ histograms: Record<string, { requests: number }> }>()
  t.equal(exact.histograms.stable?.requests, 20, 'the histograms stay exact')
  t.equal((await api.get('/api/v1/routes/shop/stats')).json().window, 60, 'the default window is 60 s')
  for (const bad of ['0', '601', 'abc', '1.5', '']) {
    const r = await api.get(`/api/v1/routes/shop/stats?window=${bad}`)
    t.equal(r.status, 400, `window=${bad}`)
    t.match(r.json().message, /^window: must be an integer from 1 to 600/)
  }
  t.equal((await api.get('/api/v1/routes/nope/stats')).status, 404)
})

t.test('events: ?since pages forward, limit bounds a page, bad values are refused', async (t) => {
  const { api } = await setup(t)
  for (let i = 0; i < 5; i++) await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 100 - i, canary: i })
  const all = (await api.get('/api/v1/events')).json<{ events: { id: number }[]; lastId: number }>()
  t.equal(all.events.length, 5)
  t.equal(all.lastId, all.events.at(-1)?.id)
  const after = (await api.get(`/api/v1/events?since=${all.events[2]?.id ?? 0}`)).json<{ events: { id: number }[] }>()
  t.same(after.events.map((e) => e.id), all.events.slice(3).map((e) => e.id))
  t.equal((await api.get('/api/v1/events?limit=2&since=0')).json<{ events: unknown[] }>().events.length, 2)
  t.equal((await api.get('/api/v1/events?since=-1')).status, 400)
  t.equal((await api.get('/api/v1/events?limit=0')).status, 400)
})

t.test('state survives a rebuild on the same state file; an edited config file wins again for the edited field', async (t) => {
  const stable = await startUpstream('s')
  const canary = await startUpstream('c')
  const newCanary = await startUpstream('c2')
  t.teardown(async () => { await stable.close(); await canary.close(); await newCanary.close() })
  const doc = configDoc([{ name: 'a', upstreams: { stable: stable.url, canary: canary.url }, weights: { stable: 90, canary: 10 } }])
  let proxy = await startProxy(doc)
  let api = adminClient(proxy.adminUrl)
  t.equal((await api.call('PUT', '/api/v1/routes/a/weights', { stable: 70, canary: 30 })).status, 200)
  t.equal((await api.call('PUT', '/api/v1/routes/a/upstreams', { canary: newCanary.url })).status, 200)
  await proxy.close()

  proxy = await startProxy(doc)
  api = adminClient(proxy.adminUrl)
  t.match((await api.get('/api/v1/routes/a')).json(), { weights: { stable: 70, canary: 30 }, upstreams: { canary: [newCanary.url] }, revision: 2, source: 'live' },
    'live state wins over the unchanged config file')
  await proxy.close()

  const edited = { ...doc, routes: [{ name: 'a', upstreams: { stable: stable.url, canary: canary.url }, weights: { stable: 95, canary: 5 } }] }
  proxy = await startProxy(edited)
  t.teardown(() => proxy.close())
  api = adminClient(proxy.adminUrl)
  t.match((await api.get('/api/v1/routes/a')).json(), { weights: { stable: 95, canary: 5 }, upstreams: { canary: [newCanary.url] }, revision: 3 },
    'the edited weights apply; the unedited upstreams keep their live override')
  const last = (await api.get('/api/v1/events')).json<{ events: Record<string, unknown>[] }>().events.at(-1)
  t.match(last, { actor: 'config', action: 'config.applied', route: 'a', reason: /weights/ })
})

t.test('a reload applies the edited config file the same way', async (t) => {
  const { proxy, api, stable, canary, green } = await setup(t)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 50, canary: 50 })).status, 200)
  const unchanged = await proxy.apps.reload(proxy.config)
  t.same(unchanged, [])
  t.same((await api.get('/api/v1/routes/shop')).json().weights, { stable: 50, canary: 50, green: 0 }, 'an unchanged file keeps the live weights')
  const doc = configDoc([{ name: 'shop', upstreams: { stable: stable.url, canary: canary.url, green: green.url }, weights: { stable: 100 } }])
  const { mustBuild } = await import('../helpers/proxy.ts')
  const warnings = await proxy.apps.reload(mustBuild(doc))
  t.match(warnings, [/route shop: the config file's weights changed/])
  t.same((await api.get('/api/v1/routes/shop')).json().weights, { stable: 100, canary: 0, green: 0 })
  t.same(await versionsServed(proxy, 20), { stable: 20 })
})

t.test('a reload warns for each key it cannot apply live, and keeps the running value', async (t) => {
  const { proxy, api } = await setup(t)
  const { mustBuild } = await import('../helpers/proxy.ts')
  const { closedPort } = await import('../helpers/upstream.ts')
  const header = (bytes: number): Record<string, string> => ({ 'x-big': 'a'.repeat(bytes) })
  const headerStatus = async (bytes: number): Promise<number> => (await bareRequest(proxy.url, 'GET', '/', header(bytes))).status
  t.equal(proxy.config.maxHeaderBytes, 16384)
  t.equal(await headerStatus(20_000), 431, 'before: over the 16 KiB default')
  const newAdminPort = await closedPort()
  const edited = mustBuild({
    ...(configDoc([{ name: 'shop', upstreams: { stable: 'http://127.0.0.1:1' } }], { cookieSecret: 'another-secret-another-secret' }) as Record<string, unknown>),
    maxHeaderBytes: 65536,
    timeouts: { clientHeaders: '7s', clientIdle: '9s' },
    admin: { host: '127.0.0.1', port: newAdminPort },
    workers: proxy.config.workers + 1,
  })
  // The routes stay as they run, so only the restart-only keys differ (configDoc gave a new state file).
  const warnings = await proxy.apps.reload({ ...edited, routes: proxy.config.routes, listen: proxy.config.listen })
  for (const key of ['maxHeaderBytes', 'timeouts.clientHeaders', 'timeouts.clientIdle', 'admin.host and admin.port', 'state (file, events, etcd)', 'cookieSecret', 'workers']) {
    t.equal(warnings.filter((w) => w.startsWith(`${key} changed: takes effect after a restart (the running value is kept)`)).length, 1, `${key} (${warnings.join(' | ')})`)
  }
  t.notOk(warnings.some((w) => w.startsWith('fleet changed')), 'the derived fleet.id follows admin.port: no warning of its own')
  t.equal(warnings.length, 7, warnings.join(' | '))
  // What the warnings say is so: the running values are kept.
  t.equal(await headerStatus(20_000), 431, 'maxHeaderBytes: still the old limit (64 KiB would have let 20 000 bytes through)')
  t.equal(await headerStatus(8000), 200, 'and under it, served')
  t.equal((await api.get('/api/v1/routes/shop')).status, 200, 'admin: the old port still answers')
  await t.rejects(bareRequest(`http://127.0.0.1:${newAdminPort}`, 'GET', '/healthz'), { code: 'ECONNREFUSED' }, 'and nothing listens on the new one')
})

t.test('a reload that changes only admin.port warns for admin.port alone; a fleet.id written in the file warns when it changes', async (t) => {
  const [stable] = await startUpstreams(t, 'stable') as [Upstream]
  const { mustBuild } = await import('../helpers/proxy.ts')
  const { closedPort } = await import('../helpers/upstream.ts')
  const doc = configDoc([{ name: 'shop', upstreams: { stable: stable.url } }])
  const proxy = await startProxy(doc)
  t.teardown(() => proxy.close())
  t.equal(proxy.config.fleet.idGiven, false, 'the test config names no fleet.id: it is derived from the admin port')
  const moved = mustBuild({ ...doc, admin: { host: '127.0.0.1', port: await closedPort() } })
  t.not(moved.fleet.id, proxy.config.fleet.id, 'the derived id did change')
  t.same(await proxy.apps.reload(moved), ['admin.host and admin.port changed: takes effect after a restart (the running value is kept)'])
  const named = mustBuild({ ...doc, fleet: { id: 'edge-2' } })
  t.match(await proxy.apps.reload(named), ['admin.host and admin.port changed: takes effect after a restart (the running value is kept)', 'fleet changed: takes effect after a restart (the running value is kept)'],
    'against the running config (port 0 again), and the named id is a change of its own')
})

t.test('unknown /api/v1 paths and methods are JSON 404s', async (t) => {
  const { api } = await setup(t)
  for (const [method, path] of [['GET', '/api/v1/nope'], ['DELETE', '/api/v1/routes/shop'], ['POST', '/api/v1/routes/shop/weights']]) {
    const r = method === 'POST' ? await api.call(method, path as string, {}) : await api.call(method as string, path as string)
    t.equal(r.status, 404, `${method} ${path}`)
    t.equal(r.json().error, 'WEIR_ERR_ADMIN_NOT_FOUND')
  }
})

t.test('a bare curl -X POST (no body, no content type) works for rollback and the rollout commands', async (t) => {
  const { proxy, api } = await setup(t, { rollout: { steps: [10, 50], interval: '1m' } })
  const post = (path: string) => bareRequest(proxy.adminUrl, 'POST', `/api/v1/routes/shop/${path}`)
  const back = await post('rollback')
  t.equal(back.status, 200, back.body)
  t.same(JSON.parse(back.body).weights, { stable: 100, canary: 0, green: 0 })
  const started = await post('rollout')
  t.equal(started.status, 201, started.body)
  t.match(JSON.parse(started.body), { phase: 'progressing', rollout: { steps: [10, 50] } }, 'no body: the route\'s own policy')
  for (const [command, phase] of [['pause', 'paused'], ['resume', 'progressing'], ['promote', 'progressing'], ['abort', 'failed']] as const) {
    const reply = await post(`rollout/${command}`)
    t.equal(reply.status, 200, `${command}: ${reply.body}`)
    t.equal(JSON.parse(reply.body).phase, phase, command)
  }
  // Node's client sends `Content-Length: 0` for a POST without a body: no body either.
  const nodeClient = await send(proxy.adminUrl + '/api/v1/routes/shop/rollback', { method: 'POST' })
  t.equal(nodeClient.status, 200, nodeClient.body)
  t.match((await api.get('/api/v1/routes/shop')).json(), { rollout: { phase: 'failed' } })
})

t.test('an empty write without a content type is still refused when cross-site, when it has a body, or when its endpoint needs one', async (t) => {
  const { proxy, api } = await setup(t)
  const before = (await api.get('/api/v1/routes/shop')).json().revision
  const cases: [string, string, Record<string, string>, string, number, string][] = [
    ['POST', 'rollback', { origin: 'http://evil.example' }, '', 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    ['POST', 'rollback', { 'sec-fetch-site': 'cross-site' }, '', 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    ['POST', 'rollout', { origin: 'null' }, '', 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    ['POST', 'rollback', { 'content-type': 'text/plain', 'content-length': '2' }, '{}', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'rollback', { 'content-type': 'text/plain' }, '', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'rollback', { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '3' }, 'a=1', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'rollback', { 'content-length': '2' }, '{}', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'rollback', { 'transfer-encoding': 'chunked' }, '0\r\n\r\n', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'rollout/abort', { 'content-length': '2' }, '{}', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'switch', { 'content-length': '2' }, '{}', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
    ['POST', 'switch', { origin: 'http://evil.example' }, '', 403, 'WEIR_ERR_ADMIN_CROSS_SITE'],
    ['PUT', 'weights', {}, '', 415, 'WEIR_ERR_ADMIN_MEDIA_TYPE'],
  ]
  for (const [method, path, headers, body, status, code] of cases) {
    const reply = await bareRequest(proxy.adminUrl, method, `/api/v1/routes/shop/${path}`, headers, body)
    const name = `${method} ${path} ${JSON.stringify(headers)}`
    t.equal(reply.status, status, name)
    t.equal(JSON.parse(reply.body).error, code, name)
  }
  // An empty switch is an incomplete request, not a wrong media type: it names what it lacks.
  for (const headers of [{}, { 'content-length': '0' }, { 'content-type': 'application/json' }]) {
    const empty = await bareRequest(proxy.adminUrl, 'POST', '/api/v1/routes/shop/switch', headers, '')
    t.equal(empty.status, 400, `empty switch ${JSON.stringify(headers)}: ${empty.body}`)
    t.match(JSON.parse(empty.body), { error: 'WEIR_ERR_ADMIN_INVALID', problems: [{ path: 'body.to', reason: /^is required/ }] })
  }
  t.equal((await api.get('/api/v1/routes/shop')).json().revision, before, 'nothing changed')
  t.match((await api.get('/api/v1/routes/shop')).json(), { weights: { stable: 90, canary: 10 } })
})
