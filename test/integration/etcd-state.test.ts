// The etcd back ends themselves, on a real etcd started by the test: a fenced write (a leader's
// decision) is refused once the election key it requires is gone.

import t from 'tap'
import { Etcd3 } from 'etcd3'
import { openEtcdStore } from '../../src/state/etcd-store.ts'
import type { RouteUpdate } from '../../src/state/store.ts'
import { startEtcd } from '../helpers/etcd.ts'
import { fleetPrefix } from '../helpers/fleet.ts'

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
