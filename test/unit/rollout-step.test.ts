// The rollout state machine, table by table: every phase change of both strategies from a state
// and an observation, with the route change and the webhooks it asks for.

import t from 'tap'
import type { CheckOutcome } from '../../src/rollout/analysis.ts'
import type { RolloutPlan } from '../../src/rollout/policy.ts'
import { readRollout } from '../../src/rollout/rollout-view.ts'
import { advance, gateOnAdvance, isCheckDue, isTickDue, start, tickGate, type CheckResult, type RolloutState, type Transition } from '../../src/rollout/step.ts'

const T0 = 1_700_000_000_300 // 300 ms into a clock second

function plan (over: Partial<RolloutPlan> = {}): RolloutPlan {
  return {
    strategy: 'canary',
    steps: [1000, 5000, 10_000],
    intervalMs: 1000,
    analysis: { minRequests: 20, maxErrorRate: 0.01, maxErrorRatio: 2, maxP99Ms: 500, maxP99Ratio: 1.5, p99ToleranceMs: 5, significance: 0.01, failureThreshold: 2 },
    guard: { maxErrorRate: 0.5, minRequests: 20 },
    smoke: null,
    watchMs: 3000,
    webhooks: [],
    ...over,
  }
}

const STABLE_ONLY = { stable: 10_000, canary: 0, green: 0 }
const check = (verdict: CheckOutcome['verdict'], name = 'error-rate'): CheckOutcome => ({ name, verdict, value: 0.3, threshold: 0.01, detail: `${name} ${verdict}` })
const result = (at: number, ...checks: CheckOutcome[]): CheckResult => ({ at, verdict: checks.some((c) => c.verdict === 'fail') ? 'fail' : checks.some((c) => c.verdict === 'hold') ? 'hold' : 'pass', checks })
const checked = (state: RolloutState, now: number, ...checks: CheckOutcome[]): Transition => advance(state, { kind: 'check', now, result: result(now, ...checks) })
const started = (p: RolloutPlan = plan()): RolloutState => start(p, STABLE_ONLY, T0, 'ops', 'r1').state

t.test('a canary without pre-rollout webhooks starts at its first step at once', async (t) => {
  const tr = start(plan(), STABLE_ONLY, T0, 'ops', 'r1')
  t.equal(tr.action, 'rollout.started')
  t.same(tr.effect, { kind: 'weights', weights: { stable: 9000, canary: 1000, green: 0 } })
  t.match(tr.state, { phase: 'progressing', step: 0, weight: 10, windowStart: T0 - 300, nextCheckAt: T0 + 1000 })
  t.notOk(isCheckDue(tr.state, T0 + 999))
  t.ok(isCheckDue(tr.state, T0 + 1000))
})

t.test('with a pre-rollout webhook, nothing moves until its check passes', async (t) => {
  const tr = start(plan({ webhooks: [{ name: 'p', type: 'pre-rollout', url: 'http://x/', timeoutMs: 1000, metadata: {} }] }), STABLE_ONLY, T0, 'ops', 'r1')
  t.same(tr.effect, { kind: 'none' })
  t.match(tr.state, { phase: 'progressing', step: -1, weight: 0, nextCheckAt: T0 })
  const next = checked(tr.state, T0 + 10, check('pass', 'webhook:p'))
  t.same(next.effect, { kind: 'weights', weights: { stable: 9000, canary: 1000, green: 0 } })
  t.equal(next.state.step, 0)
})

t.test('a check that is not due changes nothing', async (t) => {
  const s = started()
  const tr = checked(s, T0 + 500, check('fail'))
  t.equal(tr.action, 'none')
  t.equal(tr.state, s)
})

t.test('passing checks walk the steps, then promote; the promotion swaps upstreams and notifies post-rollout', async (t) => {
  let s = started()
  const steps: number[] = []
  for (let i = 1; i <= 2; i++) {
    const at = s.nextCheckAt
    const tr = checked(s, at, check('pass'))
    t.equal(tr.action, 'rollout.step')
    s = tr.state
    steps.push(s.weight)
    t.equal(s.windowStart, Math.floor(at / 1000) * 1000, 'the window restarts with the step')
  }
  t.same(steps, [50, 100])
  const last = checked(s, s.nextCheckAt, check('pass'))
  t.equal(last.action, 'rollout.promoting')
  t.equal(last.state.phase, 'promoting')
  t.same(last.effect, { kind: 'none' })
  const done = advance(last.state, { kind: 'tick', now: s.nextCheckAt + 100 })
  t.equal(done.action, 'rollout.succeeded')
  t.same(done.effect, { kind: 'promote', from: 'canary', weights: STABLE_ONLY })
  t.same(done.notify, ['post-rollout'])
  t.equal(done.state.phase, 'succeeded')
})

