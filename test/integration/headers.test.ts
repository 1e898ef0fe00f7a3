// Which headers cross the proxy: hop-by-hop never (either way), forwarding headers added and
// never trusted from an untrusted client.

import t from 'tap'
import { connect } from 'node:net'
import { startUpstream } from '../helpers/upstream.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'

/** Sends a raw HTTP/1.1 request so no client library adds or drops headers; resolves with the raw response head. */
function rawRequest (port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head))
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      data += chunk
      if (data.includes('\r\n\r\n')) {
        socket.destroy()
        resolve(data.slice(0, data.indexOf('\r\n\r\n')))
      }
    })
    socket.on('error', reject)
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('timeout')) })
  })
}

t.test('hop-by-hop request headers never reach the upstream', async (t) => {
  const up = await startUpstream('u')
  const proxy = await startProxy(configDoc([{ name: 'h', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  await rawRequest(proxy.port, 'GET /p HTTP/1.1\r\nHost: h.test\r\n' +
    'Connection: keep-alive, X-Listed\r\nX-Listed: secret\r\nKeep-Alive: timeout=99\r\nProxy-Connection: keep-alive\r\n' +
    'TE: trailers, deflate\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Weir-Shadow: 1\r\nX-Kept: yes\r\n\r\n')
  const seen = up.received[0]
  t.ok(seen, 'the upstream got the request')
  const names = (seen?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
  for (const name of ['x-listed', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'x-weir-shadow']) {
    t.notOk(names.includes(name), `${name} was stripped`)
  }
  t.notMatch(String(seen?.headers.connection), /x-listed/i, 'the Connection header is the proxy\'s own')
  t.equal(seen?.headers['x-kept'], 'yes', 'end-to-end headers pass')
})

t.test('hop-by-hop response headers never reach the client', async (t) => {
  const up = await startUpstream('u')
  up.handle((_req, res) => {
    res.setHeader('Connection', 'keep-alive, X-Private')
    res.setHeader('X-Private', 'hidden')
    res.setHeader('Keep-Alive', 'timeout=99')
    res.setHeader('Proxy-Connection', 'keep-alive')
    res.setHeader('Trailer', 'X-T')
    res.setHeader('Upgrade', 'foo')
    res.setHeader('TE', 'trailers')
    res.setHeader('X-Public', 'shown')
    res.end('ok')
  })
  const proxy = await startProxy(configDoc([{ name: 'h', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const head = (await rawRequest(proxy.port, 'GET / HTTP/1.1\r\nHost: h.test\r\n\r\n')).toLowerCase()
  t.notMatch(head, /x-private/, 'a header the upstream listed in Connection is dropped')
  t.notMatch(head, /timeout=99/, 'the upstream Keep-Alive is dropped')
  t.notMatch(head, /proxy-connection|\ntrailer:|\nupgrade:|\nte:/, 'Proxy-Connection, Trailer, Upgrade and TE are dropped')
  t.match(head, /x-public: shown/, 'end-to-end headers pass')
})

t.test('a spoofed X-Forwarded-For from an untrusted client is replaced; a trusted hop is appended to', async (t) => {
  const up = await startUpstream('u')
  const spoof = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6', via: '1.1 edge' }
  const untrusted = await startProxy(configDoc([{ name: 'h', upstreams: { stable: up.url } }]))
  const trusted = await startProxy(configDoc([{ name: 'h', upstreams: { stable: up.url } }], { trustedProxies: ['127.0.0.0/8'] }))
  t.teardown(async () => { await untrusted.close(); await trusted.close(); await up.close() })

  await send(untrusted.url + '/', { headers: { host: 'shop.test', ...spoof } })
  const a = up.received[0]?.headers
  t.equal(a?.['x-forwarded-for'], '127.0.0.1', 'replaced by the peer address')
  t.equal(a?.['x-forwarded-proto'], 'http', 'replaced by what the client really used')
  t.equal(a?.['x-forwarded-host'], 'shop.test', 'replaced by the Host header')
  t.equal(a?.forwarded, undefined, 'an untrusted Forwarded header is dropped')
  t.equal(a?.via, '1.1 edge, 1.1 weir', 'Via is appended to')
  t.equal(a?.host, 'shop.test', 'the client Host is passed by default')
  t.equal(a?.['x-weir-version'], 'stable')

  await send(trusted.url + '/', { headers: { host: 'shop.test', ...spoof } })
  const b = up.received[1]?.headers
  t.equal(b?.['x-forwarded-for'], '6.6.6.6, 127.0.0.1', 'a trusted hop\'s chain is extended')
  t.equal(b?.['x-forwarded-proto'], 'https', 'a trusted hop\'s proto is kept')
  t.equal(b?.['x-forwarded-host'], 'evil.test', 'a trusted hop\'s host is kept')
})

t.test('passHost: false sends the upstream its own host name', async (t) => {
  const up = await startUpstream('u')
  const proxy = await startProxy(configDoc([{ name: 'h', passHost: false, upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  await send(proxy.url + '/', { headers: { host: 'shop.test' } })
  t.equal(up.received[0]?.headers.host, `127.0.0.1:${up.port}`)
})

t.test('the response version header can be renamed or disabled', async (t) => {
  const up = await startUpstream('u')
  const renamed = await startProxy(configDoc([{ name: 'h', upstreams: { stable: up.url } }], { versionHeader: 'x-served-by' }))
  const off = await startProxy(configDoc([{ name: 'h', upstreams: { stable: up.url } }], { versionHeader: false }))
  t.teardown(async () => { await renamed.close(); await off.close(); await up.close() })
  const a = await send(renamed.url + '/')
  t.equal(a.headers['x-served-by'], 'stable')
  t.equal(a.headers['x-weir-version'], undefined)
  const b = await send(off.url + '/')
  t.equal(b.headers['x-weir-version'], undefined)
  t.equal(up.received[1]?.headers['x-weir-version'], 'stable', 'the upstream is told its version either way')
})

t.test('a version with several upstreams balances round-robin across them', async (t) => {
  const ups = [await startUpstream('one'), await startUpstream('two'), await startUpstream('three')]
  const pair = await startProxy(configDoc([{ name: 'rr', upstreams: { stable: ups.slice(0, 2).map((u) => u.url) } }]))
  const trio = await startProxy(configDoc([{ name: 'rr', upstreams: { stable: ups.map((u) => u.url) } }]))
  t.teardown(async () => { await pair.close(); await trio.close(); for (const u of ups) await u.close() })
  const order = async (url: string, n: number): Promise<string[]> => {
    const seen: string[] = []
    for (let i = 0; i < n; i++) seen.push(String((await send(url + '/')).json().version))
    return seen
  }
  t.same(await order(pair.url, 4), ['one', 'two', 'one', 'two'], 'two upstreams alternate')
  t.same(await order(trio.url, 6), ['one', 'two', 'three', 'one', 'two', 'three'], 'three upstreams take turns')
})
