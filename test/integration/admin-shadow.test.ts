// PUT /api/v1/routes/:route/shadow over real sockets and a real state file: merge semantics,
// validation (a refusal changes nothing), If-Match, rollouts, persistence, the config file's
// edits winning, other writes keeping the settings, and the route table the proxy reads.

import type { ProxyRuntime } from '../../src/proxy/app.ts'
import t, { type Test } from 'tap'
import { runningRollout } from '../helpers/rollout-state.ts'
import { readFileSync } from 'node:fs'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { configDoc, mustBuild, startProxy, type RouteDoc, type TestProxy } from '../helpers/proxy.ts'
import { adminClient, type AdminClient } from '../helpers/admin.ts'
import type { ShadowConfig } from '../../src/config/model.ts'

interface Setup { proxy: TestProxy; api: AdminClient; doc: Record<string, unknown>; stable: Upstream; canary: Upstream; shadow: Upstream }

const DEFAULTS = { percent: 0, maxInFlight: 100, maxBodyBytes: '64kb', methods: ['GET', 'HEAD', 'OPTIONS'], timeout: '5s', compare: false, ignore: { headers: [], json: [] } }

/** `shop` has a shadow upstream; `plain` (host plain.test) has none. */
function routes (up: { stable: Upstream; canary: Upstream; shadow: Upstream }, shop: Partial<RouteDoc> = {}): RouteDoc[] {
  return [
    { name: 'shop', upstreams: { stable: up.stable.url, canary: up.canary.url, shadow: up.shadow.url }, weights: { stable: 90, canary: 10 }, ...shop },
    { name: 'plain', match: { host: 'plain.test' }, upstreams: { stable: up.stable.url } },
  ]
}

async function setup (t: Test, shop: Partial<RouteDoc> = {}): Promise<Setup> {
  const [stable, canary, shadow] = await startUpstreams(t, 'stable', 'canary', 'shadow') as [Upstream, Upstream, Upstream]
  const doc = configDoc(routes({ stable, canary, shadow }, shop))
  const proxy = await startProxy(doc)
  // Registered after the upstreams' teardown, so it runs first: the proxy closes before them.
  t.teardown(() => proxy.close())
  return { proxy, api: adminClient(proxy.adminUrl), doc, stable, canary, shadow }
}

/** The shadow settings of the route table the proxy serves from: the seam the data path reads. */
function served (proxy: TestProxy, name = 'shop'): ShadowConfig {
  const route = (proxy.apps.runtime as ProxyRuntime).current.table.routes.find((r) => r.name === name)
  if (route === undefined) throw new Error(`no route ${name} in the table`)
  return route.config.shadow
}

function stateFile (proxy: TestProxy): { routes: Record<string, Record<string, unknown>> } {
  return JSON.parse(readFileSync(proxy.config.stateFile, 'utf8'))
}

async function lastEvent (api: AdminClient): Promise<Record<string, unknown> | undefined> {
  return (await api.get('/api/v1/events')).json<{ events: Record<string, unknown>[] }>().events.at(-1)
}