t.test('a holding check keeps the step and its growing window, and says why', async (t) => {
  const s = started()
  const tr = checked(s, s.nextCheckAt, check('hold', 'requests'))
  t.equal(tr.action, 'rollout.held')
  t.same(tr.effect, { kind: 'none' })
  t.match(tr.state, { phase: 'progressing', step: 0, windowStart: s.windowStart, failures: 0, nextCheckAt: s.nextCheckAt + 1000 })
  t.equal(tr.state.reason, 'holding: requests: requests hold')
  t.equal(checked(tr.state, tr.state.nextCheckAt, check('hold', 'requests')).state.history.length, tr.state.history.length, 'the same reason is not logged twice')
})

t.test('failed checks below the threshold start a fresh window; at the threshold the canary is reverted', async (t) => {
  const s = started()
  const first = checked(s, s.nextCheckAt, check('fail'))
  t.equal(first.action, 'rollout.check-failed')
  t.same(first.effect, { kind: 'none' })
  t.match(first.state, { phase: 'progressing', step: 0, failures: 1, windowStart: Math.floor(s.nextCheckAt / 1000) * 1000 })
  const second = checked(first.state, first.state.nextCheckAt, check('fail'))
  t.equal(second.action, 'rollout.failed')
  t.same(second.effect, { kind: 'weights', weights: STABLE_ONLY })
  t.same(second.notify, ['rollback'])
  t.match(second.state, { phase: 'failed', weight: 0, failures: 2 })
  t.match(second.reason, { check: 'error-rate', value: 0.3, threshold: 0.01 })
})

t.test('the fast guard reverts at once whenever the version has traffic', async (t) => {
  const tripped = { name: 'guard', verdict: 'fail' as const, value: 0.9, threshold: 0.5, detail: 'canary error rate 0.9' }
  const s = started()
  const tr = advance(s, { kind: 'guard', now: T0 + 200, tripped })
  t.equal(tr.action, 'rollout.failed')
  t.same(tr.effect, { kind: 'weights', weights: STABLE_ONLY })
  t.match(tr.state.reason, /^fast guard: canary error rate 0\.9/)
  const paused = advance(s, { kind: 'command', command: 'pause', now: T0 + 100, actor: 'ops' }).state
  t.equal(advance(paused, { kind: 'guard', now: T0 + 200, tripped }).action, 'rollout.failed', 'a paused canary still has traffic')
  const before = start(plan({ webhooks: [{ name: 'p', type: 'pre-rollout', url: 'http://x/', timeoutMs: 1000, metadata: {} }] }), STABLE_ONLY, T0, 'ops', 'r1').state
  t.equal(advance(before, { kind: 'guard', now: T0 + 200, tripped }).action, 'none', 'no traffic yet: nothing to guard')
})

t.test('the confirm-promotion gate holds the last step until it agrees', async (t) => {
  const gated = plan({ steps: [5000], webhooks: [{ name: 'g', type: 'confirm-promotion', url: 'http://x/', timeoutMs: 1000, metadata: {} }] })
  const s = started(gated)
  const refused = advance(s, { kind: 'check', now: s.nextCheckAt, result: { ...result(s.nextCheckAt, check('pass')), gate: { ok: false, detail: 'answered 403' } } })
  t.equal(refused.action, 'rollout.held')
  t.match(refused.state, { phase: 'progressing', waitingFor: 'confirm-promotion', reason: 'waiting for confirm-promotion: answered 403' })
  const s2 = refused.state
  const agreed = advance(s2, { kind: 'check', now: s2.nextCheckAt, result: { ...result(s2.nextCheckAt, check('pass')), gate: { ok: true, detail: 'answered 200' } } })
  t.equal(agreed.action, 'rollout.promoting')
})

