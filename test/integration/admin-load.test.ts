// Changing weights under load: while autocannon (its own process, bounded in time) sends
// traffic, 100 weight changes and 10 blue/green switches go through the admin API. No client
// sees a non-2xx, and each change routes the very next requests by the new weights.

import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'
import { adminClient } from '../helpers/admin.ts'
import { NODE, ROOT } from '../helpers/weir-process.ts'
import { createUserBucketer } from '../../src/routing/hash.ts'
import type { LoadResult, LoadSpec } from '../../bench/load.ts'

const LOAD_SECONDS = 10

function runLoad (spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [join(ROOT, 'bench/load.ts'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    child.once('error', reject)
    child.once('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (code !== 0 || line === undefined) reject(new Error(`load exited ${code}: ${err}`))
      else resolve(JSON.parse(line) as LoadResult)
    })
  })
}

t.test('100 weight changes and 10 switches under load: zero non-2xx, each in force within 100 ms of its reply', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green') as [Upstream, Upstream, Upstream]
  const proxy = await startProxy(configDoc([{
    name: 'web',
    upstreams: { stable: stable.url, canary: canary.url, green: green.url },
    weights: { stable: 100 },
    stickiness: { userId: { header: 'x-user-id' } },
  }]))
  t.teardown(() => proxy.close())
  const api = adminClient(proxy.adminUrl)
  const bucketOf = createUserBucketer('web')
  const probes = Array.from({ length: 8 }, (_, i) => `probe-${i}`).map((id) => ({ id, bucket: bucketOf(id) }))

  const loading = runLoad({ url: proxy.url, connections: 8, pipelining: 1, duration: LOAD_SECONDS, mode: 'user-id', userIds: 5000 })
  // Let the load ramp up before the first change.
  await new Promise((resolve) => setTimeout(resolve, 500))

  let worstMs = 0
  let changes = 0
  let switches = 0
  let lateOrWrong = 0
  for (let i = 0; i < 110; i++) {
    const isSwitch = i % 11 === 10
    const canaryPercent = (i * 37) % 101
    const reply = isSwitch
      ? await api.call('POST', '/api/v1/routes/web/switch', { to: switches % 2 === 0 ? 'green' : 'stable' })
      : await api.call('PUT', '/api/v1/routes/web/weights', { stable: 100 - canaryPercent, canary: canaryPercent })
    const repliedAt = performance.now()
    t.equal(reply.status, 200, reply.body)
    const weights = reply.json<{ weights: { stable: number; canary: number; green: number } }>().weights
    if (isSwitch) switches++
    else changes++
    // Every probe user must already be on the version its bucket gives under the new weights.
    for (const probe of probes) {
      const expected = probe.bucket < weights.canary * 100 ? 'canary' : probe.bucket >= 10_000 - weights.green * 100 ? 'green' : 'stable'
      let got = ''
      let elapsed = 0
      do {
        got = String((await send(proxy.url + '/', { headers: { 'x-user-id': probe.id } })).headers['x-weir-version'])
        elapsed = performance.now() - repliedAt
      } while (got !== expected && elapsed < 100)
      if (got !== expected) lateOrWrong++
      if (probe === probes[0]) worstMs = Math.max(worstMs, elapsed)
    }
  }
  const load = await loading
  t.equal(changes, 100)
  t.equal(switches, 10)
  t.equal(lateOrWrong, 0, 'every probe followed the new weights within 100 ms of the reply')
  t.ok(load.requests > 1000, `the load ran (${load.requests} requests, ${Math.round(load.reqPerSec)} req/s)`)
  t.equal(load.non2xx, 0, 'no client got a non-2xx')
  t.equal(load.errors, 0, 'no client request failed')
  t.comment(`a probe (one request under this load) answered by the new weights at most ${worstMs.toFixed(1)} ms after the admin reply`)
  t.equal((await api.get('/api/v1/routes/web')).json().revision, 110)
})
