// Three weir replicas sharing a real etcd (state.etcd): a write on one is in force on the
// others, compare-and-set holds across replicas, and etcd going away never fails a client
// request while admin writes answer 503 naming the store.

import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { startEtcd, type TestEtcd } from '../helpers/etcd.ts'
import { send } from '../helpers/http.ts'
import { sleep } from '../helpers/raw-http.ts'
import { failures, startTraffic } from '../helpers/traffic.ts'
import { startUpstreams, type Handler } from '../helpers/upstream.ts'
import { serveWeir, tempDir, type Weir } from '../helpers/weir-process.ts'

interface Replica { id: string; url: string; adminUrl: string; weir: Weir }

let fleets = 0

/** `size` real `weir serve` processes on one etcd prefix, each with its own ports and fleet id. */
async function fleetOf (t: Test, etcd: TestEtcd, size = 3, route = '', canaryHandler: Handler | null = null, fleet = ''): Promise<Replica[]> {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  canary?.handle(canaryHandler)
  const prefix = `/weir-test-${process.pid}-${++fleets}/`
  const dir = tempDir()
  return await Promise.all(Array.from({ length: size }, async (_, i) => {
    const id = `replica-${i + 1}`
    const file = join(dir, `${id}.yaml`)
    writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
state: { file: ${join(dir, id, 'state.json')}, etcd: { endpoints: [${etcd.url}], prefix: ${prefix}, timeout: 1s } }
fleet: { id: ${id}${fleet} }
cookieSecret: fleet-test-secret-fleet
logLevel: info
workers: ${process.env.WEIR_TEST_WORKERS ?? 1}
routes:
  - name: app
    upstreams: { stable: ${stable?.url}, canary: ${canary?.url} }
    weights: { stable: 100, canary: 0 }
    stickiness: { userId: { header: x-user-id } }
${route}`)
    const { weir, url, adminUrl } = await serveWeir(t, file)
    return { id, url, adminUrl, weir }
  }))
}

/** The versions 8 probe users get from a replica, one request each. */
async function probe (replica: Replica): Promise<string[]> {
  return await Promise.all(Array.from({ length: 8 }, async (_, i) => String((await send(replica.url + '/', { headers: { 'x-user-id': `probe-${i}` } })).headers['x-weir-version'])))
}

t.test('a weight change on one replica is in force on the others within the bound; its revision is the same everywhere', async (t) => {
  const etcd = await startEtcd(t)
  const [a, b, c] = await fleetOf(t, etcd) as [Replica, Replica, Replica]
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
  const sameLog = async (): Promise<boolean> => {
    const ids = await Promise.all([a, b, c].map(async (r) => JSON.stringify((await eventsOf(r)).map((e) => e.id))))
    return ids.every((x) => x === ids[0]) && JSON.parse(ids[0] as string).length >= 2
  }
  t.ok(await eventually(3000, sameLog), 'and every replica\'s event log reads the same, the write after the outage included')
  const results = (await Promise.all(loads.map((load) => load.stop()))).flat()
  t.ok(results.length > 1000, `${results.length} client requests were sent over the outage`)
  t.same(failures(results), [], 'none of them failed')
})

interface FleetBody { self: string; leader: string | null; members: { id: string; admin: string }[] }
interface EventRow { id: number; time: string; actor: string; action: string; replica?: string }

async function eventsOf (replica: Replica): Promise<EventRow[]> {
  return (await adminClient(replica.adminUrl).get('/api/v1/events')).json<{ events: EventRow[] }>().events
}

/** Polls `check` every 50 ms until it holds or `limitMs` passed. */
async function eventually (limitMs: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + limitMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await sleep(50)
  }
}

async function fleetView (replica: Replica): Promise<FleetBody> {
  return (await adminClient(replica.adminUrl).get('/api/v1/fleet')).json<FleetBody>()
}

/** Polls until every replica names the same leader; returns it. */
async function agreedLeader (replicas: readonly Replica[], limitMs: number, not: string | null = null): Promise<string | null> {
  const deadline = Date.now() + limitMs
  let views: (FleetBody | null)[] = []
  while (Date.now() < deadline) {
    views = await Promise.all(replicas.map((r) => fleetView(r).catch(() => null)))
    const leaders = new Set(views.map((v) => v?.leader ?? null))
    const [only] = leaders
    if (leaders.size === 1 && only !== null && only !== undefined && only !== not && views.every((v) => v !== null && v.members.length === replicas.length)) return only
    await sleep(100)
  }
  process.stderr.write(`no agreed leader within ${limitMs} ms: ${JSON.stringify(views)}\n`)
  return null
}

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

t.test('a rollout started on a follower is driven by the leader; kill -9 of the leader mid-rollout: another one finishes it, never two at once', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [10, 30, 60, 100]
      interval: 1s
      analysis: { minRequests: 5, maxErrorRate: 0.5, maxErrorRatio: 100, maxP99Ms: 5000, maxP99Ratio: 100, failureThreshold: 3 }
`)
  const leaderId = await agreedLeader(replicas, 10_000)
  const leader = replicas.find((r) => r.id === leaderId) as Replica
  const followers = replicas.filter((r) => r !== leader)
  const [starter, survivor] = followers as [Replica, Replica]
  const loads = replicas.map((r) => startTraffic(r.url, { rate: 60, maxMs: 40_000 }))
  t.teardown(async () => { for (const load of loads) await load.stop() })
  const started = await adminClient(starter.adminUrl).call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201, started.body)
  // Wait for the leader to take a step, then kill it.
  const stepped = Date.now() + 10_000
  let step = -1
  while (Date.now() < stepped) {
    step = (await adminClient(starter.adminUrl).get('/api/v1/routes/app/rollout')).json<{ rollout: { step: number } | null }>().rollout?.step ?? -1
    if (step >= 1) break
    await sleep(100)
  }
  t.ok(step >= 1, `the leader stepped the rollout (step ${step})`)
  const view = (await adminClient(survivor.adminUrl).get('/api/v1/routes/app/rollout')).json<{ leader: string | null }>()
  t.equal(view.leader, leader.id, 'the rollout view names the leader')
  const killedAt = Date.now()
  leader.weir.child.kill('SIGKILL')
  const rest = [starter, survivor]
  // The dead leader's key goes with its lease: until then the others still name it.
  const next = await agreedLeader(rest, 15_000, leader.id)
  t.ok(next !== null && next !== leader.id, `${next} took over ${Date.now() - killedAt} ms after the kill (lease TTL 5 s)`)
  const deadline = Date.now() + 30_000
  let phase = ''
  while (Date.now() < deadline) {
    phase = (await adminClient(survivor.adminUrl).get('/api/v1/routes/app/rollout')).json<{ phase: string }>().phase
    if (phase !== 'progressing' && phase !== 'promoting') break
    await sleep(200)
  }
  t.equal(phase, 'succeeded', 'the new leader finished the rollout')
  // The fleet's event log, the same on every replica: each controller decision names its replica.
  const logs = await Promise.all(rest.map(async (r) => (await adminClient(r.adminUrl).get('/api/v1/events')).json<{ events: EventRow[] }>().events))
  t.same(logs[0]?.map((e) => e.id), logs[1]?.map((e) => e.id), 'GET /events reads the same on both replicas')
  const decisions = (logs[0] ?? []).filter((e) => e.actor === 'controller')
  const before = decisions.filter((e) => Date.parse(e.time) < killedAt)
  const after = decisions.filter((e) => Date.parse(e.time) >= killedAt)
  t.same([...new Set(before.map((e) => e.replica))], [leader.id], `before the kill only ${leader.id} wrote decisions (${before.map((e) => e.action).join(', ')})`)
  t.same([...new Set(after.map((e) => e.replica))], [next], `after it only ${next} (${after.map((e) => e.action).join(', ')})`)
})

