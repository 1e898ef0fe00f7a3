// What an operator sees in weir's own log without asking the admin API: every event as a line
// (an automatic revert with its reason, a weight change and who made it), and at start a warning
// for each route whose saved live state overrides the config file, with the way back (reset).

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { eventually, sleep } from '../helpers/raw-http.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { exitWithin, serveWeir, tempDir, yamlConfig } from '../helpers/weir-process.ts'

interface LogLine { level: number; msg: string; event?: { action: string; actor: string; route?: string } }

function logLines (output: string): LogLine[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as LogLine } catch { return null } }).filter((l): l is LogLine => l !== null)
}

t.test('a failing canary\'s revert is a log line with its reason; a weight change names who made it', async (t) => {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  canary?.handle((_req, res) => { res.statusCode = 500; res.end('{}') })
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${stable?.url}, canary: ${canary?.url} }
stickiness: { userId: { header: x-user-id } }
rollout: { steps: [50, 100], interval: 30s, analysis: { minRequests: 20 } }`))
  const { weir, url, adminUrl } = await serveWeir(t, file)
  const admin = adminClient(adminUrl)
  t.equal((await admin.call('PUT', '/api/v1/routes/app/weights', { stable: 95, canary: 5 })).status, 200)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const traffic = startTraffic(url, { rate: 100, maxMs: 10_000 })
  t.teardown(() => traffic.stop())
  const deadline = Date.now() + 8000
  let revert: LogLine | undefined
  while (Date.now() < deadline && revert === undefined) {
    revert = logLines(weir.output()).find((l) => l.event?.action === 'rollout.failed')
    if (revert === undefined) await sleep(100)
  }
  await traffic.stop()
  t.ok(revert !== undefined, 'the revert is in the log')
  t.equal(revert?.level, 40, 'at warn level')
  t.match(revert?.msg, /^event rollout\.failed: route app, by controller: guard: canary .*; weights now stable 100 % \/ canary 0 % \/ green 0 %$/, String(revert?.msg))
  const lines = logLines(weir.output())
  const set = lines.find((l) => l.event?.action === 'weights.set')
  t.match(set?.msg, /^event weights\.set: route app, by local; weights now stable 95 % \/ canary 5 % \/ green 0 %$/, 'the weight change and who made it')
  t.ok(lines.some((l) => l.event?.action === 'rollout.started'), 'and the rollout\'s start')
})

t.test('a restart over saved live state that differs from the file warns what differs; reset brings the file back', async (t) => {
  const [stable, green] = await startUpstreams(t, 'stable', 'green')
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${stable?.url}, green: ${green?.url} }
weights: { stable: 100, green: 0 }`))
  const first = await serveWeir(t, file)
  t.equal((await adminClient(first.adminUrl).call('POST', '/api/v1/routes/app/switch', { to: 'green' })).status, 200)
  first.weir.child.kill('SIGTERM')
  t.equal((await exitWithin(first.weir, 10_000))?.code, 0)

  const second = await serveWeir(t, file)
  await sleep(200)
  const warning = logLines(second.weir.output()).find((l) => /overrides the config file/.test(l.msg))
  t.ok(warning !== undefined, 'the start warns')
  t.equal(warning?.level, 40)
  t.match(warning?.msg, /^route app: its live state \(revision 1, written [0-9T:.Z-]+\) overrides the config file: weights stable 0 % \/ canary 0 % \/ green 100 % \(the file: stable 100 % \/ canary 0 % \/ green 0 %\)\. .*weir reset app \(POST \/api\/v1\/routes\/app\/reset\)$/, String(warning?.msg))
  const reset = await adminClient(second.adminUrl).call('POST', '/api/v1/routes/app/reset', {})
  t.equal(reset.status, 200, reset.body)
  t.same(reset.json().weights, { stable: 100, canary: 0, green: 0 }, 'reset serves the file\'s weights')
  // The line may reach this process's pipe after the admin API's answer did: wait for it.
  const resetLogged = (): boolean => logLines(second.weir.output()).some((l) => l.event?.action === 'reset')
  await eventually(resetLogged, 2000)
  t.ok(resetLogged(), 'an event (and a log line) records the reset')
  second.weir.child.kill('SIGTERM')
  t.equal((await exitWithin(second.weir, 10_000))?.code, 0)

  const third = await serveWeir(t, file)
  await sleep(200)
  t.notOk(logLines(third.weir.output()).some((l) => /overrides the config file/.test(l.msg)), 'after the reset the next start has nothing to warn of')
  const refused = await adminClient(third.adminUrl).call('POST', '/api/v1/routes/app/reset', { weights: { stable: 1 } })
  t.equal(refused.status, 400, 'reset takes no fields')
})