t.test('blue/green: smoke, switch at once, watch, then promote green; a failed watch check switches back at once', async (t) => {
  const bg = plan({ strategy: 'bluegreen', smoke: { path: '/health', timeoutMs: 1000 }, analysis: { ...plan().analysis, failureThreshold: 3 } })
  const s = start(bg, STABLE_ONLY, T0, 'ops', 'r1').state
  t.match(s, { phase: 'smoke', weight: 0, nextCheckAt: T0 })
  const smokeFailed = checked(s, T0, check('fail', 'smoke'))
  t.equal(smokeFailed.action, 'rollout.check-failed', 'a smoke failure counts toward the threshold')
  t.same(smokeFailed.effect, { kind: 'none' }, 'and never switches')
  const switched = checked(s, T0, check('pass', 'smoke'))
  t.equal(switched.action, 'rollout.switched')
  t.same(switched.effect, { kind: 'weights', weights: { stable: 0, canary: 0, green: 10_000 } })
  t.match(switched.state, { phase: 'watching', weight: 100, watchUntil: T0 + 3000 })
  const w = switched.state
  const onceFailed = checked(w, w.nextCheckAt, check('fail', 'p99'))
  t.equal(onceFailed.action, 'rollout.check-failed')
  t.same(onceFailed.effect, { kind: 'none' })
  const twiceFailed = checked(onceFailed.state, onceFailed.state.nextCheckAt, check('fail', 'p99'))
  t.equal(twiceFailed.action, 'rollout.check-failed', '2 of 3')
  const failedWatch = checked(twiceFailed.state, twiceFailed.state.nextCheckAt, check('fail', 'p99'))
  t.equal(failedWatch.action, 'rollout.failed', 'at the threshold the watch switches back at once')
  t.same(failedWatch.effect, { kind: 'weights', weights: STABLE_ONLY })
  const mid = checked(w, w.nextCheckAt, check('pass'))
  t.equal(mid.action, 'rollout.checked')
  t.equal(mid.state.phase, 'watching')
  const end = checked(mid.state, T0 + 3000, check('pass'))
  t.equal(end.action, 'rollout.promoting')
  const done = advance(end.state, { kind: 'tick', now: T0 + 3100 })
  t.same(done.effect, { kind: 'promote', from: 'green', weights: STABLE_ONLY })
})

t.test('manual gates: pause stops checks, resume restarts the window and extends the watch, promote steps, abort reverts', async (t) => {
  const s = started()
  const paused = advance(s, { kind: 'command', command: 'pause', now: T0 + 100, actor: 'ops' }).state
  t.equal(paused.phase, 'paused')
  t.notOk(isCheckDue(paused, T0 + 60_000), 'no checks while paused')
  t.throws(() => advance(paused, { kind: 'command', command: 'pause', now: T0 + 200, actor: 'ops' }), { name: 'WeirError', code: 'WEIR_ERR_ADMIN_ROLLOUT_STATE' })
  const resumed = advance(paused, { kind: 'command', command: 'resume', now: T0 + 5300, actor: 'ops' }).state
  t.match(resumed, { phase: 'progressing', windowStart: T0 + 4700, nextCheckAt: T0 + 6300 })
  const promoted = advance(resumed, { kind: 'command', command: 'promote', now: T0 + 5400, actor: 'ops' })
  t.same(promoted.effect, { kind: 'weights', weights: { stable: 5000, canary: 5000, green: 0 } })
  t.equal(advance(promoted.state, { kind: 'command', command: 'promote-full', now: T0 + 5500, actor: 'ops' }).state.phase, 'promoting')
  const aborted = advance(promoted.state, { kind: 'command', command: 'abort', now: T0 + 5500, actor: 'ops' })
  t.equal(aborted.action, 'rollout.aborted')
  t.same(aborted.effect, { kind: 'weights', weights: STABLE_ONLY })
  t.same(aborted.notify, ['rollback'])
  t.throws(() => advance(aborted.state, { kind: 'command', command: 'resume', now: T0 + 5600, actor: 'ops' }), { name: 'WeirError', code: 'WEIR_ERR_ADMIN_ROLLOUT_STATE' }, 'an ended rollout takes no command')

  const bg = plan({ strategy: 'bluegreen', smoke: { path: '/h', timeoutMs: 1000 } })
  const watching = checked(start(bg, STABLE_ONLY, T0, 'ops', 'r2').state, T0, check('pass', 'smoke')).state
  const p2 = advance(watching, { kind: 'command', command: 'pause', now: T0 + 1000, actor: 'ops' }).state
  const r2 = advance(p2, { kind: 'command', command: 'resume', now: T0 + 11_000, actor: 'ops' }).state
  t.equal(r2.watchUntil, (watching.watchUntil as number) + 10_000, 'the pause does not count toward the watch')
})

