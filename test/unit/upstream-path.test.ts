// The path weir sends upstream (src/proxy/forward.ts upstreamPath): the client's as it is,
// unless it has a dot segment: `.` segments are resolved, a `..` segment (literal or
// percent-encoded) is refused so no path climbs above the upstream's root.

import t from 'tap'
import { upstreamPath } from '../../src/proxy/forward.ts'

t.test('ordinary paths and queries pass unchanged, dots inside names included', async (t) => {
  for (const path of ['/', '/a/b', '/a/b?x=1&y=%20', '/file.tar.gz', '/a.b/c.d', '/a/b.../c', '/a%20b', '//double/slash', '/x?next=/../y']) {
    t.equal(upstreamPath(path), path, path)
  }
})

t.test('. segments are resolved, the query kept', async (t) => {
  t.equal(upstreamPath('/x/./y'), '/x/y')
  t.equal(upstreamPath('/x/.'), '/x/')
  t.equal(upstreamPath('/./a?q=./b'), '/a?q=./b')
})

t.test('a .. segment is refused, literal or percent-encoded; so is broken percent-encoding', async (t) => {
  // As before the rewrite (reply-from's rule): any "/.." is refused, "/a/...b" included.
  for (const path of ['/..', '/a/../b', '/a/..', '/%2e%2e/secret', '/a/%2E%2E/b', '/a/.%2e/b', '/a/...b', '/a%zz']) {
    t.equal(upstreamPath(path), null, path)
  }
})