t.test('PUT shadow: the given fields replace the ones in force, persisted, in the route table, logged, revision bumped', async (t) => {
  const { proxy, api } = await setup(t, { shadow: { percent: 1, timeout: '2s' } })
  t.same((await api.get('/api/v1/routes/shop')).json().shadow, { ...DEFAULTS, percent: 1, timeout: '2s' }, 'before: the file\'s settings, complete')
  const reply = await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 12.5, compare: true, methods: ['GET', 'POST'], ignore: { json: ['$.meta.time'] } })
  t.equal(reply.status, 200, reply.body)
  const expected = { ...DEFAULTS, percent: 12.5, timeout: '2s', compare: true, methods: ['GET', 'POST'], ignore: { headers: [], json: ['$.meta.time'] } }
  t.match(reply.json(), { name: 'shop', revision: 1, source: 'live', weights: { stable: 90, canary: 10 } })
  t.same(reply.json().shadow, expected, 'omitted fields keep the file\'s values (timeout 2s)')
  t.equal(reply.headers.etag, '"1"')
  t.same((await api.get('/api/v1/routes/shop')).json().shadow, expected)
  const list = (await api.get('/api/v1/routes')).json<{ name: string; shadow: unknown; revision: number }[]>()
  t.same(list.find((r) => r.name === 'shop')?.shadow, expected)
  t.same(list.find((r) => r.name === 'plain')?.shadow, DEFAULTS, 'a route without shadow settings shows the defaults')

  const table = served(proxy)
  t.equal(table.percentBp, 1250)
  t.equal(table.compare, true)
  t.same([...table.methods], ['GET', 'POST'])
  t.equal(table.timeoutMs, 2000)
  t.same(table.ignoreJson, ['$.meta.time'])

  t.match(stateFile(proxy).routes.shop, { revision: 1, shadow: expected, weights: { stable: 9000, canary: 1000, green: 0 } })
  const event = await lastEvent(api)
  t.match(event, { actor: 'local', route: 'shop', action: 'shadow.set', old: { revision: 0, shadow: { percent: 1, compare: false } }, new: { revision: 1, shadow: expected } })
  t.type(event?.requestId, 'string')

  const again = await api.call('PUT', '/api/v1/routes/shop/shadow', { maxInFlight: 5, ignore: { headers: ['X-Trace'] } })
  t.equal(again.status, 200, again.body)
  t.same(again.json().shadow, { ...expected, maxInFlight: 5, ignore: { headers: ['X-Trace'], json: [] } },
    'the rest stays; ignore is replaced as a whole, its omitted list empty')
  t.equal(again.json().revision, 2)
  t.equal(served(proxy).maxInFlight, 5)
  t.same(served(proxy).ignoreHeaders, ['x-trace'])
})

t.test('invalid shadow settings: 400 naming the field; the route and the state file stay exactly as they were', async (t) => {
  const { proxy, api } = await setup(t)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 2 })).status, 200, 'a first valid change, so the state file exists')
  const before = {
    shop: (await api.get('/api/v1/routes/shop')).body,
    plain: (await api.get('/api/v1/routes/plain')).body,
    file: readFileSync(proxy.config.stateFile, 'utf8'),
  }
  const cases: [string, string, unknown, RegExp, string][] = [
    ['three decimals', 'shop', { percent: 10.001 }, /shadow\.percent: must have at most two decimals/, 'shadow.percent'],
    ['above 100', 'shop', { percent: 101 }, /shadow\.percent: expected number to be less or equal to 100/, 'shadow.percent'],
    ['negative', 'shop', { percent: -1 }, /shadow\.percent: expected number to be greater or equal to 0/, 'shadow.percent'],
    ['a string', 'shop', { percent: '10' }, /shadow\.percent: expected number/, 'shadow.percent'],
    ['an unknown field', 'shop', { percent: 5, mirror: true }, /shadow\.mirror: unexpected property/, 'shadow.mirror'],
    ['an unknown method', 'shop', { methods: ['TRACE'] }, /shadow\.methods\[0\]: must be one of GET, HEAD, OPTIONS, PUT, DELETE, PATCH, POST/, 'shadow.methods[0]'],
    ['no methods', 'shop', { methods: [] }, /shadow\.methods: /, 'shadow.methods'],
    ['a timeout without unit', 'shop', { timeout: 'soon' }, /shadow\.timeout: must be a duration/, 'shadow.timeout'],
    ['a zero timeout', 'shop', { timeout: 0 }, /shadow\.timeout: must be more than 0/, 'shadow.timeout'],
    ['no copies in flight', 'shop', { maxInFlight: 0 }, /shadow\.maxInFlight: expected integer to be greater or equal to 1/, 'shadow.maxInFlight'],
    ['an ignore path that does not parse', 'shop', { ignore: { json: ['a..b'] } }, /shadow\.ignore\.json\[0\]: has an empty field name/, 'shadow.ignore.json[0]'],
    ['an unknown ignore field', 'shop', { ignore: { body: [] } }, /shadow\.ignore\.body: unexpected property/, 'shadow.ignore.body'],
    ['percent without a shadow upstream', 'plain', { percent: 5 }, /shadow\.percent: must be 0: the route has no shadow upstream/, 'shadow.percent'],
    ['an empty object', 'shop', {}, /shadow: must set at least one of percent, maxInFlight/, 'shadow'],
    ['an array', 'shop', [5], /shadow: expected object/, 'shadow'],
    ['no body', 'shop', undefined, /shadow: is required/, 'shadow'],
  ]
  for (const [name, route, body, message, path] of cases) {
    const reply = await api.call('PUT', `/api/v1/routes/${route}/shadow`, body)
    t.equal(reply.status, 400, `${name}: status`)
    const error = reply.json<{ error: string; message: string; problems: { path: string }[] }>()
    t.equal(error.error, 'WEIR_ERR_ADMIN_INVALID', `${name}: code`)
    t.match(error.message, message, `${name}: the message names the field`)
    t.equal(error.problems[0]?.path, path, `${name}: problems name the field`)
  }
  t.equal((await api.get('/api/v1/routes/shop')).body, before.shop, 'shop unchanged (settings, revision)')
  t.equal((await api.get('/api/v1/routes/plain')).body, before.plain, 'plain unchanged')
  t.equal(readFileSync(proxy.config.stateFile, 'utf8'), before.file, 'state file unchanged, byte for byte')
  t.equal(served(proxy).percentBp, 200, 'the route table is unchanged')
  t.equal(served(proxy, 'plain').percentBp, 0)
  t.equal((await api.call('PUT', '/api/v1/routes/nope/shadow', { percent: 1 })).status, 404)
})

