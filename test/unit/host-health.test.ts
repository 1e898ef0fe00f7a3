// The ejection rules of a version's hosts and the retry budget, on real groups and budgets (the
// pools are real undici pools that are never asked for anything).

import t from 'tap'
import type { OutlierConfig } from '../../src/config/model.ts'
import type { HostChange } from '../../src/metrics/host-health-book.ts'
import { HostHealthBook } from '../../src/metrics/host-health-book.ts'
import { HostHealthRegistry } from '../../src/proxy/host-health.ts'
import { RetryBudget } from '../../src/proxy/retry-budget.ts'
import { UpstreamPools, type UpstreamGroup } from '../../src/proxy/upstream-pools.ts'
import type { UpstreamName } from '../../src/vocabulary.ts'

const outlier: OutlierConfig = { consecutiveFailures: 3, baseEjectionMs: 60_000, maxEjectionMs: 150_000, maxEjectedPercent: 50 }
const settings = { connectMs: 1000, rejectUnauthorized: true, ca: undefined }

function groupOf (version: UpstreamName, count: number, policy: Partial<{ outlier: OutlierConfig | false; balance: 'round-robin' | 'least-request' }> = {}) {
  const changes: HostChange[] = []
  const registry = new HostHealthRegistry((c) => changes.push(c))
  const pools = new UpstreamPools()
  const origins = Array.from({ length: count }, (_, i) => `http://127.0.0.1:${10_001 + i}`)
  const group = pools.group(origins, settings, { version, balance: policy.balance ?? 'round-robin', outlier: policy.outlier ?? outlier }, (o) => registry.get('app', version, o))
  return { group, changes, registry, pools, close: () => { registry.retain(new Set()); return pools.destroy() } }
}

function failTimes (group: UpstreamGroup, index: number, times: number): void {
  for (let i = 0; i < times; i++) group.failed(group.targets[index]!, 'refused')
}

t.test('consecutive failures eject a host; a success in between starts the count again', async (t) => {
  const { group, changes, close } = groupOf('canary', 4)
  t.teardown(close)
  failTimes(group, 0, 2)
  group.succeeded(group.targets[0]!)
  failTimes(group, 0, 2)
  t.equal(changes.length, 0, 'two, a success, two: not three in a row')
  failTimes(group, 0, 1)
  t.same(changes.map((c) => [c.cause, c.host, c.healthy, c.forMs]), [['ejected', 'http://127.0.0.1:10001', false, 60_000]])
  t.match(changes[0]!.detail, /3 failed attempts in a row \(the last: refused\)/)
  const picked = new Set(Array.from({ length: 12 }, () => group.pick()!.origin))
  t.notOk(picked.has('http://127.0.0.1:10001'), 'an ejected host is not picked')
  t.equal(picked.size, 3)
})

t.test('at most maxEjectedPercent of a version is out at once, but one host always may be', async (t) => {
  const four = groupOf('canary', 4)
  t.teardown(four.close)
  for (let i = 0; i < 4; i++) failTimes(four.group, i, 3)
  t.equal(four.changes.length, 2, '50 % of 4 hosts')
  const one = groupOf('canary', 1)
  t.teardown(one.close)
  failTimes(one.group, 0, 3)
  t.equal(one.changes.length, 1, 'a canary\'s only host may be ejected')
  t.equal(one.group.pick(), null, 'then the canary has no host (its requests fail over or get 503)')
  const none = groupOf('canary', 4, { outlier: { ...outlier, maxEjectedPercent: 0 } })
  t.teardown(none.close)
  failTimes(none.group, 0, 3)
  t.equal(none.changes.length, 0, 'maxEjectedPercent 0: never')
})

t.test('stable\'s last available host is never ejected', async (t) => {
  const one = groupOf('stable', 1)
  t.teardown(one.close)
  failTimes(one.group, 0, 10)
  t.equal(one.changes.length, 0)
  t.ok(one.group.pick() !== null)
  const two = groupOf('stable', 2, { outlier: { ...outlier, maxEjectedPercent: 100 } })
  t.teardown(two.close)
  failTimes(two.group, 0, 3)
  failTimes(two.group, 1, 3)
  t.equal(two.changes.length, 1, 'one of two out; the other stays')
})

t.test('each ejection lasts longer than the last, up to maxEjectionTime', async (t) => {
  const { group, changes, close } = groupOf('canary', 4)
  t.teardown(close)
  const health = group.targets[0]!.health
  for (let i = 0; i < 4; i++) {
    failTimes(group, 0, 3)
    // Returned by hand (as its timer would), straight away: no good behaviour in between.
    health.ejected = false
    health.dispose()
  }
  t.same(changes.map((c) => c.forMs), [60_000, 120_000, 150_000, 150_000])
})

t.test('a retry looks past the failed host without moving round-robin\'s turn', async (t) => {
  const { group, close } = groupOf('stable', 3, { outlier: false })
  t.teardown(close)
  const first = group.pick()!
  const retry = group.pick(first)!
  t.not(retry, first)
  const next = group.pick()!
  t.equal(next, retry, 'the next request takes the turn after the first, not after the retry')
})

t.test('the retry budget: minRetries plus budgetPercent of the window\'s requests, never more', async (t) => {
  const budget = new RetryBudget({ budgetPercent: 20, minRetries: 2, windowMs: 10_000 })
  t.ok(budget.take())
  t.ok(budget.take())
  t.notOk(budget.take(), 'two without any request')
  for (let i = 0; i < 10; i++) budget.request()
  t.ok(budget.take(), '2 + 20 % of 10 = 4')
  t.ok(budget.take())
  t.notOk(budget.take())
  t.ok(budget.isFor({ budgetPercent: 20, minRetries: 2, windowMs: 10_000 }))
  t.notOk(budget.isFor({ budgetPercent: 10, minRetries: 2, windowMs: 10_000 }))
})

t.test('the control plane\'s book: a host is out while any process has it out', async (t) => {
  const book = new HostHealthBook()
  const change = (healthy: boolean): HostChange => ({ route: 'app', version: 'stable', host: 'http://h', healthy, cause: healthy ? 'returned' : 'ejected', detail: '' })
  t.ok(book.apply(change(false), 1), 'the first process out changes it')
  t.notOk(book.apply(change(false), 2))
  t.notOk(book.apply(change(true), 1), 'still out in process 2')
  t.notOk(book.healthy('app', 'stable', 'http://h'))
  book.forget(2)
  t.ok(book.healthy('app', 'stable', 'http://h'), 'a process gone takes its view with it')
})
