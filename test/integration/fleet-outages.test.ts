// A fleet when things go wrong: the fast guard trips while etcd is away (the replica fails safe
// and writes the revert later), etcd killed under a stream of writes leaves every change with its
// event and no event without a change, a leader cut off from etcd steps down, and a member whose
// advertised address reaches another replica is left out of the fleet's stats.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { adminClient } from '../helpers/admin.ts'
import { startEtcd } from '../helpers/etcd.ts'
import { agreedLeader, eventsOf, eventually, fleetOf, fleetPrefix, fleetView, probe, settledPhase, type FleetBody, type EventRow, type Replica } from '../helpers/fleet.ts'
import { sleep } from '../helpers/raw-http.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { serveWeir, tempDir } from '../helpers/weir-process.ts'

t.test('the fast guard trips while etcd is away: that replica serves stable at once and writes the revert when etcd is back; every replica follows', async (t) => {
  const etcd = await startEtcd(t)
  let broken = false
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [50, 100]
      interval: 60s
      analysis: { minRequests: 20 }
      guard: { maxErrorRate: 0.2, minRequests: 20 }
`, (_req, res) => {
    res.statusCode = broken ? 500 : 200
    res.end(JSON.stringify({ version: 'canary' }))
  })
  const leaderId = await agreedLeader(replicas, 10_000)
  const follower = replicas.find((r) => r.id !== leaderId) as Replica
  const others = replicas.filter((r) => r !== follower)
  t.equal((await adminClient(follower.adminUrl).call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  await sleep(300)
  t.ok((await probe(follower)).includes('canary'), 'the canary serves its share')
  await etcd.stop()
  await sleep(300)
  broken = true
  const load = startTraffic(follower.url, { rate: 100, maxMs: 20_000 })
  t.teardown(() => load.stop())
  // The guard trips within a second or so; the revert cannot be written, and the replica holds it alone.
  const deadline = Date.now() + 5000
  let view: { phase: string; failSafe: { rollout: string; detail: string; weights: Record<string, number>; failedWrites: number } | null } | null = null
  while (Date.now() < deadline) {
    view = (await adminClient(follower.adminUrl).get('/api/v1/routes/app/rollout')).json()
    if (view?.failSafe != null) break
    await sleep(50)
  }
  t.ok(view?.failSafe != null, `the follower shows its fail-safe (${JSON.stringify(view?.failSafe)})`)
  t.equal(view?.phase, 'progressing', 'the store (unreachable) still says progressing')
  t.same(view?.failSafe?.weights, { stable: 100, canary: 0, green: 0 }, 'the follower serves the revert\'s weights')
  t.match(String(view?.failSafe?.detail), /error rate|in a row/, 'with what the guard saw')
  t.same([...new Set(await probe(follower))], ['stable'], 'its data path sends nobody to the canary any more')
  const afterHold = load.results.length
  await sleep(1000)
  const held = load.results.slice(afterHold)
  t.ok(held.length > 50, `${held.length} requests through the follower while it held the revert`)
  t.same(held.filter((r) => r.version !== 'stable'), [], 'all of them were served by stable')
  t.ok((await probe(others[0] as Replica)).includes('canary'), 'a replica whose guard did not trip keeps the last table (50 % canary)')
  await etcd.start()
  const written = Date.now() + 15_000
  let phase = ''
  while (Date.now() < written) {
    phase = (await adminClient(follower.adminUrl).get('/api/v1/routes/app/rollout')).json<{ phase: string }>().phase
    if (phase === 'failed') break
    await sleep(100)
  }
  t.equal(phase, 'failed', 'once etcd is back the follower wrote the revert')
  // The hold ends within a controller tick (100 ms) of the store no longer driving the rollout.
  const viewNow = async (): Promise<{ failSafe: unknown; rollout: { reason: string } }> => (await adminClient(follower.adminUrl).get('/api/v1/routes/app/rollout')).json()
  t.ok(await eventually(1000, async () => (await viewNow()).failSafe === null), 'and no longer holds anything alone')
  const after = await viewNow()
  t.match(after.rollout.reason, /^fast guard: .*served the revert alone from/, `the reason says so (${after.rollout.reason})`)
  const followed = Date.now() + 5000
  while (Date.now() < followed && !(await Promise.all(replicas.map(probe))).flat().every((v) => v === 'stable')) await sleep(50)
  t.same([...new Set((await Promise.all(replicas.map(probe))).flat())], ['stable'], 'every replica follows the revert')
  const reverted = (e: EventRow): boolean => e.actor === 'controller' && e.action === 'rollout.failed' && e.replica === follower.id
  t.ok(await eventually(3000, async () => (await eventsOf(others[0] as Replica)).some(reverted)), 'the fleet\'s event log on another replica has the follower\'s revert')
  t.same((await load.stop()).filter((r) => r.error !== null), [], 'no client request failed at the proxy')
})

t.test('the controller holds while etcd is away: no step, no weight change, no promotion on any replica; etcd back, the rollout goes on', async (t) => {
  const etcd = await startEtcd(t)
  const steps = [10, 20, 30, 40, 100]
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [${steps.join(', ')}]
      interval: 1s
      analysis: { minRequests: 5, maxErrorRate: 0.5, maxErrorRatio: 100, maxP99Ms: 5000, maxP99Ratio: 100, failureThreshold: 3 }
`)
  await agreedLeader(replicas, 10_000)
  const loads = replicas.map((r) => startTraffic(r.url, { rate: 40, maxMs: 40_000 }))
  t.teardown(async () => { for (const load of loads) await load.stop() })
  t.equal((await adminClient(replicas[0]?.adminUrl ?? '').call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  type Held = { phase: string; step: number | undefined; weights: unknown }
  const heldOf = async (r: Replica): Promise<Held> => {
    const view = (await adminClient(r.adminUrl).get('/api/v1/routes/app/rollout')).json<{ phase: string; weights: unknown; rollout: { step: number } | null }>()
    return { phase: view.phase, step: view.rollout?.step, weights: view.weights }
  }
  // A step and its event are written together: once the event is in, the outage starts between two decisions.
  const stepped = async (): Promise<boolean> => (await eventsOf(replicas[0] as Replica)).some((e) => e.action === 'rollout.step')
  t.ok(await eventually(10_000, stepped), 'the leader stepped the rollout once')
  await etcd.stop()
  // Each replica's view as etcd went away (one may lag a write the watch did not deliver yet).
  const baseline = await Promise.all(replicas.map(heldOf))
  const awayUntil = Date.now() + 3500 // more than two check intervals of 1 s
  let samples = 0
  const changed: string[] = []
  while (Date.now() < awayUntil) {
    const now = await Promise.all(replicas.map(heldOf))
    now.forEach((held, i) => { if (JSON.stringify(held) !== JSON.stringify(baseline[i])) changed.push(`${replicas[i]?.id}: ${JSON.stringify(baseline[i])} → ${JSON.stringify(held)}`) })
    samples++
    await sleep(200)
  }
  t.ok(samples >= 10, `${samples} samples of every replica's view while etcd was away`)
  t.same(changed, [], `step and weights held on every replica (${JSON.stringify(baseline)})`)
  t.ok(baseline.every((b) => b.phase === 'progressing'), 'no promotion')
  await etcd.start()
  const last = replicas[2] as Replica
  t.ok(await eventually(20_000, async () => ((await heldOf(last)).step ?? -1) > Math.max(...baseline.map((b) => b.step ?? -1))), 'etcd back: the rollout takes its next step')
  t.equal(await settledPhase(last, 30_000), 'succeeded', 'and goes on to succeed')
  // The rollout's own history (in the store): each step's weight once, in the policy's order.
  const history = (await adminClient(last.adminUrl).get('/api/v1/routes/app/rollout')).json<{ rollout: { history: { phase: string; weight: number }[] } }>().rollout.history
  const weights = history.filter((h) => h.phase === 'progressing').map((h) => h.weight).filter((w, i, all) => i === 0 || w !== all[i - 1])
  t.same(weights, steps, `every step once: none skipped or repeated over the outage (${JSON.stringify(history)})`)
  // The fleet's event log says the same: each step's event once, and one event for each of the route's revisions.
  type ChangeEvent = EventRow & { new?: { revision?: number; rollout?: { weight: number } | null } }
  const events = (await adminClient(last.adminUrl).get('/api/v1/events')).json<{ events: ChangeEvent[] }>().events
  t.same(events.filter((e) => e.action === 'rollout.started' || e.action === 'rollout.step').map((e) => e.new?.rollout?.weight), steps, 'the event log has each step once, in order')
  const revision = (await adminClient(last.adminUrl).get('/api/v1/routes/app')).json<{ revision: number }>().revision
  t.same(events.flatMap((e) => (typeof e.new?.revision === 'number' ? [e.new.revision] : [])), Array.from({ length: revision }, (_, i) => i + 1), `and one event for each of the route's ${revision} revisions, in id order`)
})

t.test('etcd killed three times under a stream of writes on two replicas: every change in the store has exactly one event, at the change\'s own etcd revision, and every event a change', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd, 2)
  /** `outage`: how many times etcd was killed before the write was sent. */
  type Write = { replica: string; status: number; revision: number | undefined; outage: number }
  const writes: Write[] = []
  const stream = { running: true }
  let outage = 0
  // Two loops a replica: its route queue always holds the next write, so one is in flight at each kill.
  const loop = async (replica: Replica, n: number): Promise<void> => {
    for (let i = 0; stream.running; i++) {
      const canary = (i * 7 + n * 13) % 101
      const sentIn = outage
      const reply = await adminClient(replica.adminUrl).call('PUT', '/api/v1/routes/app/weights', { stable: 100 - canary, canary })
      writes.push({ replica: replica.id, status: reply.status, revision: reply.status === 200 ? reply.json<{ revision: number }>().revision : undefined, outage: sentIn })
      // A store that is away answers at once: no need to ask hundreds of times a second.
      if (reply.status === 503) await sleep(20)
    }
  }
  const loops = replicas.flatMap((r, i) => [loop(r, 2 * i), loop(r, 2 * i + 1)])
  t.teardown(async () => {
    stream.running = false
    await Promise.allSettled(loops)
  })
  const written = (r: Replica): number => writes.filter((w) => w.replica === r.id && w.outage === outage && w.status === 200).length
  for (let round = 1; round <= 3; round++) {
    t.ok(await eventually(15_000, async () => replicas.every((r) => written(r) >= 10)), `${round === 1 ? 'writes go through' : 'etcd back: writes go through again'} on both replicas`)
    await etcd.stop()
    outage = round
    const stoppedAt = writes.length
    t.ok(await eventually(10_000, async () => writes.slice(stoppedAt).filter((w) => w.status === 503).length >= 4), `etcd killed (${round}): writes answer 503`)
    await sleep(300)
    await etcd.start()
  }
  t.ok(await eventually(15_000, async () => replicas.every((r) => written(r) >= 1)), 'etcd back: both replicas write again')
  stream.running = false
  await Promise.all(loops)
  const statuses = [...new Set(writes.map((w) => w.status))].sort()
  t.ok(statuses.every((s) => s === 200 || s === 503 || s === 412), `every write answered 200, 503 (etcd away) or 412 (lost its races): ${statuses.join(', ')}`)
  t.comment(`${writes.filter((w) => w.status === 200).length} writes answered 200, ${writes.filter((w) => w.status === 503).length} 503`)

  // The store's side: the route key's history in etcd (no compaction in a test etcd) and the events kept there.
  const client = new Etcd3({ hosts: etcd.url })
  t.teardown(() => client.close())
  const kvs = (await client.getAll().prefix('/').exec()).kvs
  const routeKey = kvs.map((kv) => kv.key.toString()).find((key) => key.endsWith('/routes/app')) as string
  const final = JSON.parse((await client.get(routeKey).string()) ?? '{}') as { revision: number }
  type StoredEvent = { id: number; action: string; route?: string; replica?: string; new?: { revision: number; weights: Record<string, number> } }
  const stored: StoredEvent[] = kvs.filter((kv) => /\/events\/[^/]+$/.test(kv.key.toString()))
    .map((kv) => ({ ...JSON.parse(kv.value.toString()) as Omit<StoredEvent, 'id'>, id: Number(kv.mod_revision) }))
    .filter((e) => e.route === 'app' && e.action === 'weights.set')
    .sort((x, y) => x.id - y.id)
  const revisions = stored.map((e) => e.new?.revision)
  t.same(revisions, Array.from({ length: final.revision }, (_, i) => i + 1), `the events record revisions 1 … ${final.revision}, each once, in id order: no change without its event, no event without its change`)
  const answered = writes.flatMap((w) => (w.revision === undefined ? [] : [w.revision]))
  t.ok(answered.every((r) => revisions.includes(r)), 'every write answered 200 has its event')
  // A transaction etcd committed as it was killed, before its reply: the write answered 503, yet
  // the change stands with its event. At most one write of each replica is in flight at a kill.
  const unanswered = stored.filter((e) => !answered.includes(e.new?.revision ?? 0))
  t.ok(unanswered.length <= 3 * replicas.length, `${unanswered.length} change(s) committed with their event as etcd was killed, the reply lost (at most one a replica a kill)`)
  // The route key as etcd held it at each event's revision: that revision wrote it, with the revision the event records.
  const mismatched: string[] = []
  for (const event of stored) {
    const at = (await client.get(routeKey).revision(event.id).exec()).kvs[0]
    const state = JSON.parse(at?.value.toString() ?? '{}') as { revision?: number; weights?: Record<string, number> }
    if (Number(at?.mod_revision) !== event.id || state.revision !== event.new?.revision || state.weights?.canary !== 100 * (event.new?.weights.canary ?? -1)) {
      mismatched.push(`event ${event.id} (revision ${event.new?.revision}): the key was last written at ${at?.mod_revision} with revision ${state.revision}`)
    }
  }
  t.same(mismatched, [], `each of the ${stored.length} events was written by the transaction that wrote its change`)
  // Both replicas serve that same log, and each event is a log line of the replica that made it.
  for (const replica of replicas) {
    const served = async (): Promise<number[]> => (await adminClient(replica.adminUrl).get('/api/v1/events?limit=1000')).json<{ events: StoredEvent[] }>().events
      .filter((e) => e.route === 'app' && e.action === 'weights.set').map((e) => e.id)
    t.ok(await eventually(5000, async () => JSON.stringify(await served()) === JSON.stringify(stored.map((e) => e.id))), `${replica.id}'s GET /events serves exactly these events`)
    const lines = replica.weir.output().split('\n').filter((line) => line.includes('"event":{') && line.includes('"action":"weights.set"'))
    const unlogged = stored.filter((e) => e.replica === replica.id && !unanswered.includes(e) && !lines.some((line) => new RegExp(`"id":${e.id}[,}]`).test(line)))
    t.same(unlogged.map((e) => e.id), [], `every event of a write ${replica.id} answered is a log line of its own`)
  }
})

