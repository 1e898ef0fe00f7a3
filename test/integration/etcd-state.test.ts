// The etcd back ends themselves, on a real etcd started by the test: a fenced write (a leader's
// decision) is refused once the election key it requires is gone, a write and its event are one
// transaction (both or neither), and the fleet's event log keeps
// only the newest `retain` events in etcd and serves them in order.

import t from 'tap'
import { Etcd3 } from 'etcd3'
import { openEtcdEventLog } from '../../src/state/etcd-event-log.ts'
import { openEtcdStore } from '../../src/state/etcd-store.ts'
import { join } from 'node:path'
import { openEventLog, type EventInput } from '../../src/state/event-log.ts'
import type { RouteState, RouteUpdate } from '../../src/state/store.ts'
import { startEtcd } from '../helpers/etcd.ts'
import { eventually, fleetPrefix } from '../helpers/fleet.ts'

const split = (canary: number): RouteUpdate => ({ weights: { stable: 10_000 - canary, canary, green: 0 } })

t.test('a fenced write is written while its election key exists and refused (and told) once the key\'s lease is gone', async (t) => {
  const etcd = await startEtcd(t)
  const prefix = fleetPrefix()
  const store = await openEtcdStore({ endpoints: [etcd.url], prefix, timeoutMs: 1000, auth: undefined, tls: undefined })
  t.teardown(() => store.close())
  const refusals: { route: string; why: string }[] = []
  store.onFenceRefused = (route, why) => { refusals.push({ route, why }) }
  // The fleet's election key, under a lease, as fleet.ts holds it.
  const lease = store.client.lease(3)
  const id = await lease.grant()
  const fence = `${prefix}election/controller/${id}`
  await lease.put(`election/controller/${id}`).value('replica-1')
  store.fence = () => fence
  const first = await store.compareAndSet('app', 0, split(1000), { fenced: true })
  t.equal(first.ok, true, 'written while the key exists')
  t.same(refusals, [], 'and not refused')
  // The lease is gone (as after a pause past its TTL); this replica still believes it leads.
  await lease.revoke()
  const second = await store.compareAndSet('app', 1, split(3000), { fenced: true })
  t.equal(second.ok, false, 'refused once the key is gone')
  t.equal(store.get('app')?.revision, 1, 'nothing changed in this replica\'s view')
  const client = new Etcd3({ hosts: etcd.url })
  t.teardown(() => client.close())
  t.equal(JSON.parse(String(await client.get(`${prefix}routes/app`).string())).revision, 1, 'nor in etcd')
  t.match(refusals, [{ route: 'app', why: /election key .* is gone/ }], 'the refusal is told, naming the key')
  // A replica that knows it no longer leads does not even try.
  store.fence = () => null
  t.equal((await store.compareAndSet('app', 1, split(3000), { fenced: true })).ok, false, 'refused without a fence')
  t.match(refusals.at(-1), { route: 'app', why: /does not lead/ })
  t.equal((await store.compareAndSet('app', 1, split(3000))).ok, true, 'an unfenced write (an admin\'s, the guard\'s revert) still goes through')
})

