// The path weir sends upstream (src/proxy/forward.ts upstreamPath): the client's as it is,
// unless it has a dot segment: `.` segments are resolved, a `..` segment (literal or
// percent-encoded, between slashes or backslashes) is refused so no path climbs above the
// upstream's root or out of a route's pathPrefix; dots inside a segment are a name.

import t from 'tap'
import { upstreamPath } from '../../src/proxy/forward.ts'

t.test('ordinary paths and queries pass unchanged, dots inside names included', async (t) => {
  for (const path of ['/', '/a/b', '/a/b?x=1&y=%20', '/file.tar.gz', '/a.b/c.d', '/a/b.../c', '/a%20b', '//double/slash', '/x?next=/../y']) {
    t.equal(upstreamPath(path), path, path)
  }
})

t.test('a segment that merely contains .. is a name, not a dot segment', async (t) => {
  for (const path of ['/a/..b', '/a/b..', '/a/...b', '/..a/b', '/a/b../c', '/a/%2e%2eb', '/v1/..well-known', '/a/b..?q=../x']) {
    t.equal(upstreamPath(path), path, path)
  }
  t.equal(upstreamPath('/a/..b/./c'), '/a/..b/c', '. segments around it are still resolved')
})

t.test('. segments are resolved, the query kept', async (t) => {
  t.equal(upstreamPath('/x/./y'), '/x/y')
  t.equal(upstreamPath('/x/.'), '/x/')
  t.equal(upstreamPath('/./a?q=./b'), '/a?q=./b')
})

t.test('a .. segment is refused, literal or percent-encoded, between / or \\; so is broken percent-encoding', async (t) => {
  for (const path of ['/..', '/a/../b', '/a/..', '/api/../admin', '/%2e%2e/secret', '/a/%2E%2E/b', '/a/.%2e/b', '/a%2f..%2fb',
    '/a\\..\\b', '/a/..\\b', '/a%5c..%5cb', '/a%zz']) {
    t.equal(upstreamPath(path), null, path)
  }
})
