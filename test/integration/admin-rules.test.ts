// Match rules changed at run time (PUT /api/v1/routes/:route/rules) and the cohort endpoint
// (GET /api/v1/routes/:route/cohort), through real sockets: rules validated like the file's,
// in force before the reply, shown, evented, kept across a restart and dropped again when the
// file's rules are edited; the cohort equals the version real requests get, before and after a
// weight change.

import t from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { configDoc, mustBuild, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'

const BETA = [{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'canary' }]

function shopDoc (stable: Upstream, canary: Upstream, green: Upstream, route: Record<string, unknown> = {}): Record<string, unknown> {
  return configDoc([{
    name: 'shop',
    upstreams: { stable: stable.url, canary: canary.url, green: green.url },
    weights: { stable: 100 },
    stickiness: { userId: { header: 'x-user-id' } },
    ...route,
  }])
}

async function versionOf (proxy: TestProxy, headers: Record<string, string>): Promise<string> {
  return String((await send(proxy.url + '/', { headers })).headers['x-weir-version'])
}

t.test('PUT rules: x-beta reaches canary at weight 0, shown in GET route, evented, kept across a restart', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green') as [Upstream, Upstream, Upstream]
  const doc = shopDoc(stable, canary, green)
  let proxy = await startProxy(doc)
  t.teardown(() => proxy.close())
  let api = adminClient(proxy.adminUrl)
  t.equal(await versionOf(proxy, { 'x-beta': 'yes' }), 'stable', 'no rule yet')
  t.same((await api.get('/api/v1/routes/shop')).json().rules, [], 'the file has none')

  const reply = await api.call('PUT', '/api/v1/routes/shop/rules', BETA, { 'if-match': '0' })
  t.equal(reply.status, 200, reply.body)
  t.match(reply.json(), { revision: 1, source: 'live', rules: BETA })
  t.equal(reply.headers.etag, '"1"')
  t.equal(await versionOf(proxy, { 'x-beta': 'yes' }), 'canary', 'in force before the reply')
  t.equal(await versionOf(proxy, { 'x-beta': 'no' }), 'stable')
  t.same((await api.get('/api/v1/routes/shop')).json().rules, BETA, 'GET route shows them')
  const events = (await api.get('/api/v1/events')).json<{ events: { action: string; new: { rules?: unknown } }[] }>().events
  const set = events.find((e) => e.action === 'rules.set')
  t.same(set?.new.rules, BETA, 'a rules.set event with the new rules')

  await proxy.close()
  proxy = await startProxy(doc)
  api = adminClient(proxy.adminUrl)
  t.equal(await versionOf(proxy, { 'x-beta': 'yes' }), 'canary', 'a restart keeps them')
  t.match((await api.get('/api/v1/routes/shop')).json(), { revision: 1, rules: BETA })

  // A weight change carries the live rules through.
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 90, canary: 10 })).status, 200)
  t.same((await api.get('/api/v1/routes/shop')).json().rules, BETA, 'other writes keep the live rules')

  // The file's rules edited: they win again.
  const edited = shopDoc(stable, canary, green, { rules: [{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'green' }] })
  await proxy.apps.reload(mustBuild({ ...edited, state: doc.state }))
  t.equal(await versionOf(proxy, { 'x-beta': 'yes' }), 'green', 'the edited file\'s rules apply')
  t.same((await api.get('/api/v1/routes/shop')).json().rules, [{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'green' }])

  // reset: the file's rules again after a live change.
  t.equal((await api.call('PUT', '/api/v1/routes/shop/rules', [])).status, 200)
  // A user id whose bucket (7544) is stable's at 90/10: without one, a random bucket reaches canary one time in ten.
  t.equal(await versionOf(proxy, { 'x-beta': 'yes', 'x-user-id': 'beta-tester' }), 'stable', '[] removes every rule')
  t.equal((await api.call('POST', '/api/v1/routes/shop/reset')).status, 200)
  t.equal(await versionOf(proxy, { 'x-beta': 'yes' }), 'green', 'reset serves the file\'s rules')
})

