// A real single-member etcd (Debian's etcd-server, /usr/bin/etcd) on loopback ports, with its
// data in a temp dir, for the fleet tests: stop() kills it (the outage), start() brings the same
// member back with its data. Teardown kills it by PID. With `tls`, clients must connect over TLS
// and present a certificate of a test CA (made with openssl); with `auth`, etcd's authentication
// is on and one user may read and write one prefix.

import type { Test } from 'tap'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { sleep } from './raw-http.ts'
import { closedPort } from './upstream.ts'

export const ETCD = '/usr/bin/etcd'

export interface TestEtcd {
  readonly url: string
  /** With `tls`: the files of the CA and of a client certificate it signed. */
  readonly tls?: { ca: string; cert: string; key: string }
  start (): Promise<void>
  stop (): Promise<void>
}

export interface EtcdOptions {
  tls?: boolean
  /** A user with read-write access to `prefix` only (root exists too, for the setup). */
  auth?: { username: string; password: string; prefix: string }
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by that CA. */
function makeCertificates (dir: string): { ca: string; caKey: string; server: string; serverKey: string; cert: string; key: string } {
  const f = (name: string): string => join(dir, name)
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'ignore' }) }
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=weir test CA', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'))
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n')
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n')
  for (const [name, ext] of [['server', 'server.ext'], ['client', 'client.ext']] as const) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=weir test ${name}`, '-keyout', f(`${name}-key.pem`), '-out', f(`${name}.csr`))
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-days', '2', '-extfile', f(ext), '-out', f(`${name}.pem`))
  }
  return { ca: f('ca.pem'), caKey: f('ca-key.pem'), server: f('server.pem'), serverKey: f('server-key.pem'), cert: f('client.pem'), key: f('client-key.pem') }
}

/** etcd's /health, over TLS with the client certificate when there is one. */
async function healthy (url: string, tls: { ca: string; cert: string; key: string } | undefined): Promise<boolean> {
  if (tls === undefined) {
    try {
      return (await fetch(`${url}/health`)).ok
    } catch {
      return false
    }
  }
  return await new Promise((resolve) => {
    const req = request(`${url}/health`, { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.end()
  })
}

export async function startEtcd (t: Test, options: EtcdOptions = {}): Promise<TestEtcd> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} is missing: install Debian's etcd-server (.ci/run does)`)
  const dir = mkdtempSync(join(tmpdir(), 'weir-etcd-'))
  const clientPort = await closedPort()
  let peerPort = await closedPort()
  while (peerPort === clientPort) peerPort = await closedPort()
  const certs = options.tls === true ? makeCertificates(dir) : null
  const tls = certs === null ? undefined : { ca: certs.ca, cert: certs.cert, key: certs.key }
  const url = `${certs === null ? 'http' : 'https'}://127.0.0.1:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  let child: ChildProcess | null = null
  let output = ''
  const start = async (): Promise<void> => {
    child = spawn(ETCD, [
      '--name', 'test', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`, '--log-level', 'error',
      ...(certs === null ? [] : ['--cert-file', certs.server, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth']),
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.on('data', (chunk: Buffer) => { if (output.length < 20_000) output += chunk.toString() })
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (await healthy(url, tls)) return
      if (child.exitCode !== null) break
      await sleep(50)
    }
    throw new Error(`etcd did not become healthy on ${url}:\n${output}`)
  }
  const stop = async (): Promise<void> => {
    const running = child
    if (running === null || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGKILL')
    await exited
  }
  // etcd preallocates its WAL (about 120 MB a data dir): the test's directory goes with it.
  t.teardown(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  await start()
  if (options.auth !== undefined) await enableAuth(url, tls, options.auth)
  return { url, ...(tls === undefined ? {} : { tls }), start, stop }
}

/** Creates root and one user allowed the prefix, then turns etcd's authentication on. */
async function enableAuth (url: string, tls: { ca: string; cert: string; key: string } | undefined, auth: { username: string; password: string; prefix: string }): Promise<void> {
  const client = new Etcd3({
    hosts: url,
    ...(tls === undefined ? {} : { credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.cert), privateKey: readFileSync(tls.key) } }),
  })
  try {
    await client.role('root').create()
    await client.user('root').create('root-password')
    await client.user('root').addRole('root')
    const role = await client.role('weir-fleet').create()
    await role.grant({ permission: 'Readwrite', range: client.range({ prefix: auth.prefix }) })
    await client.user(auth.username).create(auth.password)
    await client.user(auth.username).addRole('weir-fleet')
    await client.auth.authEnable({})
  } finally {
    client.close()
  }
}
