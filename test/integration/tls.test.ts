// HTTPS on both sides: upstream certificates are verified unless a route opts out, and weir
// can serve HTTPS itself (then the bucket cookie is Secure).

import t from 'tap'
import { createServer } from 'node:https'
import { request } from 'node:https'
import type { AddressInfo } from 'node:net'
import { makeCert } from '../helpers/tls.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'

const cert = makeCert()

async function httpsUpstream (): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.end('{"version":"secure"}'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

t.test('an https upstream with an unknown certificate is refused with 502 WEIR_ERR_UPSTREAM_TLS', async (t) => {
  const up = await httpsUpstream()
  const proxy = await startProxy(configDoc([{ name: 's', upstreams: { stable: up.url } }]))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const reply = await send(proxy.url + '/')
  t.equal(reply.status, 502)
  t.equal(reply.json().error, 'WEIR_ERR_UPSTREAM_TLS')
})

t.test('tls.ca trusts the upstream; tls.insecureSkipVerify skips the check', async (t) => {
  const up = await httpsUpstream()
  const withCa = await startProxy(configDoc([{ name: 's', upstreams: { stable: up.url }, tls: { ca: cert.certFile } }]))
  const skip = await startProxy(configDoc([{ name: 's', upstreams: { stable: up.url }, tls: { insecureSkipVerify: true } }]))
  t.teardown(async () => { await withCa.close(); await skip.close(); await up.close() })
  t.equal((await send(withCa.url + '/')).body, '{"version":"secure"}')
  t.equal((await send(skip.url + '/')).body, '{"version":"secure"}')
})

t.test('weir serving HTTPS sets a Secure bucket cookie and tells the upstream the proto was https', async (t) => {
  const { startUpstream } = await import('../helpers/upstream.ts')
  const up = await startUpstream('plain')
  const proxy = await startProxy(configDoc([{ name: 's', upstreams: { stable: up.url } }], {
    listen: { host: '127.0.0.1', port: 0, tls: { cert: cert.certFile, key: cert.keyFile } },
  }))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    const req = request(`https://127.0.0.1:${proxy.port}/`, { ca: cert.cert, agent: false }, resolve)
    req.on('error', reject)
    req.end()
  })
  res.resume()
  t.equal(res.statusCode, 200)
  t.match(String(res.headers['set-cookie']), /; Secure/)
  t.equal(up.received[0]?.headers['x-forwarded-proto'], 'https')
})
