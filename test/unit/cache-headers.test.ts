// The response headers that keep shared caches from storing one client's bucket
// (src/proxy/cache-headers.ts): Cache-Control merged to private, Vary merged.

import t from 'tap'
import { cacheDirectives, mergeVary, privateCacheControl } from '../../src/proxy/cache-headers.ts'

t.test('Cache-Control becomes private, keeping what a browser may do and dropping what lets a shared cache store', async (t) => {
  t.equal(privateCacheControl(undefined), 'private')
  t.equal(privateCacheControl('public, max-age=600'), 'private, max-age=600')
  t.equal(privateCacheControl('max-age=60, S-MaxAge=600, must-revalidate'), 'private, max-age=60, must-revalidate')
  t.equal(privateCacheControl('Private, max-age=60'), 'private, max-age=60', 'private kept, once')
  t.equal(privateCacheControl('no-store'), 'no-store', 'no-store is enough')
  t.equal(privateCacheControl('public, no-store'), 'no-store')
  t.equal(privateCacheControl('private="set-cookie, x-a", max-age=60'), 'private, max-age=60', 'a qualified private (lets a shared cache store the rest) made unqualified')
  t.equal(privateCacheControl(['public', 'max-age=5']), 'private, max-age=5', 'several header lines')
  t.equal(privateCacheControl('no-cache="set-cookie", max-age=5'), 'private, no-cache="set-cookie", max-age=5')
})

t.test('directives split at commas outside quoted strings', async (t) => {
  t.same(cacheDirectives('a, b="x, y", c'), ['a', 'b="x, y"', 'c'])
  t.same(cacheDirectives('a="q\\"x,", b'), ['a="q\\"x,"', 'b'])
  t.same(cacheDirectives(' , ,a'), ['a'])
})

t.test('Vary is merged, each name once, * kept', async (t) => {
  t.equal(mergeVary(undefined, 'Cookie, x-user-id'), 'Cookie, x-user-id')
  t.equal(mergeVary('Accept-Encoding', 'Cookie, x-user-id'), 'Accept-Encoding, Cookie, x-user-id')
  t.equal(mergeVary('cookie, Accept-Encoding', 'Cookie, x-user-id'), 'cookie, Accept-Encoding, x-user-id')
  t.equal(mergeVary('*', 'Cookie'), '*')
  t.equal(mergeVary(['Accept', 'Origin'], 'Cookie'), 'Accept, Origin, Cookie')
})
