// A rollout survives `kill -9` of the real process: after the restart it continues from the step
// it had reached (with a fresh check window), and finishes.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { sleep } from '../helpers/raw-http.ts'
import type { RolloutBody } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { exitWithin, serveWeir, tempDir, yamlConfig } from '../helpers/weir-process.ts'

t.test('kill -9 mid-rollout: the restarted process continues from the step it had reached', async (t) => {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  // The latency checks get room for the test machine's stalls (a few slow requests among the
  // canary's first ones hold the check for data that never makes them significant): this test is
  // about the restart, and rollout-canary's slow canary tests the latency check.
  writeFileSync(file, yamlConfig(dir, `
    upstreams: { stable: "${stable!.url}", canary: "${canary!.url}" }
    rollout: { steps: [10, 40, 70], interval: 1s, analysis: { minRequests: 20, maxP99Ms: 5000, maxP99Ratio: 20 } }`))

  const first = await serveWeir(t, file)
  const api = adminClient(first.adminUrl)
  const traffic = startTraffic(first.url, { rate: 200, maxMs: 15_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  t.equal((await api.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  let before: RolloutBody | undefined
  for (let i = 0; i < 200; i++) {
    before = (await api.get('/api/v1/routes/app/rollout')).json<RolloutBody>()
    if ((before.rollout?.step ?? 0) >= 1) break
    await sleep(25)
  }
  t.equal(before?.rollout?.step, 1, 'reached the second step')
  first.weir.child.kill('SIGKILL')
  t.ok(await exitWithin(first.weir, 5000), 'the first process is gone')
  await traffic.stop()

  const second = await serveWeir(t, file)
  const api2 = adminClient(second.adminUrl)
  const resumed = (await api2.get('/api/v1/routes/app/rollout')).json<RolloutBody>()
  t.equal(resumed.phase, 'progressing')
  t.equal(resumed.rollout?.step, 1, 'the same step after the restart')
  t.same(resumed.weights, { stable: 60, canary: 40, green: 0 })
  t.match(resumed.rollout?.history.at(-1)?.note, /resumed after a restart at step 1 \(40 %\)/)

  const traffic2 = startTraffic(second.url, { rate: 200, maxMs: 15_000 })
  t.teardown(() => traffic2.stop())
  let last = resumed
  for (let i = 0; i < 300 && last.phase !== 'succeeded' && last.phase !== 'failed'; i++) {
    await sleep(25)
    last = (await api2.get('/api/v1/routes/app/rollout')).json<RolloutBody>()
  }
  t.equal(last.phase, 'succeeded', JSON.stringify(last.rollout?.history.map((h) => h.note)))
  const notes = last.rollout?.history.map((h) => h.note) ?? []
  t.ok(notes.some((n) => /canary at 70 %/.test(n)), 'went on to the last step')
  t.notOk(notes.slice(notes.findIndex((n) => /resumed after a restart/.test(n))).some((n) => /canary at 10 %/.test(n)), 'did not start over')
  await traffic2.stop()
  second.weir.child.kill('SIGTERM')
  t.ok(await exitWithin(second.weir, 10_000))
})