t.test('after a restart the rollout stays at its step with a fresh window', async (t) => {
  const s = checked(started(), T0 + 1000, check('pass')).state
  const later = T0 + 60_000
  const tr = advance(s, { kind: 'restart', now: later })
  t.equal(tr.action, 'rollout.restarted')
  t.same(tr.effect, { kind: 'none' })
  t.match(tr.state, { step: 1, weight: 50, windowStart: Math.floor(later / 1000) * 1000, nextCheckAt: later + 1000 })
  t.equal(advance({ ...s, phase: 'failed' }, { kind: 'restart', now: later }).action, 'none', 'an ended rollout is left alone')
})

const hook = (type: RolloutPlan['webhooks'][number]['type']): RolloutPlan['webhooks'][number] => ({ name: type, type, url: 'http://x/', timeoutMs: 1000, metadata: {} })
const BETA = [{ source: 'header' as const, name: 'x-beta', op: 'exact' as const, value: 'yes' }]
const matchStep = { match: { header: { name: 'x-beta', exact: 'yes' } }, conditions: BETA }

t.test('a match step keeps the weight and sets the match; the next weight step clears it; the guard watches it at weight 0', async (t) => {
  const s = started(plan({ steps: [matchStep, 2000] }))
  t.match(s, { phase: 'progressing', step: 0, weight: 0, match: BETA })
  const guarded = advance(s, { kind: 'guard', now: T0 + 100, tripped: check('fail', 'guard') })
  t.equal(guarded.action, 'rollout.failed', 'the guard judges the matched traffic')
  t.equal(guarded.state.match, null, 'a failed rollout drops the match')
  const next = checked(s, s.nextCheckAt, check('pass'))
  t.match(next.state, { step: 1, weight: 20, match: null })
})

t.test('a timed pause step: paused at its weight, ends on a tick into the next step; the pause does not count toward progressDeadline', async (t) => {
  const deadline = { ms: 1500, text: '1500ms', action: 'fail' as const }
  let s = started(plan({ steps: [1000, { pause: '5s', pauseMs: 5000 }, 5000], progressDeadline: deadline }))
  s = checked(s, s.nextCheckAt, check('pass')).state
  t.match(s, { phase: 'paused', step: 1, weight: 10, waitingFor: 'pause', pauseUntil: T0 + 1000 + 5000 })
  t.notOk(isTickDue(s, T0 + 5999), 'neither the pause nor the deadline is due during the pause')
  t.ok(isTickDue(s, T0 + 6000))
  t.equal(tickGate(s, T0 + 6000), null)
  const ended = advance(s, { kind: 'tick', now: T0 + 6000 })
  t.equal(ended.action, 'rollout.step')
  t.match(ended.state, { phase: 'progressing', step: 2, weight: 50, pauseUntil: null, waitingFor: null, progressAt: T0 + 6000 })
  t.same(ended.effect, { kind: 'weights', weights: { stable: 5000, canary: 5000, green: 0 } })
  // Holding for data is no progress: the deadline fails it.
  const held = checked(ended.state, ended.state.nextCheckAt, check('hold', 'requests')).state
  t.notOk(isTickDue(held, T0 + 7499))
  const failed = advance(held, { kind: 'tick', now: T0 + 7500 })
  t.equal(failed.action, 'rollout.failed')
  t.match(failed.state.reason, /^progress deadline 1500ms passed: holding: requests: requests hold$/)
  t.same(failed.effect, { kind: 'weights', weights: STABLE_ONLY })
})

