// Request targets and header counts (docs/proxying.md): an absolute-form target is routed and
// forwarded by its authority (RFC 9112 §3.2.2), in origin-form; a `..` segment is refused and a
// `..` inside a segment is not; a request with more header fields than maxHeaders gets 431.

import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { openSocket, readUntilClose, type RawResponse } from '../helpers/raw-http.ts'
import { startUpstreams } from '../helpers/upstream.ts'

/** Writes `head` (CRLF line ends added) on a fresh connection; the response, read until the server closes (at most 5 s). */
async function raw (port: number, lines: string[]): Promise<RawResponse | null> {
  const socket = await openSocket(port)
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  return readUntilClose(socket, 5000)
}

t.test('an absolute-form request is routed by its authority and reaches the upstream in origin-form', async (t) => {
  const [shop, other] = await startUpstreams(t, 'shop', 'other')
  const proxy = await startProxy(configDoc([
    { name: 'shop', match: { host: 'shop.example.com' }, upstreams: { stable: shop?.url } },
    { name: 'other', upstreams: { stable: other?.url } },
  ]))
  t.teardown(() => proxy.close())
  const reply = await raw(proxy.port, ['GET http://shop.example.com/x?y=1 HTTP/1.1', 'Host: other.example.com', 'Connection: close'])
  t.equal(reply?.status, 200, String(reply?.body))
  t.equal(reply?.headers['x-weir-version'], 'stable')
  t.equal(shop?.received.length, 1, 'the target\'s authority chose the route, not Host')
  t.equal(other?.received.length, 0)
  const seen = shop?.received[0]
  t.equal(seen?.url, '/x?y=1', 'origin-form upstream')
  t.equal(seen?.headers.host, 'shop.example.com', 'Host is the target\'s authority')
  t.equal(seen?.headers['x-forwarded-host'], 'shop.example.com')

  const secure = await raw(proxy.port, ['GET HTTPS://SHOP.example.com:8443 HTTP/1.1', 'Host: shop.example.com', 'Connection: close'])
  t.equal(secure?.status, 200, 'https, any case, a port and no path')
  t.equal(shop?.received[1]?.url, '/')
  t.equal(shop?.received[1]?.headers.host, 'SHOP.example.com:8443')

  const http10 = await raw(proxy.port, ['GET http://shop.example.com/old HTTP/1.0'])
  t.equal(http10?.status, 200, 'HTTP/1.0 without Host: the authority is the Host')
  t.equal(shop?.received[2]?.headers.host, 'shop.example.com')
  const noHost = await raw(proxy.port, ['GET http://shop.example.com/x HTTP/1.1', 'Connection: close'])
  t.equal(noHost?.status, 400, 'HTTP/1.1 without Host is refused, as RFC 9112 §3.2 requires even in absolute-form')
  t.equal(shop?.received.length, 3)
})

t.test('an absolute-form target with another scheme or with userinfo is refused with 400', async (t) => {
  const [up] = await startUpstreams(t, 'up')
  const proxy = await startProxy(configDoc([{ name: 'any', upstreams: { stable: up?.url } }]))
  t.teardown(() => proxy.close())
  for (const target of ['ftp://shop.example.com/x', 'ws://shop.example.com/x', 'http://user:pw@shop.example.com/x']) {
    const reply = await raw(proxy.port, [`GET ${target} HTTP/1.1`, 'Host: shop.example.com', 'Connection: close'])
    t.equal(reply?.status, 400, target)
    t.equal(JSON.parse(reply?.body ?? '{}').error, 'WEIR_ERR_BAD_REQUEST', target)
  }
  t.equal(up?.received.length, 0, 'none reached the upstream')
})

