// Three weir replicas sharing a real etcd (state.etcd): a write on one is in force on the
// others, compare-and-set holds across replicas, and etcd going away never fails a client
// request while admin writes answer 503 naming the store.

import t from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { startEtcd } from '../helpers/etcd.ts'
import { agreedLeader, eventsOf, eventually, fleetOf, fleetView, probe, type Replica } from '../helpers/fleet.ts'
import { sleep } from '../helpers/raw-http.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'

/** Reply to the last replica's data path; the bench measured p99 53 ms (bench/results/fleet-latest.json). */
const PROPAGATION_GUARD_MS = 500

t.test('a weight change on one replica is in force on the others within the bound; its revision is the same everywhere', async (t) => {
  const etcd = await startEtcd(t)
  const [a, b, c] = await fleetOf(t, etcd) as [Replica, Replica, Replica]
  const reply = await adminClient(a.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 0, canary: 100 })
  t.equal(reply.status, 200, reply.body)
  const answeredAt = performance.now()
  const seen: number[] = []
  for (const replica of [b, c]) {
    while (!(await probe(replica)).every((v) => v === 'canary')) {
      if (performance.now() - answeredAt > 3000) break
      await sleep(5)
    }
    seen.push(performance.now() - answeredAt)
  }
  t.same(await probe(b), Array(8).fill('canary'), 'replica B sends the 8 probe users to canary')
  t.same(await probe(c), Array(8).fill('canary'), 'replica C too')
  // npm run bench:fleet is the measurement (p99 over 100 writes, target 100 ms); this is the
  // regression guard: one write, probed by 8 requests a round, with room for a loaded machine.
  t.ok(seen.every((ms) => ms < PROPAGATION_GUARD_MS), `within ${seen.map((ms) => Math.round(ms)).join(' / ')} ms of the reply (guard ${PROPAGATION_GUARD_MS} ms)`)
  for (const replica of [a, b, c]) {
    const route = (await adminClient(replica.adminUrl).get('/api/v1/routes/app')).json<{ revision: number; weights: Record<string, number> }>()
    t.same([route.revision, route.weights.canary], [1, 100], `${replica.id} reads revision 1, canary 100`)
  }
})

t.test('20 concurrent If-Match writes spread over three replicas: exactly one wins', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd)
  const base = replicas[0] as Replica
  t.equal((await adminClient(base.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 90, canary: 10 })).status, 200)
  await sleep(200)
  const revision = (await adminClient(base.adminUrl).get('/api/v1/routes/app')).json<{ revision: number }>().revision
  const statuses = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const replica = replicas[i % 3] as Replica
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
  const [a, b, c] = await fleetOf(t, etcd) as [Replica, Replica, Replica]
  t.equal((await adminClient(a.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 50, canary: 50 })).status, 200)
  await sleep(200)
  const loads = [a, b, c].map((r) => startTraffic(r.url, { rate: 100, maxMs: 15_000 }))
  t.teardown(async () => { for (const load of loads) await load.stop() })
  await sleep(500)
  await etcd.stop()
  await sleep(500)
  const refused = await adminClient(b.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 100, canary: 0 })
  t.equal(refused.status, 503, 'a write while etcd is away answers 503')
  t.equal(refused.json().error, 'WEIR_ERR_STATE_UNAVAILABLE', 'with the store\'s code, not a failed file write\'s')
  t.match(String(refused.json().message), /^nothing changed: etcd \(http:\/\/127\.0\.0\.1:[0-9]+\) did not answer to write route app/, 'naming the store')
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
  const sameLog = async (): Promise<boolean> => {
    const ids = await Promise.all([a, b, c].map(async (r) => JSON.stringify((await eventsOf(r)).map((e) => e.id))))
    return ids.every((x) => x === ids[0]) && JSON.parse(ids[0] as string).length >= 2
  }
  t.ok(await eventually(3000, sameLog), 'and every replica\'s event log reads the same, the write after the outage included')
  const results = (await Promise.all(loads.map((load) => load.stop()))).flat()
  t.ok(results.length > 1000, `${results.length} client requests were sent over the outage`)
  t.same(failures(results), [], 'none of them failed')
})

t.test('GET /api/v1/fleet names the same leader and every member on every replica', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd)
  const leader = await agreedLeader(replicas, 10_000)
  t.ok(leader !== null && replicas.some((r) => r.id === leader), `one leader: ${leader}`)
  for (const replica of replicas) {
    const view = await fleetView(replica)
    t.equal(view.self, replica.id)
    t.same(view.members.map((m) => [m.id, m.admin]), replicas.map((r) => [r.id, r.adminUrl]), `${replica.id} lists every member with its admin URL`)
  }
})