t.test('a leader cut off from etcd loses leadership with its lease (fleet.leaseTtl 3s); etcd back: one replica leads again', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd, 3, '', null, ', leaseTtl: 3s')
  const leaderId = await agreedLeader(replicas, 10_000)
  const leader = replicas.find((r) => r.id === leaderId) as Replica
  await etcd.stop()
  const stoppedAt = Date.now()
  let view: FleetBody | null = null
  while (Date.now() - stoppedAt < 12_000) {
    view = await fleetView(leader)
    if (view.leader !== leader.id) break
    await sleep(50)
  }
  const lostAfter = Date.now() - stoppedAt
  t.not(view?.leader, leader.id, `${leader.id} no longer names itself the leader ${lostAfter} ms after etcd went away (lease TTL 3 s; it steps down at 80 % of it)`)
  // Renewals go every TTL/3 and it steps down 0.8 TTL after the last one: 1.4–2.4 s after etcd
  // stopped with a 3 s lease (+ its 250 ms re-read and this 50 ms poll), 2.3–4 s with the default 5 s.
  t.ok(lostAfter >= 1000 && lostAfter < 3000, `not at once (it leads while its lease is surely valid), and within the 3 s lease (${lostAfter} ms)`)
  // The bound above still lets a 5 s lease through when its last renewal came just before the
  // stop; the leader's own reckoning cannot: 2.4 s after the last renewal, not 4 s.
  // The line may reach this process's pipe after the admin API's answer did: wait for it.
  const stepDownLine = /"sinceRenewalMs":([0-9]+),"leaseTtlSeconds":([0-9]+)/
  await eventually(2000, async () => stepDownLine.test(leader.weir.output()))
  const stepDown = stepDownLine.exec(leader.weir.output())
  t.equal(stepDown?.[2], '3', 'it reckoned with the configured 3 s lease')
  const sinceRenewal = Number(stepDown?.[1])
  t.ok(sinceRenewal >= 2400 && sinceRenewal < 3000, `it stepped down ${sinceRenewal} ms after its last renewal (80 % of 3 s is 2400 ms; of 5 s, 4000 ms)`)
  const rollout = (await adminClient(leader.adminUrl).get('/api/v1/routes/app/rollout')).json<{ leader: string | null }>()
  t.equal(rollout.leader, null, 'its rollout view names no leader')
  await etcd.start()
  const again = await agreedLeader(replicas, 20_000)
  t.ok(again !== null, `etcd back: every replica names one leader again (${again})`)
})