t.test('a .. segment is refused, a segment that merely contains .. is forwarded as it is', async (t) => {
  const [api, admin] = await startUpstreams(t, 'api', 'admin')
  const proxy = await startProxy(configDoc([
    { name: 'api', match: { pathPrefix: '/api/' }, upstreams: { stable: api?.url } },
    { name: 'admin', upstreams: { stable: admin?.url } },
  ]))
  t.teardown(() => proxy.close())
  for (const path of ['/api/a/..b', '/api/b..', '/api/v1/...', '/api/..well-known/x?q=/../']) {
    const reply = await raw(proxy.port, [`GET ${path} HTTP/1.1`, 'Host: h', 'Connection: close'])
    t.equal(reply?.status, 200, path)
    t.equal(api?.received.at(-1)?.url, path, `${path} forwarded unchanged`)
  }
  for (const path of ['/api/../admin', '/api/%2e%2e/admin', '/api/a\\..\\..\\admin', 'http://h/api/../admin']) {
    const reply = await raw(proxy.port, [`GET ${path} HTTP/1.1`, 'Host: h', 'Connection: close'])
    t.equal(reply?.status, 400, `${path}: refused, so it cannot leave the route's pathPrefix`)
  }
  t.equal(admin?.received.length, 0, 'nothing reached the other route\'s upstream')
})

/** A request head with `count` header fields in all (Host and Connection included). */
function withFields (count: number): string[] {
  return ['GET /h HTTP/1.1', 'Host: h', 'Connection: close', ...Array.from({ length: count - 2 }, (_, i) => `x-h${i}: v`)]
}

t.test('more header fields than maxHeaders (default 100) is refused with 431 WEIR_ERR_TOO_MANY_HEADERS', async (t) => {
  const [up] = await startUpstreams(t, 'up')
  const proxy = await startProxy(configDoc([{ name: 'any', upstreams: { stable: up?.url } }]))
  t.teardown(() => proxy.close())
  const atLimit = await raw(proxy.port, withFields(100))
  t.equal(atLimit?.status, 200, '100 fields pass')
  t.equal(up?.received[0]?.rawHeaders.filter((_, i) => i % 2 === 0 && /^x-h/.test(up.received[0]?.rawHeaders[i] ?? '')).length, 98, 'every one of them forwarded')
  const over = await raw(proxy.port, withFields(101))
  t.equal(over?.status, 431)
  t.equal(JSON.parse(over?.body ?? '{}').error, 'WEIR_ERR_TOO_MANY_HEADERS')
  t.equal(over?.headers.connection, 'close')
  t.equal(over?.headers['x-weir-version'], undefined, 'refused before routing')
  t.equal(up?.received.length, 1, 'the upstream never saw it')
})

t.test('a maxHeaders above Node\'s own cap of 2000 is counted for real', async (t) => {
  // An upstream that takes big heads and keeps every field (Node's defaults: 16 KiB, 2000 fields).
  const fields: number[] = []
  const big = createServer({ maxHeaderSize: 131072 }, (req, res) => {
    fields.push(req.rawHeaders.length / 2)
    res.end('{}')
  })
  big.maxHeadersCount = 0
  await new Promise<void>((resolve) => big.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { big.closeAllConnections(); big.close(() => resolve()) }))
  const upstream = `http://127.0.0.1:${(big.address() as AddressInfo).port}`
  const proxy = await startProxy(configDoc([{ name: 'any', upstreams: { stable: upstream } }], { maxHeaders: 2500, maxHeaderBytes: 131072 }))
  t.teardown(() => proxy.close())
  t.equal((await raw(proxy.port, withFields(2500)))?.status, 200, '2500 fields pass')
  t.ok((fields[0] ?? 0) >= 2500, `and all of them reach the upstream (${fields[0]} with weir's own)`)
  const over = await raw(proxy.port, withFields(2600))
  t.equal(over?.status, 431, '2600 are refused, not cut to what Node keeps by default')
  t.equal(JSON.parse(over?.body ?? '{}').error, 'WEIR_ERR_TOO_MANY_HEADERS')
  const small = await startProxy(configDoc([{ name: 'any', upstreams: { stable: upstream } }], { maxHeaders: 5 }))
  t.teardown(() => small.close())
  t.equal((await raw(small.port, withFields(5)))?.status, 200)
  t.equal((await raw(small.port, withFields(6)))?.status, 431, 'maxHeaders: 5')
})