t.test('a pause step until resumed: no tick ends it; resume takes the next step; onProgressDeadline pause pauses', async (t) => {
  const s = started(plan({ steps: [{ pause: true, pauseMs: null }, 5000] }))
  t.match(s, { phase: 'paused', step: 0, waitingFor: 'pause', pauseUntil: null })
  t.notOk(isTickDue(s, T0 + 3_600_000))
  const resumed = advance(s, { kind: 'command', now: T0 + 10, command: 'resume', actor: 'ops' })
  t.match(resumed.state, { phase: 'progressing', step: 1, weight: 50 })
  t.equal(resumed.action, 'rollout.resumed')
  const p = started(plan({ progressDeadline: { ms: 1000, text: '1s', action: 'pause' } }))
  const paused = advance(p, { kind: 'tick', now: T0 + 1000 })
  t.match(paused.state, { phase: 'paused', pausedFrom: 'progressing', weight: 10 })
  t.equal(paused.action, 'rollout.paused')
  t.notOk(isTickDue(paused.state, T0 + 100_000), 'a rollout the deadline paused stays paused')
})

t.test('confirm-rollout holds at the start; confirm-traffic-increase before each increase, also when a pause ends', async (t) => {
  const p = plan({ steps: [1000, { pause: '1s', pauseMs: 1000 }, 5000], webhooks: [hook('confirm-rollout'), hook('confirm-traffic-increase')] })
  let s = started(p)
  t.match(s, { step: -1, weight: 0 })
  const refused = advance(s, { kind: 'check', now: T0, result: { at: T0, verdict: 'pass', checks: [], gate: { type: 'confirm-rollout', ok: false, detail: 'no' } } })
  t.match(refused.state, { step: -1, waitingFor: 'confirm-rollout', reason: 'waiting for confirm-rollout: no' })
  t.same(refused.effect, { kind: 'none' })
  t.equal(gateOnAdvance(s, T0), 'confirm-traffic-increase')
  const noIncrease = advance(s, { kind: 'check', now: T0, result: { at: T0, verdict: 'pass', checks: [], gate: { type: 'confirm-traffic-increase', ok: false, detail: '403' } } })
  t.match(noIncrease.state, { step: -1, waitingFor: 'confirm-traffic-increase' })
  s = advance(s, { kind: 'check', now: T0, result: { at: T0, verdict: 'pass', checks: [], gate: { type: 'confirm-traffic-increase', ok: true, detail: 'ok' } } }).state
  t.match(s, { step: 0, weight: 10, waitingFor: null })
  t.equal(gateOnAdvance(s, s.nextCheckAt), null, 'a pause is no increase')
  s = checked(s, s.nextCheckAt, check('pass')).state
  t.match(s, { phase: 'paused', step: 1 })
  const end = s.pauseUntil as number
  t.equal(tickGate(s, end), 'confirm-traffic-increase')
  const holding = advance(s, { kind: 'tick', now: end, gate: { type: 'confirm-traffic-increase', ok: false, detail: '403' } })
  t.match(holding.state, { phase: 'paused', step: 1, waitingFor: 'confirm-traffic-increase', nextCheckAt: end + 1000 })
  t.notOk(isTickDue(holding.state, end + 999), 'asked again an interval later')
  const on = advance(holding.state, { kind: 'tick', now: end + 1000, gate: { type: 'confirm-traffic-increase', ok: true, detail: 'ok' } })
  t.match(on.state, { phase: 'progressing', step: 2, weight: 50 })
})

t.test('a rollout persisted before pause and match steps (no pauseUntil, match, progressAt, progressDeadline) reads and advances', async (t) => {
  const { pauseUntil: _p, match: _m, progressAt: _a, ...old } = started()
  const { progressDeadline: _d, ...oldPlan } = old.plan
  const s = readRollout(JSON.parse(JSON.stringify({ ...old, plan: oldPlan }))) as RolloutState
  t.ok(s !== null)
  t.notOk(isTickDue(s, T0 + 3_600_000), 'no deadline, no pause')
  const next = checked(s, s.nextCheckAt, check('pass'))
  t.match(next.state, { step: 1, weight: 50, match: null })
  t.equal(advance(s, { kind: 'guard', now: T0 + 100, tripped: check('fail', 'guard') }).action, 'rollout.failed')
})
