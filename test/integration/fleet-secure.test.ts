// A fleet on an etcd that requires TLS with client certificates and authentication: replicas
// with the right certificate and password share their state; a wrong password, a missing client
// certificate or a prefix the user may not touch stop the start with a clear error naming etcd.

import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { startEtcd, type TestEtcd } from '../helpers/etcd.ts'
import { send } from '../helpers/http.ts'
import { sleep } from '../helpers/raw-http.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { exitWithin, runWeir, serveWeir, tempDir } from '../helpers/weir-process.ts'

const AUTH = { username: 'weir', password: 'weir-test-password', prefix: '/weir-secure/' }

/** A replica's config on the secure etcd; `etcd` lines replace the default credentials. */
function configFile (dir: string, id: string, etcd: TestEtcd, upstreams: { stable: string; canary: string }, credentials?: string, prefix = AUTH.prefix): string {
  const tls = etcd.tls as { ca: string; cert: string; key: string }
  const file = join(dir, `${id}.yaml`)
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
state:
  file: ${join(dir, id, 'state.json')}
  etcd:
    endpoints: [${etcd.url}]
    prefix: ${prefix}
    timeout: 2s
${credentials ?? `    username: ${AUTH.username}
    password: \${ETCD_PASSWORD}
    tls: { ca: ${tls.ca}, cert: ${tls.cert}, key: ${tls.key} }`}
fleet: { id: ${id} }
cookieSecret: fleet-secure-test-secret
logLevel: info
workers: 1
routes:
  - name: app
    upstreams: { stable: ${upstreams.stable}, canary: ${upstreams.canary} }
    weights: { stable: 100, canary: 0 }
    stickiness: { userId: { header: x-user-id } }
`)
  return file
}

async function startFailure (t: Test, file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const weir = runWeir(t, ['serve', '--config', file], env)
  const exit = await exitWithin(weir, 20_000)
  return { code: exit?.code ?? null, output: weir.output() }
}

t.test('etcd with TLS client certificates and authentication', async (t) => {
  const etcd = await startEtcd(t, { tls: true, auth: AUTH })
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const upstreams = { stable: stable?.url ?? '', canary: canary?.url ?? '' }
  const dir = tempDir()
  const env = { ...process.env, ETCD_PASSWORD: AUTH.password }
  const tls = etcd.tls as { ca: string; cert: string; key: string }

  await t.test('replicas with the certificate and the password share their state', async (t) => {
    const [a, b] = await Promise.all(['secure-1', 'secure-2'].map((id) => serveWeir(t, configFile(dir, id, etcd, upstreams), env)))
    if (a === undefined || b === undefined) throw new Error('two replicas')
    const reply = await adminClient(a.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 0, canary: 100 })
    t.equal(reply.status, 200, reply.body)
    const deadline = Date.now() + 5000
    let version = ''
    while (Date.now() < deadline && version !== 'canary') {
      version = String((await send(b.url + '/', { headers: { 'x-user-id': 'u1' } })).headers['x-weir-version'])
      if (version !== 'canary') await sleep(20)
    }
    t.equal(version, 'canary', 'the other replica follows the write')
    let members = 0
    let leader: string | null = null
    const listed = Date.now() + 5000
    while (Date.now() < listed && (members < 2 || leader === null)) {
      const fleet = (await adminClient(b.adminUrl).get('/api/v1/fleet')).json<{ leader: string | null; members: unknown[] }>()
      members = fleet.members.length
      leader = fleet.leader
      if (members < 2 || leader === null) await sleep(100)
    }
    t.equal(members, 2, 'both registered (keys under a lease work with auth)')
    t.ok(leader === 'secure-1' || leader === 'secure-2', `and one leads (${leader})`)
  })

  await t.test('a wrong password stops the start, naming etcd', async (t) => {
    const result = await startFailure(t, configFile(dir, 'bad-password', etcd, upstreams), { ...env, ETCD_PASSWORD: 'not-the-password' })
    t.equal(result.code, 1, 'exit 1')
    t.match(result.output, /WEIR_ERR_STATE_UNAVAILABLE/)
    t.match(result.output, new RegExp(`etcd \\(${etcd.url.replaceAll('.', '\\.')}\\) refused .*authentication failed`), result.output.slice(0, 600))
  })

  await t.test('without a client certificate the start stops, naming etcd', async (t) => {
    const result = await startFailure(t, configFile(dir, 'no-cert', etcd, upstreams, `    username: ${AUTH.username}
    password: \${ETCD_PASSWORD}
    tls: { ca: ${tls.ca} }`), env)
    t.equal(result.code, 1, 'exit 1')
    t.match(result.output, /WEIR_ERR_STATE_UNAVAILABLE/)
    t.match(result.output, new RegExp(`etcd \\(${etcd.url.replaceAll('.', '\\.')}\\) did not answer`), result.output.slice(0, 600))
  })

  await t.test('a prefix the user may not read stops the start, naming etcd', async (t) => {
    const result = await startFailure(t, configFile(dir, 'other-prefix', etcd, upstreams, undefined, '/somebody-else/'), env)
    t.equal(result.code, 1, 'exit 1')
    t.match(result.output, /WEIR_ERR_STATE_UNAVAILABLE/)
    t.match(result.output, /refused .*permission denied/, result.output.slice(0, 600))
  })
})
