// Caches in front of weir (docs/proxying.md, "Caches"): a response that sets the bucket cookie
// is one client's, so no shared cache may store it, whatever the upstream allowed; every
// response of a route with versions to choose between names in Vary what the choice reads.

import t, { type Test } from 'tap'
import type { IncomingHttpHeaders } from 'node:http'
import { send } from '../helpers/http.ts'
import { mayStore, parseCacheControl, varyNames } from '../helpers/http-cache.ts'
import { configDoc, startProxy, type RouteDoc } from '../helpers/proxy.ts'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'

async function proxyWith (t: Test, route: Omit<RouteDoc, 'name'>): Promise<string> {
  const proxy = await startProxy(configDoc([{ name: 'shop', ...route }]))
  t.teardown(() => proxy.close())
  return proxy.url
}

/** Answers every request with these response headers (200, a small JSON body). */
function answerWith (upstreams: Upstream[], headers: Record<string, string>): void {
  for (const u of upstreams) {
    u.handle((_req, res) => {
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
      res.setHeader('content-type', 'application/json')
      res.end('{"ok":true}')
    })
  }
}

const setsBucketCookie = (headers: IncomingHttpHeaders): boolean => (headers['set-cookie'] ?? []).some((c) => c.startsWith('weir_b='))

t.test('the cookie-setting response is not storable by a shared cache, whatever the upstream allowed; a browser keeps its lifetime', async (t) => {
  const ups = await startUpstreams(t, 'stable', 'canary')
  const url = await proxyWith(t, { upstreams: { stable: ups[0]?.url, canary: ups[1]?.url }, weights: { stable: 50, canary: 50 } })
  const cases: [string, Record<string, string>, string | null][] = [
    ['no Cache-Control (heuristically cacheable 200)', {}, null],
    ['public, max-age=600', { 'cache-control': 'public, max-age=600' }, '600'],
    ['s-maxage=600, max-age=60', { 'cache-control': 's-maxage=600, max-age=60' }, '60'],
    ['public, s-maxage=3600 and Expires', { 'cache-control': 'public, s-maxage=3600', expires: new Date(Date.now() + 3_600_000).toUTCString() }, null],
    ['a qualified private="set-cookie"', { 'cache-control': 'private="set-cookie", max-age=60' }, '60'],
    ['CDN-only headers (CDN-Cache-Control, Surrogate-Control)', { 'cdn-cache-control': 'max-age=600', 'surrogate-control': 'max-age=600', 'cloudflare-cdn-cache-control': 'max-age=600' }, null],
  ]
  for (const [label, headers, maxAge] of cases) {
    answerWith(ups, headers)
    const reply = await send(url + '/')
    t.equal(reply.status, 200, label)
    t.ok(setsBucketCookie(reply.headers), `${label}: the response sets the bucket cookie`)
    t.notOk(mayStore('shared', reply.status, reply.headers), `${label}: a shared cache may not store it (Cache-Control: ${String(reply.headers['cache-control'])})`)
    const cc = parseCacheControl(reply.headers['cache-control'])
    t.notOk(cc.has('public') || cc.has('s-maxage'), `${label}: nothing left that a shared cache could read as leave to store`)
    if (maxAge !== null) {
      t.equal(cc.get('max-age'), maxAge, `${label}: the upstream's max-age is kept for the browser`)
      t.ok(mayStore('private', reply.status, reply.headers), `${label}: a browser may still store it`)
    }
    for (const name of ['cdn-cache-control', 'surrogate-control', 'cloudflare-cdn-cache-control']) t.equal(reply.headers[name], undefined, `${label}: no ${name}`)
  }
  answerWith(ups, { 'cache-control': 'no-store' })
  const noStore = await send(url + '/')
  t.equal(noStore.headers['cache-control'], 'no-store', 'an upstream no-store is kept as it is')
  t.notOk(mayStore('private', noStore.status, noStore.headers), 'and no cache stores it')
})

t.test('a response that sets no cookie keeps the upstream\'s Cache-Control, and varies on Cookie', async (t) => {
  const ups = await startUpstreams(t, 'stable', 'canary')
  const url = await proxyWith(t, { upstreams: { stable: ups[0]?.url, canary: ups[1]?.url }, weights: { stable: 50, canary: 50 } })
  answerWith(ups, { 'cache-control': 'public, max-age=600' })
  const first = await send(url + '/')
  const cookie = (first.headers['set-cookie']?.[0] ?? '').split(';')[0] as string
  const again = await send(url + '/', { headers: { cookie } })
  t.notOk(setsBucketCookie(again.headers), 'routed by its cookie, no new one')
  t.equal(again.headers['cache-control'], 'public, max-age=600', 'the upstream\'s directives untouched')
  t.same(varyNames(again.headers), ['cookie'], 'Vary: Cookie, as the version depends on it')
  t.same(varyNames(first.headers), ['cookie'], 'the cookie-setting response too')
})

t.test('Vary names what the route\'s choice reads, merged with the upstream\'s; vary: false and one-version routes add none', async (t) => {
  const ups = await startUpstreams(t, 'stable', 'canary')
  const url = await proxyWith(t, {
    upstreams: { stable: ups[0]?.url, canary: ups[1]?.url },
    weights: { stable: 50, canary: 50 },
    stickiness: { userId: { header: 'X-User-Id' } },
    override: { header: 'x-weir-version' },
    rules: [{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'canary' }],
  })
  answerWith(ups, { vary: 'Accept-Encoding' })
  const reply = await send(url + '/', { headers: { 'x-user-id': 'u1' } })
  t.same(varyNames(reply.headers), ['accept-encoding', 'cookie', 'x-user-id', 'x-weir-version', 'x-beta'], String(reply.headers.vary))
  answerWith(ups, { vary: '*' })
  t.same(varyNames((await send(url + '/', { headers: { 'x-user-id': 'u1' } })).headers), ['*'], 'Vary: * stays *')
  answerWith(ups, { vary: 'cookie, X-User-Id' })
  t.same(varyNames((await send(url + '/', { headers: { 'x-user-id': 'u1' } })).headers), ['cookie', 'x-user-id', 'x-weir-version', 'x-beta'], 'each name once')

  const off = await proxyWith(t, { upstreams: { stable: ups[0]?.url, canary: ups[1]?.url }, weights: { stable: 50, canary: 50 }, vary: false })
  answerWith(ups, {})
  const plain = await send(off + '/')
  t.equal(plain.headers.vary, undefined, 'vary: false adds none')
  t.notOk(mayStore('shared', plain.status, plain.headers), 'but a cookie-setting response is still private')
  const single = await proxyWith(t, { upstreams: { stable: ups[0]?.url } })
  t.equal((await send(single + '/')).headers.vary, undefined, 'a route with only stable has nothing to vary on')
})