t.test('PUT rules refuses bad rules with 400 naming the field, and changes nothing', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green') as [Upstream, Upstream, Upstream]
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: stable.url, canary: canary.url } }]))
  t.teardown(() => proxy.close())
  void green
  const api = adminClient(proxy.adminUrl)
  const cases: [unknown, string, RegExp][] = [
    [[{ match: { header: { name: 'x-beta', regex: '(a+)+$' } }, version: 'canary' }], 'rules[0].match.header.regex', /./],
    [[{ match: { header: { name: 'x-beta', regex: '[' } }, version: 'canary' }], 'rules[0].match.header.regex', /./],
    [[{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'green' }], 'rules[0].version', /version green has no upstream/],
    [[{ match: { header: { name: 'x-beta', exact: 'yes', prefix: 'y' } }, version: 'canary' }], 'rules[0].match.header', /exactly one/],
    [[{ match: {}, version: 'canary' }], 'rules[0].match', /must have a header, cookie or query condition/],
    [[{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'canary', extra: 1 }], 'rules[0]', /./],
    [{ match: {} }, 'rules', /./],
  ]
  for (const [body, path, reason] of cases) {
    const r = await api.call('PUT', '/api/v1/routes/shop/rules', body)
    t.equal(r.status, 400, JSON.stringify(body))
    const problems = r.json<{ problems: { path: string; reason: string }[] }>().problems
    t.ok(problems.some((p) => p.path.startsWith(path) && reason.test(p.reason)), `${JSON.stringify(body)}: ${JSON.stringify(problems)}`)
  }
  const empty = await api.call('PUT', '/api/v1/routes/shop/rules', undefined, { 'content-type': 'application/json' })
  t.equal(empty.status, 400, 'no body')
  t.match((await api.get('/api/v1/routes/shop')).json(), { revision: 0, rules: [] }, 'nothing was written')
})

t.test('the cohort of 1 000 user ids is the version real requests get, before and after a weight change', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green') as [Upstream, Upstream, Upstream]
  const proxy = await startProxy(shopDoc(stable, canary, green, { weights: { stable: 80, canary: 10, green: 10 } }))
  t.teardown(() => proxy.close())
  const api = adminClient(proxy.adminUrl)
  const ids = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
  const compare = async (when: string): Promise<Record<string, number>> => {
    const seen: Record<string, number> = {}
    let differing = 0
    for (let i = 0; i < ids.length; i += 50) {
      await Promise.all(ids.slice(i, i + 50).map(async (id) => {
        const cohort = (await api.get(`/api/v1/routes/shop/cohort?userId=${encodeURIComponent(id)}`)).json<{ route: string; userId: string; bucket: number; version: string; reason: string }>()
        const served = await versionOf(proxy, { 'x-user-id': id })
        if (cohort.version !== served || cohort.route !== 'shop' || cohort.userId !== id || cohort.reason !== 'user') differing++
        seen[served] = (seen[served] ?? 0) + 1
      }))
    }
    t.equal(differing, 0, `${when}: every answer equals the version served`)
    return seen
  }
  const before = await compare('at 80/10/10')
  t.ok((before.canary ?? 0) > 50 && (before.green ?? 0) > 50, `every version has users (${JSON.stringify(before)})`)
  t.equal((await api.call('PUT', '/api/v1/routes/shop/weights', { stable: 40, canary: 50, green: 10 })).status, 200)
  const after = await compare('at 40/50/10')
  t.ok((after.canary ?? 0) > (before.canary ?? 0), `the weight change moved users to canary (${JSON.stringify(after)})`)
})

t.test('the cohort of a bucket cookie; refusals name the parameter', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green') as [Upstream, Upstream, Upstream]
  const proxy = await startProxy(configDoc([
    { name: 'shop', upstreams: { stable: stable.url, canary: canary.url, green: green.url }, weights: { stable: 50, canary: 50 } },
  ]))
  t.teardown(() => proxy.close())
  const api = adminClient(proxy.adminUrl)
  const first = await send(proxy.url + '/')
  const setCookie = String(first.headers['set-cookie'])
  const value = /weir_b=([^;]+)/.exec(setCookie)?.[1] as string
  t.ok(value, setCookie)
  const cohort = await api.get(`/api/v1/routes/shop/cohort?cookie=${encodeURIComponent(value)}`)
  t.equal(cohort.status, 200, cohort.body)
  t.match(cohort.json(), { route: 'shop', userId: null, version: first.headers['x-weir-version'], reason: 'cookie' })
  const again = await send(proxy.url + '/', { headers: { cookie: `weir_b=${value}` } })
  t.equal(cohort.json().version, again.headers['x-weir-version'], 'the version the cookie gets')

  const refused: [string, string][] = [
    ['userId=alice', 'userId'],
    [`cookie=${encodeURIComponent(value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A'))}`, 'cookie'],
    ['', 'query'],
    [`userId=a&cookie=${encodeURIComponent(value)}`, 'query'],
  ]
  for (const [query, path] of refused) {
    const r = await api.get(`/api/v1/routes/shop/cohort?${query}`)
    t.equal(r.status, 400, query)
    t.equal(r.json<{ problems: { path: string }[] }>().problems[0]?.path, path, `${query}: names ${path}`)
  }
  t.equal((await api.get('/api/v1/routes/nope/cohort?userId=a')).status, 404)
})
