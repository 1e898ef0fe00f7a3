// Absolute-form request targets (src/proxy/request-target.ts, RFC 9112 §3.2.2): the authority
// becomes Host and the upstream gets origin-form; other schemes and userinfo are refused.

import t from 'tap'
import { originFormOf } from '../../src/proxy/request-target.ts'

t.test('an http(s) target splits into its authority and its origin-form path', async (t) => {
  t.same(originFormOf('http://shop.example.com/x'), { host: 'shop.example.com', path: '/x' })
  t.same(originFormOf('HTTPS://Shop.Example.com:8443/a/b?c=d'), { host: 'Shop.Example.com:8443', path: '/a/b?c=d' })
  t.same(originFormOf('http://shop.example.com'), { host: 'shop.example.com', path: '/' }, 'an empty path is /')
  t.same(originFormOf('http://shop.example.com?q=1'), { host: 'shop.example.com', path: '/?q=1' })
  t.same(originFormOf('http://[::1]:8080/x'), { host: '[::1]:8080', path: '/x' })
  t.same(originFormOf('http://10.0.0.1/x#frag'), { host: '10.0.0.1', path: '/x' }, 'a fragment is not sent')
  t.same(originFormOf('http://h/a/../b'), { host: 'h', path: '/a/../b' }, 'dot segments are left for upstreamPath to refuse, not resolved')
})

t.test('other schemes, an empty authority and userinfo are refused', async (t) => {
  for (const target of ['ftp://x/y', 'ws://x/y', 'file:///etc/passwd', 'http:///x', 'http://', 'http://user:pw@x/y', 'http://user@x/', 'http://a b/', 'mailto:a@b']) {
    t.equal(originFormOf(target), null, target)
  }
})