t.test('If-Match: a stale revision is 412 and changes nothing; the current one passes', async (t) => {
  const { api } = await setup(t)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 1 })).status, 200)
  const stale = await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 50 }, { 'if-match': '"0"' })
  t.equal(stale.status, 412)
  t.equal(stale.json().error, 'WEIR_ERR_ADMIN_STALE_REVISION')
  t.match((await api.get('/api/v1/routes/shop')).json(), { revision: 1, shadow: { percent: 1 } })
  const current = await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 50 }, { 'if-match': '"1"' })
  t.equal(current.status, 200, current.body)
  t.match(current.json(), { revision: 2, shadow: { percent: 50 } })
})

t.test('a shadow change is allowed while a rollout drives the route (weights get 409); the rollout is kept', async (t) => {
  const { proxy, api } = await setup(t)
  const written = await proxy.apps.store.compareAndSet('shop', 0, { weights: { stable: 9000, canary: 1000, green: 0 }, rollout: runningRollout(1) })
  t.ok(written.ok)
  const weights = await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 50, canary: 50 })
  t.equal(weights.status, 409)
  t.equal(weights.json().error, 'WEIR_ERR_ADMIN_ROLLOUT_ACTIVE')
  const shadow = await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 5 })
  t.equal(shadow.status, 200, shadow.body)
  t.match(shadow.json(), { revision: 2, shadow: { percent: 5 }, rollout: { phase: 'progressing', step: 1 }, weights: { stable: 90, canary: 10 } })
  t.equal(served(proxy).percentBp, 500)
  t.match(stateFile(proxy).routes.shop, { rollout: { phase: 'progressing', step: 1 }, shadow: { percent: 5 } })
})

t.test('shadow settings survive a rebuild of the apps on the same state file', async (t) => {
  const [stable, canary, shadow] = await startUpstreams(t, 'stable', 'canary', 'shadow') as [Upstream, Upstream, Upstream]
  const doc = configDoc(routes({ stable, canary, shadow }))
  let proxy = await startProxy(doc)
  const set = await adminClient(proxy.adminUrl).call('PUT', '/api/v1/routes/shop/shadow', { percent: 33.33, maxBodyBytes: '1mb', methods: ['GET', 'PUT'] })
  t.equal(set.status, 200, set.body)
  await proxy.close()

  proxy = await startProxy(doc)
  t.teardown(() => proxy.close())
  const view = (await adminClient(proxy.adminUrl).get('/api/v1/routes/shop')).json()
  t.match(view, { revision: 1, source: 'live' })
  t.same(view.shadow, set.json().shadow)
  t.equal(served(proxy).percentBp, 3333)
  t.equal(served(proxy).maxBodyBytes, 1024 * 1024)
  t.same([...served(proxy).methods], ['GET', 'PUT'])
})