t.test('a member whose advertised admin URL reaches another replica is left out of fleet stats, not counted twice', async (t) => {
  const etcd = await startEtcd(t)
  const [stable] = await startUpstreams(t, 'stable')
  const dir = tempDir()
  const prefix = fleetPrefix()
  const write = (id: string, advertise = ''): string => {
    const file = join(dir, `${id}.yaml`)
    writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
state: { file: ${join(dir, id, 'state.json')}, etcd: { endpoints: [${etcd.url}], prefix: ${prefix}, timeout: 1s } }
fleet: { id: ${id}${advertise === '' ? '' : `, advertise: ${advertise}`} }
cookieSecret: fleet-test-secret-fleet
workers: 1
routes:
  - name: app
    upstreams: { stable: ${stable?.url} }
`)
    return file
  }
  const first = await serveWeir(t, write('replica-1'))
  // replica-2 advertises replica-1's admin API, as a replica on loopback without fleet.advertise would.
  const second = await serveWeir(t, write('replica-2', first.adminUrl))
  const traffic = startTraffic(first.url, { rate: 50, maxMs: 3000 })
  await traffic.stop()
  let body: { replicas: string[]; missing: string[]; versions: Record<string, { requests: number }> } | null = null
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    body = (await adminClient(first.adminUrl).get('/api/v1/routes/app/stats?window=60&scope=fleet')).json()
    if ((body?.replicas.length ?? 0) + (body?.missing.length ?? 0) === 2) break
    await sleep(100)
  }
  t.same(body?.missing, ['replica-2'], 'the member that answered as someone else is named missing')
  const own = (await adminClient(first.adminUrl).get('/api/v1/routes/app/stats?window=60')).json<{ versions: Record<string, { requests: number }> }>()
  t.equal(body?.versions.stable?.requests, own.versions.stable?.requests, 'and replica-1\'s requests are counted once')
  t.ok(second.adminUrl !== '', 'replica-2 runs')
})
