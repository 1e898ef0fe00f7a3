// Three weir replicas sharing a real etcd (state.etcd): a write on one is in force on the
// others, compare-and-set holds across replicas, and etcd going away never fails a client
// request while admin writes answer 503 naming the store.

import t, { type Test } from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { startEtcd, type TestEtcd } from '../helpers/etcd.ts'
import { send } from '../helpers/http.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'

let fleets = 0

async function fleetOf (t: Test, etcd: TestEtcd, size = 3): Promise<TestProxy[]> {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const prefix = `/weir-test-${process.pid}-${++fleets}/`
  const replicas: TestProxy[] = []
  for (let i = 0; i < size; i++) {
    const doc = configDoc([{
      name: 'app',
      upstreams: { stable: stable?.url, canary: canary?.url },
      weights: { stable: 100, canary: 0 },
      stickiness: { userId: { header: 'x-user-id' } },
    }])
    const state = doc.state as Record<string, unknown>
    doc.state = { ...state, etcd: { endpoints: [etcd.url], prefix, timeout: '1s' } }
    doc.fleet = { id: `replica-${i + 1}` }
    const replica = await startProxy(doc)
    t.teardown(() => replica.close())
    replicas.push(replica)
  }
  return replicas
}

/** The versions 8 probe users get from a replica, one request each. */
async function probe (replica: TestProxy): Promise<string[]> {
  return await Promise.all(Array.from({ length: 8 }, async (_, i) => String((await send(replica.url + '/', { headers: { 'x-user-id': `probe-${i}` } })).headers['x-weir-version'])))
}

t.test('a weight change on one replica is in force on the others within the bound; its revision is the same everywhere', async (t) => {
  const etcd = await startEtcd(t)
  const [a, b, c] = await fleetOf(t, etcd) as [TestProxy, TestProxy, TestProxy]
  const reply = await adminClient(a.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 0, canary: 100 })
  t.equal(reply.status, 200, reply.body)
  const answeredAt = performance.now()
  const seen: number[] = []
  for (const replica of [b, c]) {
    while (!(await probe(replica)).every((v) => v === 'canary')) {
      if (performance.now() - answeredAt > 2000) break
      await sleep(5)
    }
    seen.push(performance.now() - answeredAt)
  }
  t.same(await probe(b), Array(8).fill('canary'), 'replica B sends the 8 probe users to canary')
  t.same(await probe(c), Array(8).fill('canary'), 'replica C too')
  t.ok(seen.every((ms) => ms < 2000), `within ${seen.map((ms) => Math.round(ms)).join(' / ')} ms of the reply`)
  for (const replica of [a, b, c]) {
    const route = (await adminClient(replica.adminUrl).get('/api/v1/routes/app')).json<{ revision: number; weights: Record<string, number> }>()
    t.same([route.revision, route.weights.canary], [1, 100], `${replica.config.fleet.id} reads revision 1, canary 100`)
  }
})

t.test('20 concurrent If-Match writes spread over three replicas: exactly one wins', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd)
  const base = replicas[0] as TestProxy
  t.equal((await adminClient(base.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 90, canary: 10 })).status, 200)
  await sleep(200)
  const revision = (await adminClient(base.adminUrl).get('/api/v1/routes/app')).json<{ revision: number }>().revision
  const statuses = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const replica = replicas[i % 3] as TestProxy
    const reply = await adminClient(replica.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 100 - i, canary: i }, { 'if-match': String(revision) })
    return reply.status
  }))
  t.equal(statuses.filter((s) => s === 200).length, 1, `one write won (${statuses.join(',')})`)
  t.equal(statuses.filter((s) => s === 412).length, 19, 'the other 19 were told the revision moved (412)')
  await sleep(200)
  const revisions = await Promise.all(replicas.map(async (r) => (await adminClient(r.adminUrl).get('/api/v1/routes/app')).json<{ revision: number }>().revision))
  t.same(revisions, [revision + 1, revision + 1, revision + 1], 'every replica reads the winner\'s revision')
})

t.test('etcd stopped under load: no client request fails, admin writes answer 503 naming etcd; back: writes work and every replica follows', async (t) => {
  const etcd = await startEtcd(t)
  const [a, b, c] = await fleetOf(t, etcd) as [TestProxy, TestProxy, TestProxy]
  t.equal((await adminClient(a.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 50, canary: 50 })).status, 200)
  await sleep(200)
  const loads = [a, b, c].map((r) => startTraffic(r.url, { rate: 100, maxMs: 15_000 }))
  t.teardown(async () => { for (const load of loads) await load.stop() })
  await sleep(500)
  await etcd.stop()
  await sleep(500)
  const refused = await adminClient(b.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 100, canary: 0 })
  t.equal(refused.status, 503, 'a write while etcd is away answers 503')
  t.equal(refused.json().error, 'WEIR_ERR_ADMIN_STATE_WRITE_FAILED')
  t.match(String(refused.json().message), /etcd \(http:\/\/127\.0\.0\.1:[0-9]+\) did not answer/, 'naming the store')
  const during = await Promise.all([a, b, c].map(probe))
  t.ok(during.every((versions) => versions.every((v) => v === 'stable' || v === 'canary')), 'the data paths keep the last table')
  await sleep(1000)
  await etcd.start()
  // The client reconnects on its own; the first writes may still find it reconnecting.
  let written = 0
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    written = (await adminClient(c.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 0, canary: 100 })).status
    if (written === 200) break
    await sleep(200)
  }
  t.equal(written, 200, 'a write works again once etcd is back')
  const followed = Date.now() + 5000
  while (Date.now() < followed && !(await Promise.all([a, b, c].map(probe))).flat().every((v) => v === 'canary')) await sleep(50)
  t.same((await Promise.all([a, b, c].map(probe))).flat(), Array(24).fill('canary'), 'every replica serves the store\'s state')
  const results = (await Promise.all(loads.map((load) => load.stop()))).flat()
  t.ok(results.length > 1000, `${results.length} client requests were sent over the outage`)
  t.same(failures(results), [], 'none of them failed')
})