t.test('an edited shadow in the config file wins on reload (actor config); an unedited file keeps the live settings', async (t) => {
  const { proxy, api, doc, stable, canary, shadow } = await setup(t, { shadow: { percent: 1 } })
  t.equal((await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 20, compare: true })).status, 200)
  t.same(await proxy.apps.reload(mustBuild(doc)), [], 'the same file: nothing to apply')
  t.match((await api.get('/api/v1/routes/shop')).json(), { revision: 1, shadow: { percent: 20, compare: true } })
  t.equal(served(proxy).percentBp, 2000)

  const edited = { ...doc, routes: routes({ stable, canary, shadow }, { shadow: { percent: 3 } }) }
  const warnings = await proxy.apps.reload(mustBuild(edited))
  t.match(warnings, [/route shop: the config file's shadow settings changed since the live state was written/])
  t.match((await api.get('/api/v1/routes/shop')).json(), { revision: 2, shadow: { percent: 3, compare: false } })
  t.equal(served(proxy).percentBp, 300)
  t.equal(stateFile(proxy).routes.shop?.shadow, undefined, 'the live settings are gone from the state')
  t.match(await lastEvent(api), { actor: 'config', action: 'config.applied', route: 'shop', old: { shadow: { percent: 20 } }, new: { shadow: null }, reason: /shadow settings/ })
})

t.test('weights, upstreams, switch and rollback writes keep the live shadow settings', async (t) => {
  const { proxy, api, shadow } = await setup(t)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 15, maxInFlight: 7 })).status, 200)
  const writes: [string, string, unknown][] = [
    ['PUT', '/api/v1/routes/shop/weights', { stable: 50, canary: 50 }],
    ['PUT', '/api/v1/routes/shop/upstreams', { shadow: [shadow.url, 'http://127.0.0.1:9'] }],
    ['POST', '/api/v1/routes/shop/switch', { to: 'stable' }],
    ['POST', '/api/v1/routes/shop/rollback', undefined],
  ]
  for (const [method, path, body] of writes) {
    const reply = await api.call(method, path, body)
    t.equal(reply.status, 200, `${method} ${path}: ${reply.body}`)
    t.match(reply.json().shadow, { percent: 15, maxInFlight: 7 }, `${method} ${path}: shadow kept in the view`)
    t.match(stateFile(proxy).routes.shop?.shadow, { percent: 15, maxInFlight: 7 }, `${method} ${path}: shadow kept in the state`)
    t.equal(served(proxy).percentBp, 1500, `${method} ${path}: shadow kept in the route table`)
  }
  t.equal((await api.get('/api/v1/routes/shop')).json().revision, 5)
})

t.test('PUT upstreams {shadow: null} is refused while shadow.percent > 0, and accepted once it is 0', async (t) => {
  const { proxy, api } = await setup(t, { shadow: { percent: 2 } })
  const fromFile = await api.call('PUT', '/api/v1/routes/shop/upstreams', { shadow: null })
  t.equal(fromFile.status, 400)
  t.match(fromFile.json(), { error: 'WEIR_ERR_ADMIN_INVALID', message: 'upstreams.shadow: cannot be removed while shadow.percent is 2; set it to 0 first', problems: [{ path: 'upstreams.shadow' }] })
  t.equal((await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 12.5 })).status, 200)
  const fileBefore = readFileSync(proxy.config.stateFile, 'utf8')
  const live = await api.call('PUT', '/api/v1/routes/shop/upstreams', { shadow: null })
  t.equal(live.status, 400)
  t.match(live.json().message, /^upstreams\.shadow: cannot be removed while shadow\.percent is 12\.5; set it to 0 first$/)
  t.equal(readFileSync(proxy.config.stateFile, 'utf8'), fileBefore, 'nothing changed')

  t.equal((await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 0 })).status, 200)
  const removed = await api.call('PUT', '/api/v1/routes/shop/upstreams', { shadow: null })
  t.equal(removed.status, 200, removed.body)
  t.equal(removed.json<{ upstreams: Record<string, unknown> }>().upstreams.shadow, undefined)
  t.equal((proxy.apps.runtime as ProxyRuntime).current.table.routes.find((r) => r.name === 'shop')?.shadow, null, 'no shadow upstream in the table')
  const again = await api.call('PUT', '/api/v1/routes/shop/shadow', { percent: 5 })
  t.equal(again.status, 400)
  t.match(again.json().message, /shadow\.percent: must be 0: the route has no shadow upstream/)
})
