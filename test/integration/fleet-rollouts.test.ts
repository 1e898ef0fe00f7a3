// Rollouts on a fleet of three `weir serve` processes on a real etcd: one leader drives them, a
// killed leader's successor finishes them, the leader judges the fleet's traffic, and any
// replica's fast guard reverts for all.

import t from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { startEtcd } from '../helpers/etcd.ts'
import { agreedLeader, eventually, failing30, fleetOf, probe, settledPhase, type EventRow, type Replica, type RolloutBodyLite } from '../helpers/fleet.ts'
import { sleep } from '../helpers/raw-http.ts'
import { startTraffic } from '../helpers/traffic.ts'

/** An event as GET /events answers it, with the rollout's summary a rollout event records. */
interface StepEvent extends EventRow { new?: { revision: number; rollout?: { step: number; weight: number } | null } }

/** The route revisions the log's change events record, in id order (a change and its event are one etcd transaction). */
const changeRevisions = (events: readonly StepEvent[]): number[] => events.flatMap((e) => (typeof e.new?.revision === 'number' ? [e.new.revision] : []))

const revisionsUpTo = (last: number): number[] => Array.from({ length: last }, (_, i) => i + 1)

const STEPS = [10, 30, 60, 100]
const INTERVAL_MS = 1000
/** fleet.leaseTtl's default. */
const LEASE_TTL_MS = 5000

t.test('a rollout started on a follower is driven by the leader; kill -9 of the leader mid-rollout: another one finishes it, never two at once', async (t) => {
  const etcd = await startEtcd(t)
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [${STEPS.join(', ')}]
      interval: ${INTERVAL_MS / 1000}s
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
  const tookOver = Date.now() - killedAt
  t.ok(next !== null && next !== leader.id, `${next} took over ${tookOver} ms after the kill (lease TTL 5 s)`)
  // The lease expires at most one TTL after the last renewal; etcd's expiry sweep, the 250 ms
  // re-read and this 100 ms poll come on top: 1.5 s of slack for a loaded machine.
  const boundMs = LEASE_TTL_MS + INTERVAL_MS + 1500
  t.ok(tookOver <= boundMs, `within the lease TTL plus one check interval (${tookOver} ms ≤ ${boundMs} ms)`)
  t.equal(await settledPhase(survivor, 30_000), 'succeeded', 'the new leader finished the rollout')
  // The fleet's event log, the same on every replica: each controller decision names its replica.
  const logs = await Promise.all(rest.map(async (r) => (await adminClient(r.adminUrl).get('/api/v1/events')).json<{ events: StepEvent[] }>().events))
  t.same(logs[0]?.map((e) => e.id), logs[1]?.map((e) => e.id), 'GET /events reads the same on both replicas')
  const decisions = (logs[0] ?? []).filter((e) => e.actor === 'controller')
  const before = decisions.filter((e) => Date.parse(e.time) < killedAt)
  const after = decisions.filter((e) => Date.parse(e.time) >= killedAt)
  t.same([...new Set(before.map((e) => e.replica))], [leader.id], `before the kill only ${leader.id} wrote decisions (${before.map((e) => e.action).join(', ')})`)
  t.same([...new Set(after.map((e) => e.replica))], [next], `after it only ${next} (${after.map((e) => e.action).join(', ')})`)
  // It resumed where the dead leader left the rollout in the store, not from the start.
  const stepOf = (e: StepEvent | undefined): number => e?.new?.rollout?.step ?? -1
  const persisted = stepOf(before.at(-1) ?? (logs[0] ?? []).find((e) => e.action === 'rollout.started'))
  const [first] = after
  t.equal(first?.action, 'rollout.restarted', 'the new leader\'s first decision is to resume the rollout')
  t.ok(stepOf(first) >= persisted && persisted >= 1, `at step ${stepOf(first)}, the step persisted before the kill (${persisted})`)
  const resumedAfter = Date.parse(first?.time ?? '') - killedAt
  t.ok(resumedAfter <= boundMs, `${resumedAfter} ms after the kill (≤ ${boundMs} ms)`)
  // Every step of the policy, once each and in order, over both leaders: none repeated, none skipped.
  const steps = (logs[0] ?? []).filter((e) => e.action === 'rollout.started' || e.action === 'rollout.step')
    .map((e) => ({ step: stepOf(e), weight: e.new?.rollout?.weight }))
  t.same(steps, STEPS.map((weight, step) => ({ step, weight })), `the steps written: ${JSON.stringify(steps)}`)
  const final = (await adminClient(survivor.adminUrl).get('/api/v1/routes/app')).json<{ revision: number }>().revision
  t.same(changeRevisions(logs[0] ?? []), revisionsUpTo(final), `each of the route's ${final} revisions has one event, in id order (the killed leader's last write too)`)
})