/** A canary that answers 500 to 30 % of requests (every request whose counter ends in 0, 3 or 7). */
function failing30 (): Handler {
  let n = 0
  return (_req, res) => {
    const failed = [0, 3, 7].includes(n++ % 10)
    res.statusCode = failed ? 500 : 200
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ version: 'canary', failed }))
  }
}

interface RolloutBodyLite { phase: string; rollout: { reason: string | null; lastCheck: { checks: { name: string; verdict: string; detail: string }[] } | null } | null }

t.test('a canary failing 30 % with traffic only through the followers is reverted by the leader\'s analysis of the fleet\'s traffic', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [50, 100]
      interval: 2s
      analysis: { minRequests: 20, maxErrorRate: 0.05, maxErrorRatio: 100, maxP99Ms: 5000, maxP99Ratio: 100, failureThreshold: 1 }
      guard: { maxErrorRate: 0.9, minRequests: 1000 }
`, failing30())
  const leaderId = await agreedLeader(replicas, 10_000)
  const leader = replicas.find((r) => r.id === leaderId) as Replica
  const followers = replicas.filter((r) => r !== leader)
  // The leader itself serves nothing: whatever it judges, it judges on the others' traffic.
  const loads = followers.map((r) => startTraffic(r.url, { rate: 60, maxMs: 30_000 }))
  t.teardown(async () => { for (const load of loads) await load.stop() })
  t.equal((await adminClient(leader.adminUrl).call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const deadline = Date.now() + 20_000
  let view: RolloutBodyLite | null = null
  while (Date.now() < deadline) {
    view = (await adminClient(leader.adminUrl).get('/api/v1/routes/app/rollout')).json<RolloutBodyLite>()
    if (view.phase !== 'progressing') break
    await sleep(200)
  }
  t.equal(view?.phase, 'failed', 'the rollout was reverted')
  const check = view?.rollout?.lastCheck?.checks.find((c) => c.name === 'error-rate')
  t.equal(check?.verdict, 'fail', `by the error-rate check: ${check?.detail}`)
  const own = (await adminClient(leader.adminUrl).get('/api/v1/routes/app/stats?window=60')).json<{ versions: Record<string, { requests: number }> }>().versions.canary?.requests ?? 0
  t.equal(own, 0, 'which the leader could only have run on the followers\' traffic: it served no canary request itself')
  const fleet = (await adminClient(followers[0]?.adminUrl ?? '').get('/api/v1/routes/app/stats?window=60&scope=fleet')).json<{ scope: string; replicas: string[]; versions: Record<string, { requests: number; errors: number }> }>()
  t.equal(fleet.scope, 'fleet')
  t.same([...fleet.replicas].sort(), replicas.map((r) => r.id).sort(), 'stats?scope=fleet answers over every replica')
  t.ok((fleet.versions.canary?.errors ?? 0) > 0, `and counts the canary's errors (${fleet.versions.canary?.errors} of ${fleet.versions.canary?.requests})`)
  const probes = (await Promise.all(replicas.map(probe))).flat()
  t.same([...new Set(probes)], ['stable'], 'every replica serves stable again')
})

