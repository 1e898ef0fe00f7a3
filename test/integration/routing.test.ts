// Routing through real sockets: weight shares, user-id stickiness, bucket cookie, override.

import t, { type Test } from 'tap'
import { startUpstream, startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { configDoc, mustBuild, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { keepAliveAgent, send } from '../helpers/http.ts'
import { sendMany } from '../helpers/send-many.ts'

const keepAlive = keepAliveAgent(32)
t.teardown(() => keepAlive.destroy())

async function threeVersions (t: Test, weights: Record<string, number>, extra: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; ups: { stable: Upstream; canary: Upstream; green: Upstream } }> {
  const ups = { stable: await startUpstream('stable'), canary: await startUpstream('canary'), green: await startUpstream('green') }
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: ups.stable.url, canary: ups.canary.url, green: ups.green.url },
    weights,
    stickiness: { userId: { header: 'x-user-id' } },
    override: { header: 'x-weir-version' },
    ...extra,
  }]))
  t.teardown(async () => {
    await proxy.close()
    for (const u of Object.values(ups)) await u.close()
  })
  return { proxy, ups }
}

/** Sends one request for each user id, `parallel` at a time; returns the version that served each id. */
async function versionsFor (url: string, userIds: string[], parallel = 32): Promise<Map<string, string>> {
  const replies = await sendMany(url, userIds.length, parallel, (i) => ({ path: '', headers: { 'x-user-id': userIds[i] as string } }))
  return new Map(userIds.map((id, i) => [id, String(replies[i]?.headers['x-weir-version'])]))
}

const randomIds = (n: number, salt: string): string[] => Array.from({ length: n }, (_, i) => `${salt}-${i}-${Math.random().toString(36).slice(2)}`)

const sorted = (m: Map<string, string>): [string, string][] => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))

function shares (versions: Map<string, string>): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const v of versions.values()) counts[v] = (counts[v] ?? 0) + 1
  const out: Record<string, number> = {}
  for (const [k, n] of Object.entries(counts)) out[k] = (100 * n) / versions.size
  return out
}