t.test('a leader paused past its lease (SIGSTOP) is deposed: after SIGCONT it makes no decision, and the rollout is the new leader\'s', async (t) => {
  const etcd = await startEtcd(t)
  const steps = [10, 20, 30, 40, 50, 60, 100]
  const replicas = await fleetOf(t, etcd, 3, `    rollout:
      steps: [${steps.join(', ')}]
      interval: 1s
      analysis: { minRequests: 5, maxErrorRate: 0.5, maxErrorRatio: 100, maxP99Ms: 5000, maxP99Ratio: 100, failureThreshold: 3 }
`, null, ', leaseTtl: 3s')
  const leaderId = await agreedLeader(replicas, 10_000)
  const leader = replicas.find((r) => r.id === leaderId) as Replica
  const rest = replicas.filter((r) => r !== leader)
  const [starter] = rest as [Replica, Replica]
  // The paused leader's clients would only wait: traffic goes through the two others.
  const loads = rest.map((r) => startTraffic(r.url, { rate: 60, maxMs: 40_000 }))
  t.teardown(async () => { for (const load of loads) await load.stop() })
  t.teardown(() => { if (leader.weir.child.exitCode === null) leader.weir.child.kill('SIGCONT') })
  t.equal((await adminClient(starter.adminUrl).call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const stepOf = async (r: Replica): Promise<number> => (await adminClient(r.adminUrl).get('/api/v1/routes/app/rollout')).json<{ rollout: { step: number } | null }>().rollout?.step ?? -1
  t.ok(await eventually(10_000, async () => await stepOf(starter) >= 1), 'the leader stepped the rollout')
  leader.weir.child.kill('SIGSTOP')
  const next = await agreedLeader(rest, 15_000, leader.id)
  t.ok(next !== null, `${next} took over from the paused ${leader.id}`)
  // Let the new leader resume the rollout (its first decision) before the old one wakes up.
  const eventsOfStarter = async (): Promise<StepEvent[]> => (await adminClient(starter.adminUrl).get('/api/v1/events')).json<{ events: StepEvent[] }>().events
  const decisionsOf = async (): Promise<StepEvent[]> => (await eventsOfStarter()).filter((e) => e.actor === 'controller')
  t.ok(await eventually(10_000, async () => (await decisionsOf()).some((e) => e.replica === next)), 'the new leader made its first decision')
  leader.weir.child.kill('SIGCONT')
  t.ok(await eventually(5000, async () => /is no longer the leader/.test(leader.weir.output())), `${leader.id} woke up and stepped down`)
  t.equal(await settledPhase(starter, 30_000), 'succeeded', 'the new leader finished the rollout')
  const decisions = await decisionsOf()
  const takeover = decisions.find((e) => e.replica === next) as StepEvent
  t.equal(takeover.action, 'rollout.restarted', 'the new leader took the rollout over where it was persisted')
  // A decision and its event are one etcd transaction: the log's order (by id) is the order of
  // the writes, whenever the writer was paused.
  const late = decisions.filter((e) => e.replica === leader.id && e.id > takeover.id)
  t.same(late.map((e) => e.action), [], `${leader.id} made no decision after the takeover (${decisions.map((e) => `${e.action} by ${e.replica} at revision ${e.new?.revision}`).join(', ')})`)
  t.same([...new Set(decisions.filter((e) => e.id >= takeover.id).map((e) => e.replica))], [next], 'every decision since is the new leader\'s')
  // The rollout in the store is the new leader's last write, and every replica (the old leader too) reads it.
  const views = await Promise.all(replicas.map(async (r) => (await adminClient(r.adminUrl).get('/api/v1/routes/app/rollout')).json<{ revision: number; leader: string | null; rollout: { phase: string } | null }>()))
  const last = decisions.at(-1)
  t.equal(last?.replica, next, `the last decision (${last?.action}) is the new leader's`)
  t.same(views.map((v) => v.revision), replicas.map(() => last?.new?.revision), 'every replica holds the revision it wrote')
  t.same(changeRevisions(await eventsOfStarter()), revisionsUpTo(views[0]?.revision ?? 0), 'each of the route\'s revisions has one event, in id order')
  t.same(views.map((v) => v.leader), replicas.map(() => next), 'and names it the leader')
  const written = (await eventsOfStarter())
    .filter((e) => e.action === 'rollout.started' || e.action === 'rollout.step').map((e) => e.new?.rollout?.weight)
  t.same(written, steps, 'no step repeated or skipped')
  // A decision the old leader tried after waking is refused by the fence and logged (it may
  // have tried none: it can step down before any check comes due).
  const refusals = leader.weir.output().split('\n').filter((line) => line.includes('was not written: the fence refused it'))
  t.comment(`${refusals.length} fenced write(s) of ${leader.id} refused after it woke up`)
  t.ok(refusals.every((line) => line.includes(`"replica":"${leader.id}"`)), 'each refusal names the deposed replica')
  t.same(rest.flatMap((r) => r.weir.output().split('\n').filter((line) => line.includes('the fence refused it'))), [], 'the leader\'s fence never refused the live leader')
})

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