t.test('with traffic only through one follower, its own fast guard reverts the canary on every replica', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [50, 100]
      interval: 60s
      analysis: { minRequests: 20 }
      guard: { maxErrorRate: 0.2, minRequests: 20 }
`, failing30())
  const leaderId = await agreedLeader(replicas, 10_000)
  const follower = replicas.find((r) => r.id !== leaderId) as Replica
  t.equal((await adminClient(follower.adminUrl).call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  await sleep(300)
  const load = startTraffic(follower.url, { rate: 100, maxMs: 20_000 })
  t.teardown(() => load.stop())
  const deadline = Date.now() + 10_000
  let phase = ''
  while (Date.now() < deadline) {
    phase = (await adminClient(follower.adminUrl).get('/api/v1/routes/app/rollout')).json<{ phase: string }>().phase
    if (phase !== 'progressing') break
    await sleep(100)
  }
  t.equal(phase, 'failed', 'the guard reverted the rollout')
  const events = (await adminClient(follower.adminUrl).get('/api/v1/events')).json<{ events: EventRow[] }>().events
  t.ok(events.some((e) => e.actor === 'controller' && e.action === 'rollout.failed' && e.replica === follower.id), `the follower wrote the revert (${events.filter((e) => e.actor === 'controller').map((e) => `${e.action} by ${e.replica}`).join(', ')})`)
  const reason = (await adminClient(follower.adminUrl).get('/api/v1/routes/app/rollout')).json<RolloutBodyLite>().rollout?.reason
  t.match(String(reason), /^fast guard: /, `the fast guard's (${reason})`)
  await sleep(300)
  const probes = (await Promise.all(replicas.map(probe))).flat()
  t.same([...new Set(probes)], ['stable'], 'every replica follows it')
})

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
    await sleep(200)
  }
  const lostAfter = Date.now() - stoppedAt
  t.not(view?.leader, leader.id, `${leader.id} no longer names itself the leader ${lostAfter} ms after etcd went away (lease TTL 3 s; it steps down at 80 % of it)`)
  t.ok(lostAfter >= 1000 && lostAfter < 5000, 'not at once (it leads while its lease is surely valid), and within the 3 s lease, not the default 5 s')
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
  const prefix = `/weir-test-${process.pid}-${++fleets}/`
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
