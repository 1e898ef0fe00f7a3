// The admin API on the real process: weights set through it survive `kill -9`, a corrupt state
// file stops the start with a message that says what to do, and a non-loopback admin address
// without a token is refused before anything listens.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startUpstream } from '../helpers/upstream.ts'
import { send } from '../helpers/http.ts'
import { adminClient } from '../helpers/admin.ts'
import { exitWithin, runWeir, serveWeir, tempDir, yamlConfig } from '../helpers/weir-process.ts'

t.test('weights set through the API are in force again after kill -9 and a restart', async (t) => {
  const stable = await startUpstream('stable')
  const canary = await startUpstream('canary')
  t.teardown(async () => { await stable.close(); await canary.close() })
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `
    upstreams: { stable: "${stable.url}", canary: "${canary.url}" }
    weights: { stable: 100 }
    stickiness: { userId: { header: x-user-id } }`))

  const first = await serveWeir(t, file)
  const api = adminClient(first.adminUrl)
  const set = await api.call('PUT', '/api/v1/routes/app/weights', { stable: 25, canary: 75 })
  t.equal(set.status, 200, set.body)
  // SIGKILL right after the reply: "persisted before the reply" is what is being tested.
  first.weir.child.kill('SIGKILL')
  t.ok(await exitWithin(first.weir, 5000), 'the first process is gone')

  const second = await serveWeir(t, file)
  const route = (await adminClient(second.adminUrl).get('/api/v1/routes/app')).json()
  t.match(route, { weights: { stable: 25, canary: 75, green: 0 }, revision: 1, source: 'live' })
  let onCanary = 0
  for (let i = 0; i < 400; i++) {
    const reply = await send(second.url + '/', { headers: { 'x-user-id': `user-${i}` } })
    if (reply.headers['x-weir-version'] === 'canary') onCanary++
  }
  t.ok(onCanary > 260 && onCanary < 340, `about 75 % of users on canary after the restart (${onCanary} of 400)`)
  second.weir.child.kill('SIGTERM')
  t.ok(await exitWithin(second.weir, 10_000))
})

t.test('a corrupt state file stops the start with a message naming the file and the way out', async (t) => {
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, 'upstreams: { stable: "http://127.0.0.1:1" }'))
  writeFileSync(join(dir, 'state.json'), '{"version": 1, "routes": {"app": {"revision": 2, "weig')
  const weir = runWeir(t, ['serve', '--config', file])
  const exit = await exitWithin(weir, 15_000)
  t.equal(exit?.code, 1, 'exits 1')
  t.match(weir.output(), /weir: failed to start: .*state\.json/)
  t.match(weir.output(), /not valid JSON|corrupt/i)
  t.notMatch(weir.output(), /listening on/, 'nothing listened')
})

t.test('an admin address that is not loopback, without a token, is refused at start', async (t) => {
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, 'upstreams: { stable: "http://127.0.0.1:1" }').replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 0.0.0.0, port: 0 }'))
  const env = { ...process.env }
  delete env.WEIR_ADMIN_TOKEN
  const weir = runWeir(t, ['serve', '--config', file], env)
  const exit = await exitWithin(weir, 15_000)
  t.equal(exit?.code, 1)
  t.match(weir.output(), /admin\.token: is required when admin\.host is not a loopback address/)
  t.notMatch(weir.output(), /listening on/)
})
