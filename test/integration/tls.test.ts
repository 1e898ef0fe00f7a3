// HTTPS on both sides: upstream certificates are verified unless a route opts out, and weir
// can serve HTTPS itself (then the bucket cookie is Secure).

import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { Agent, createServer, request } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import { makeCert, type TestCert } from '../helpers/tls.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'
import { startUpstream } from '../helpers/upstream.ts'
import { exitWithin, serveWeir, tempDir, waitForOutput, yamlConfig } from '../helpers/weir-process.ts'

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
  const up = await startUpstream('plain')
  const proxy = await startProxy(configDoc([{ name: 's', upstreams: { stable: up.url } }], {
    listen: { host: '127.0.0.1', port: 0, tls: { cert: cert.certFile, key: cert.keyFile } },
  }))
  t.teardown(async () => { await proxy.close(); await up.close() })
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`https://127.0.0.1:${proxy.port}/`, { ca: cert.cert, agent: false }, resolve)
    req.on('error', reject)
    req.end()
  })
  res.resume()
  t.equal(res.statusCode, 200)
  t.match(String(res.headers['set-cookie']), /; Secure/)
  t.equal(up.received[0]?.headers['x-forwarded-proto'], 'https')
})

t.test('SIGHUP puts a renewed certificate in force for new connections, keeps open ones, and refuses a key that does not match', async (t) => {
  const [first, renewed, elsewhere] = [makeCert(), makeCert(), makeCert()] as [TestCert, TestCert, TestCert]
  const fingerprint = (cert: TestCert): string => new X509Certificate(cert.cert).fingerprint256
  const ca = [first.cert, renewed.cert, elsewhere.cert]
  const up = await startUpstream('stable')
  const dir = tempDir()
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }
  const install = (cert: Buffer, key: Buffer): void => { writeFileSync(files.cert, cert); writeFileSync(files.key, key) }
  const file = join(dir, 'weir.yaml')
  const writeConfig = (tls: { cert: string; key: string } | undefined): void => {
    const listen = tls === undefined ? '' : `, tls: { cert: ${tls.cert}, key: ${tls.key} }`
    // The open connection must outlive every reload below, however slow the machine.
    writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${up.url} }`, 'timeouts: { clientIdle: 60s }\n')
      .replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: 0${listen} }`))
  }
  install(first.cert, first.key)
  writeConfig(files)
  const { weir, port } = await serveWeir(t, file)
  t.match(weir.output(), `"workers":${process.env.WEIR_TEST_WORKERS ?? 1}`, 'the data path runs in as many processes as the suite asks')
  const kept = new Agent({ keepAlive: true, maxSockets: 1, ca })
  t.teardown(async () => { kept.destroy(); await up.close() })

  /** A request on the kept-alive connection: whether it reused it, and the certificate that connection was made with. */
  const onKeptConnection = (): Promise<{ status: number | undefined; reused: boolean; fingerprint: string }> => new Promise((resolve, reject) => {
    const req = request(`https://127.0.0.1:${port}/`, { agent: kept, timeout: 5000 }, (res) => {
      // Read now: the socket leaves the response for the agent's pool once the body ends.
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket, fingerprint }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')))
    req.on('error', reject)
    req.end()
  })
  /** The certificates new connections are served, one per connection (several, to reach every worker). */
  const newConnections = async (count = 4): Promise<string[]> => {
    const seen: string[] = []
    for (let i = 0; i < count; i++) {
      seen.push(await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca, timeout: 5000 }, () => {
          resolve(socket.getPeerCertificate().fingerprint256)
          socket.end()
        })
        socket.on('timeout', () => socket.destroy(new Error('no handshake within 5 s')))
        socket.on('error', reject)
      }))
    }
    return seen
  }
  const count = (pattern: RegExp): number => weir.output().match(pattern)?.length ?? 0
  const reload = async (pattern: RegExp): Promise<void> => {
    const before = count(pattern)
    weir.child.kill('SIGHUP')
    await waitForOutput(weir, new RegExp(`(${pattern.source}[^]*){${before + 1}}`), 10_000)
  }
  const reloaded = /SIGHUP: config reloaded/g
  const refused = /SIGHUP: reload failed/g

  const before = await onKeptConnection()
  t.same(before, { status: 200, reused: false, fingerprint: fingerprint(first) }, 'the kept connection is served the first certificate')

  install(renewed.cert, renewed.key)
  await reload(reloaded)
  t.same(await newConnections(), Array(4).fill(fingerprint(renewed)), 'after SIGHUP new connections are served the renewed certificate')
  t.same(await onKeptConnection(), { status: 200, reused: true, fingerprint: fingerprint(first) }, 'the connection opened before the reload still answers, on its own certificate')

  install(elsewhere.cert, first.key)
  await reload(refused)
  const line = weir.output().split('\n').find((l) => l.includes('SIGHUP: reload failed')) ?? ''
  t.match(line, /listen\.tls: the certificate .* cannot be used: .*key values mismatch/, 'the refusal names the files and the mismatch')
  t.same(await newConnections(), Array(4).fill(fingerprint(renewed)), 'a key that does not match its certificate leaves the running one served')
  t.equal(count(reloaded), 1, 'that reload was not applied')

  writeConfig({ cert: elsewhere.certFile, key: elsewhere.keyFile })
  await reload(reloaded)
  t.same(await newConnections(), Array(4).fill(fingerprint(elsewhere)), 'a reload that names other files serves their certificate')

  writeConfig(undefined)
  await reload(reloaded)
  t.match(weir.output(), /SIGHUP: listen\.tls removed: takes effect after a restart/, 'removing listen.tls warns that it takes a restart')
  t.same(await newConnections(1), [fingerprint(elsewhere)], 'and the listener keeps serving HTTPS')
  t.same(await onKeptConnection(), { status: 200, reused: true, fingerprint: fingerprint(first) }, 'the first connection lived through every reload')

  weir.child.kill('SIGTERM')
  t.equal((await exitWithin(weir, 10_000))?.code, 0, 'weir exits 0 on SIGTERM')
})