t.test('a write and its event are one etcd transaction: the event\'s id is the revision that wrote the change; a refused write writes neither', async (t) => {
  const etcd = await startEtcd(t)
  const prefix = fleetPrefix()
  const store = await openEtcdStore({ endpoints: [etcd.url], prefix, timeoutMs: 1000, auth: undefined, tls: undefined })
  t.teardown(() => store.close())
  const events = await openEtcdEventLog(store.client, { endpoints: [etcd.url], replica: 'replica-1' })
  t.teardown(() => events.close())
  store.recordEventsIn(events)
  const event = (state: RouteState): EventInput => ({ actor: 'test', route: 'app', action: 'weights.set', new: { revision: state.revision } })
  const client = new Etcd3({ hosts: etcd.url })
  t.teardown(() => client.close())
  const inEtcd = async (): Promise<number> => Object.keys(await client.getAll().prefix(`${prefix}events/`).strings()).length
  const first = await store.compareAndSet('app', 0, split(1000), { event })
  const key = (await client.get(`${prefix}routes/app`).exec()).kvs[0]
  t.match(first, { ok: true, event: { route: 'app', replica: 'replica-1', new: { revision: 1 } } }, 'the write answers with its event, naming the replica')
  t.equal(first.ok && first.event?.id, Number(key?.mod_revision), 'whose id is the revision that wrote the route')
  t.same(events.since().map((e) => e.id), [Number(key?.mod_revision)], 'in the log at once')
  t.equal((await store.compareAndSet('app', 0, split(2000), { event })).ok, false, 'a stale write is refused')
  store.fence = () => null
  t.equal((await store.compareAndSet('app', 1, split(2000), { event, fenced: true })).ok, false, 'and a fenced one this replica may not make')
  t.equal(await inEtcd(), 1, 'neither wrote an event')
  await etcd.stop()
  await t.rejects(store.compareAndSet('app', 1, split(3000), { event }), { code: 'WEIR_ERR_STATE_UNAVAILABLE' }, 'with etcd away the write fails')
  await etcd.start()
  t.ok(await eventually(10_000, async () => store.connected), 'etcd back')
  t.equal(JSON.parse(String(await client.get(`${prefix}routes/app`).string())).revision, 1, 'the failed write changed nothing')
  t.equal(await inEtcd(), 1, 'and wrote no event')
  const fileLog = await openEventLog(join(t.testdir(), 'events.jsonl'))
  t.teardown(() => fileLog.close())
  t.throws(() => store.recordEventsIn(fileLog), TypeError, 'a log outside etcd cannot be written in its transactions')
})

t.test('the event log keeps the newest `retain` events in etcd; every reader gets those, in order', async (t) => {
  const etcd = await startEtcd(t)
  const client = new Etcd3({ hosts: etcd.url })
  t.teardown(() => client.close())
  const fleet = client.namespace(fleetPrefix())
  const retain = 5
  const writer = await openEtcdEventLog(fleet, { endpoints: [etcd.url], replica: 'replica-1', retain, trimEvery: 10, maxInMemory: 100 })
  t.teardown(() => writer.close())
  const appended = []
  // Two retention passes: after the 10th and the 20th append.
  for (let i = 0; i < 20; i++) appended.push(await writer.append({ actor: 'test', action: 'weights.set', reason: `event ${i}` }))
  const newest = appended.slice(-retain).map((e) => e.id)
  const inEtcd = async (): Promise<string[]> => await fleet.namespace('events/').getAll().sort('Mod', 'Ascend').strings().then((all) => Object.values(all))
  t.ok(await eventually(5000, async () => (await inEtcd()).length === retain), `etcd holds ${retain} events after the retention pass`)
  t.same((await inEtcd()).map((v) => (JSON.parse(v) as { reason: string }).reason), appended.slice(-retain).map((e) => e.reason), 'the newest ones; the oldest are gone')
  // A replica that starts now (GET /events reads its log) serves only what etcd kept, oldest first.
  const reader = await openEtcdEventLog(fleet, { endpoints: [etcd.url], replica: 'replica-2', retain, maxInMemory: 100 })
  t.teardown(() => reader.close())
  t.same(reader.since().map((e) => e.id), newest, 'a new reader gets the newest 5, in id order')
  t.same(reader.since(newest[1], 2).map((e) => e.id), newest.slice(2, 4), 'and pages forward from an id')
  // The writer's own memory is bounded by maxInMemory, not by etcd's retention.
  const small = await openEtcdEventLog(fleet, { endpoints: [etcd.url], replica: 'replica-3', retain, maxInMemory: 3 })
  t.teardown(() => small.close())
  t.same(small.since().map((e) => e.id), newest.slice(-3), 'with maxInMemory 3, the newest 3')
})