/** Reads `weir_routing_decisions_total` for one route: the count of (version, reason), -1 when absent. */
async function decisionCounts (proxy: TestProxy, route: string): Promise<(version: string, reason: string) => number> {
  await proxy.apps.dataPlane.flush()
  const text = await proxy.apps.metrics.registry.getSingleMetricAsString('weir_routing_decisions_total')
  return (version, reason) => Number(new RegExp(`\\{route="${route}",version="${version}",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? -1)
}

t.test('20 000 requests at 90/10 with random user ids put 10 % (±1.5) on canary', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 90, canary: 10 })
  const versions = await versionsFor(proxy.url + '/', randomIds(20_000, 'a'))
  const s = shares(versions)
  t.ok(Math.abs((s.canary ?? 0) - 10) <= 1.5, `canary share ${s.canary}`)
  t.ok(Math.abs((s.stable ?? 0) - 90) <= 1.5, `stable share ${s.stable}`)
  t.equal(s.green, undefined, 'green at weight 0 gets nothing')
})

t.test('33.33/33.33/33.34 spreads 20 000 users evenly (±1.5) across three versions', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 33.34, canary: 33.33, green: 33.33 })
  const s = shares(await versionsFor(proxy.url + '/', randomIds(20_000, 'b')))
  for (const [v, expected] of [['stable', 33.34], ['canary', 33.33], ['green', 33.33]] as const) {
    t.ok(Math.abs((s[v] ?? 0) - expected) <= 1.5, `${v} share ${s[v]}`)
  }
})

t.test('the same user id always reaches the same version', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 50, canary: 25, green: 25 })
  const ids = randomIds(200, 'c')
  const first = await versionsFor(proxy.url + '/', ids)
  for (let round = 0; round < 3; round++) {
    const again = await versionsFor(proxy.url + '/', ids)
    t.same(sorted(again), sorted(first), `round ${round}: every user on the same version`)
  }
})

t.test('raising canary from 10 to 20 only moves users from stable to canary; lowering it moves them back', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 90, canary: 10 })
  const ids = randomIds(3000, 'd')
  const at10 = await versionsFor(proxy.url + '/', ids)
  const reweigh = async (canary: number): Promise<void> => {
    const doc = configDoc([{
      ...proxy.config.routes[0] && { name: 'shop' },
      upstreams: Object.fromEntries(Object.entries(proxy.config.routes[0]?.upstreams ?? {}).map(([k, v]) => [k, v?.[0]])),
      weights: { stable: 100 - canary, canary },
      stickiness: { userId: { header: 'x-user-id' } },
    }])
    await proxy.apps.reload(mustBuild(doc))
  }
  await reweigh(20)
  const at20 = await versionsFor(proxy.url + '/', ids)
  const moves: Record<string, number> = {}
  for (const [id, before] of at10) {
    const after = at20.get(id)
    if (before !== after) moves[`${before}->${after}`] = (moves[`${before}->${after}`] ?? 0) + 1
  }
  t.same(Object.keys(moves), ['stable->canary'], 'the only movement is stable → canary')
  t.ok((moves['stable->canary'] ?? 0) > 150, `about 10 % of users moved (${moves['stable->canary']} of ${ids.length})`)
  await reweigh(10)
  const back = await versionsFor(proxy.url + '/', ids)
  t.same(sorted(back), sorted(at10), 'at 10 % again, every user is where they were')
})

t.test('a client without user id keeps its version across 50 requests through the bucket cookie', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 50, canary: 50 })
  for (let client = 0; client < 6; client++) {
    const first = await send(proxy.url + '/')
    const setCookie = first.headers['set-cookie']?.find((c) => c.startsWith('weir_b='))
    t.ok(setCookie, 'the first response sets the bucket cookie')
    t.match(setCookie, /; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/, 'with the documented attributes')
    const cookie = (setCookie as string).split(';')[0] as string
    const version = first.headers['x-weir-version']
    for (let i = 0; i < 50; i++) {
      const reply = await send(proxy.url + '/', { headers: { cookie: `other=1; ${cookie}; more=2` }, agent: keepAlive })
      if (reply.headers['x-weir-version'] !== version) t.fail(`request ${i} switched version`)
      if (reply.headers['set-cookie'] !== undefined) t.fail(`request ${i} was sent a new cookie`)
    }
  }
})

t.test('a tampered, malformed or 10 KB bucket cookie is ignored and replaced, never an error', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 50, canary: 50 })
  const first = await send(proxy.url + '/')
  const valid = ((first.headers['set-cookie'] ?? [])[0] ?? '').split(';')[0] as string
  const value = valid.slice('weir_b='.length)
  const flipAt = value.length - 3
  const flipped = value.slice(0, flipAt) + (value[flipAt] === 'A' ? 'B' : 'A') + value.slice(flipAt + 1)
  const bad = {
    'one flipped character': `weir_b=${flipped}`,
    'a changed bucket': `weir_b=${(Number(value.split('.')[0]) + 1) % 10000}.${value.split('.')[1]}`,
    malformed: 'weir_b=not-a-bucket',
    empty: 'weir_b=',
    'bucket out of range': 'weir_b=99999.AAAAAAAAAAAAAAAAAAAAAA',
    '10 KB long': 'weir_b=' + '7'.repeat(10 * 1024),
  }
  for (const [what, cookie] of Object.entries(bad)) {
    const reply = await send(proxy.url + '/', { headers: { cookie } })
    t.equal(reply.status, 200, `${what}: answered 200`)
    const replaced = (reply.headers['set-cookie'] ?? []).find((c) => c.startsWith('weir_b='))
    t.ok(replaced, `${what}: a new cookie is set`)
    t.not(replaced?.split(';')[0], cookie, `${what}: the new cookie differs`)
  }
  const good = await send(proxy.url + '/', { headers: { cookie: valid } })
  t.equal(good.headers['set-cookie'], undefined, 'the untouched cookie is accepted as is')
})

t.test('the bucket cookie is Secure when the client came over https through a trusted hop', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 100 })
  const direct = await send(proxy.url + '/', { headers: { 'x-forwarded-proto': 'https' } })
  t.notMatch(String(direct.headers['set-cookie']), /Secure/, 'an untrusted X-Forwarded-Proto is ignored')
  const trustedDoc = configDoc([{ name: 'shop', upstreams: { stable: proxy.config.routes[0]?.upstreams.stable?.[0] } }], { trustedProxies: ['127.0.0.1'] })
  await proxy.apps.reload(mustBuild(trustedDoc))
  const viaTls = await send(proxy.url + '/', { headers: { 'x-forwarded-proto': 'https' } })
  t.match(String(viaTls.headers['set-cookie']), /; Secure/, 'a trusted hop saying https gets a Secure cookie')
})

t.test('the override header reaches a version at weight 0; an unknown or shadow version is ignored', async (t) => {
  const { proxy, ups } = await threeVersions(t, { stable: 100 })
  for (const v of ['canary', 'green', 'stable']) {
    const reply = await send(proxy.url + '/x', { headers: { 'x-weir-version': v } })
    t.equal(reply.json().version, v, `override ${v} is served by ${v}`)
    t.equal(reply.headers['x-weir-version'], v, 'and says so')
    t.equal(reply.headers['set-cookie'], undefined, 'an override sets no bucket cookie')
  }
  t.equal(ups.green.received.length, 1, 'green received exactly the one overridden request')
  t.equal(ups.green.received[0]?.headers['x-weir-version'], 'green', 'and was told it serves as green')
  for (const v of ['shadow', 'blue', 'CANARY', '']) {
    const reply = await send(proxy.url + '/x', { headers: { 'x-weir-version': v } })
    t.equal(reply.status, 200, `override "${v}": answered`)
    t.equal(reply.json().version, 'stable', `override "${v}" is ignored (weights decide)`)
  }
})

t.test('an override naming a version without an upstream, shadow or an unknown version is ignored: the weights decide', async (t) => {
  // Each route gives every bucket to the version other than stable it has, so the weighted
  // answer differs both from honouring the override and from falling back to stable. The shadow
  // has an upstream (copying nothing at 0 %), so honouring "shadow" would show too.
  const [stable, canary, green, shadow] = await startUpstreams(t, 'stable', 'canary', 'green', 'shadow') as [Upstream, Upstream, Upstream, Upstream]
  const proxy = await startProxy(configDoc([
    {
      name: 'no-green',
      match: { pathPrefix: '/c' },
      upstreams: { stable: stable.url, canary: canary.url, shadow: shadow.url },
      weights: { stable: 0, canary: 100 },
      stickiness: { userId: { header: 'x-user-id' } },
      override: { header: 'x-weir-version' },
      shadow: { percent: 0 },
    },
    {
      name: 'no-canary',
      match: { pathPrefix: '/g' },
      upstreams: { stable: stable.url, green: green.url },
      weights: { stable: 0, green: 100 },
      stickiness: { userId: { header: 'x-user-id' } },
      override: { header: 'x-weir-version' },
    },
  ]))
  t.teardown(() => proxy.close())
  const served = async (path: string, override: string): Promise<{ status: number; version: unknown; header: unknown }> => {
    const reply = await send(proxy.url + path, { headers: { 'x-weir-version': override, 'x-user-id': 'alice' } })
    return { status: reply.status, version: reply.status === 200 ? reply.json().version : undefined, header: reply.headers['x-weir-version'] }
  }
  for (const path of ['/c', '/g']) {
    t.same(await served(path, 'stable'), { status: 200, version: 'stable', header: 'stable' }, `${path}: the override header is live (stable at weight 0 is reached)`)
  }
  for (const v of ['green', 'shadow', 'blue']) {
    t.same(await served('/c', v), { status: 200, version: 'canary', header: 'canary' }, `no green upstream: override "${v}" is ignored, the weights send alice to canary`)
  }
  for (const v of ['canary', 'shadow', 'blue']) {
    t.same(await served('/g', v), { status: 200, version: 'green', header: 'green' }, `no canary upstream: override "${v}" is ignored, the weights send alice to green`)
  }
  t.equal(shadow.received.length, 0, 'the shadow upstream served nothing')
  const noGreen = await decisionCounts(proxy, 'no-green')
  const noCanary = await decisionCounts(proxy, 'no-canary')
  t.same([noGreen('canary', 'user'), noGreen('stable', 'override')], [3, 1], 'no-green: the ignored overrides were decided by the user id; only stable counts as an override')
  t.same([noCanary('green', 'user'), noCanary('stable', 'override')], [3, 1], 'no-canary: likewise')
})

t.test('routes match by host and path prefix, first match wins; no match is a JSON 404 from the proxy', async (t) => {
  const a = await startUpstream('a')
  const b = await startUpstream('b')
  const c = await startUpstream('c')
  const proxy = await startProxy(configDoc([
    { name: 'api', match: { host: 'shop.example.com', pathPrefix: '/api' }, upstreams: { stable: a.url } },
    { name: 'wild', match: { host: '*.example.com' }, upstreams: { stable: b.url } },
    { name: 'other', match: { host: ['other.test', 'Alias.Test'] }, upstreams: { stable: c.url } },
  ]))
  t.teardown(async () => { await proxy.close(); await a.close(); await b.close(); await c.close() })
  const version = async (host: string, path: string): Promise<string | number> => {
    const reply = await send(proxy.url + path, { headers: { host } })
    return reply.status === 200 ? reply.json().version as string : reply.status
  }
  t.equal(await version('shop.example.com', '/api/items'), 'a')
  t.equal(await version('SHOP.example.com:8080', '/api'), 'a', 'host is case-insensitive and ignores the port')
  t.equal(await version('shop.example.com', '/web'), 'b', 'a later route catches what the first does not')
  t.equal(await version('x.example.com', '/api'), 'b', 'wildcard host')
  t.equal(await version('alias.test', '/'), 'c', 'any of several hosts')
  const miss = await send(proxy.url + '/', { headers: { host: 'nowhere.test' } })
  t.equal(miss.status, 404)
  t.same(Object.keys(miss.json()).sort(), ['error', 'message', 'requestId'])
  t.equal(miss.json().error, 'WEIR_ERR_ROUTE_NOT_FOUND')
})

t.test('a method weir does not forward gets the proxy JSON 404 and never reaches an upstream', async (t) => {
  const stable = await startUpstream('stable')
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: stable.url } }]))
  t.teardown(async () => { await proxy.close(); await stable.close() })
  // Forwarded methods are routed by the server's own listener; any other goes through fastify.
  const reply = await send(proxy.url + '/items', { method: 'PROPFIND' })
  t.equal(reply.status, 404)
  t.equal(reply.json().error, 'WEIR_ERR_ROUTE_NOT_FOUND')
  t.match(reply.json().requestId, /^[0-9a-f-]{36}$/, 'the reply names its request id')
  const ok = await send(proxy.url + '/items', { method: 'DELETE' })
  t.equal(ok.status, 200, 'a forwarded method on the same route reaches stable')
  t.same(stable.received.map((r) => r.method), ['DELETE'], 'the upstream saw only the forwarded request')
})

t.test('every routing decision is counted by route, version and reason', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 100 })
  await send(proxy.url + '/', { headers: { 'x-weir-version': 'green' } })
  await send(proxy.url + '/', { headers: { 'x-user-id': 'u1' } })
  await send(proxy.url + '/', { headers: { 'x-user-id': 'u2' } })
  const first = await send(proxy.url + '/')
  const cookie = String(first.headers['set-cookie']?.[0]).split(';')[0] as string
  await send(proxy.url + '/', { headers: { cookie } })
  const value = await decisionCounts(proxy, 'shop')
  t.equal(value('green', 'override'), 1)
  t.equal(value('stable', 'user'), 2)
  t.equal(value('stable', 'random'), 1)
  t.equal(value('stable', 'cookie'), 1)
  t.equal(value('canary', 'user'), 0, 'pre-bound children start at zero')
})
