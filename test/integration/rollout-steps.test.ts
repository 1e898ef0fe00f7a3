// Canary steps beyond a weight (pause, pause until resumed, match-rule steps), the gates
// confirm-rollout and confirm-traffic-increase, and progressDeadline, end to end: real upstreams,
// real traffic through weir, a real webhook receiver.

import t, { type Test } from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { adminClient } from '../helpers/admin.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { rolloutClient, type RolloutBody } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'

interface StepsView {
  phase: string
  weights: Record<string, number>
  rollout: null | {
    step: number
    weight: number
    reason: string | null
    steps: unknown[]
    waitingFor: string | null
    pauseUntil: string | null
    history: { at: string; phase: string; step: number; weight: number; note: string }[]
  }
}

async function setup (t: Test, policy: Record<string, unknown>) {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url },
    // Latency is not what these tests judge: a loaded machine's p99 noise must not fail a check.
    rollout: { interval: '1s', ...policy, analysis: { minRequests: 20, failureThreshold: 2, maxP99Ratio: 20, maxP99Ms: 5000, ...(policy.analysis as object | undefined) } },
  }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  const client = rolloutClient(admin)
  const view = async (): Promise<StepsView> => (await admin.get('/api/v1/routes/app/rollout')).json<StepsView>()
  /** Polls the rollout view until `done` holds, or `limitMs` passed; returns the last view. */
  const until = async (done: (v: StepsView) => boolean, limitMs: number): Promise<StepsView> => {
    const deadline = Date.now() + limitMs
    let last = await view()
    while (!done(last) && Date.now() < deadline) {
      await sleep(25)
      last = await view()
    }
    return last
  }
  return { stable: stable!, canary: canary!, proxy, admin, view, until, ...client }
}

/** A webhook receiver on 127.0.0.1: `answer(payload)` picks the status. */
async function receiver (t: Test, answer: (payload: { type: string; step: number }) => number) {
  const calls: { type: string; step: number; weight: number }[] = []
  const server = createServer((req: IncomingMessage, res) => {
    let text = ''
    req.on('data', (c: Buffer) => { text += c.toString() })
    req.on('end', () => {
      const payload = JSON.parse(text) as { type: string; step: number; weight: number }
      calls.push({ type: payload.type, step: payload.step, weight: payload.weight })
      res.statusCode = answer(payload)
      res.end(res.statusCode < 300 ? 'ok' : 'not yet: change freeze')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { calls, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` }
}

const BETA = { header: { name: 'x-beta', exact: 'yes' } }

t.test('match, pause 1s, 20, 100: every step is walked; during the match step only x-beta: yes reaches the canary', async (t) => {
  const { proxy, admin, view, until, event, events, stable, canary } = await setup(t, { steps: [{ match: BETA }, { pause: '1s' }, 20, 100] })
  // What each upstream got, and when: arrivals follow the proxy's decision closely (a client's
  // answer can end long after, on a loaded machine).
  const arrivals: { at: number; sentAt: number; upstream: string; beta: boolean }[] = []
  for (const u of [stable, canary]) {
    u.handle((req, res) => {
      arrivals.push({ at: Date.now(), sentAt: Number(req.headers['x-sent-at'] ?? 0), upstream: u.name, beta: req.headers['x-beta'] === 'yes' })
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ version: u.name }))
    })
  }
  const beta = startTraffic(proxy.url, { rate: 80, maxMs: 20_000, headers: { 'x-beta': 'yes' }, sentAtHeader: 'x-sent-at' })
  const others = startTraffic(proxy.url, { rate: 150, maxMs: 20_000, sentAtHeader: 'x-sent-at' })
  t.teardown(() => Promise.all([beta.stop(), others.stop()]))
  await sleep(200)
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  // The answer comes once the data path (every worker) serves the first step.
  const inForce = Date.now()
  t.equal(started.status, 201, started.body)
  const first = started.json<StepsView>()
  t.same(first.rollout?.steps, [{ match: BETA }, { pause: '1s' }, 20, 100], 'GET .../rollout shows the steps as written')
  t.same(first.weights, { stable: 100, canary: 0, green: 0 }, 'the canary\'s weight stays 0 during the match step')
  const paused = await until((v) => v.phase === 'paused' || v.phase === 'failed' || v.phase === 'succeeded', 6000)
  t.equal(paused.phase, 'paused', JSON.stringify(paused.rollout?.history.map((h) => h.note)))
  t.equal(paused.rollout?.step, 1)
  t.equal(paused.rollout?.waitingFor, 'pause')
  t.ok(paused.rollout?.pauseUntil !== null && Date.parse(paused.rollout?.pauseUntil ?? '') > Date.now() - 1500, `pauseUntil ${paused.rollout?.pauseUntil}`)
  t.match(paused.rollout?.reason ?? '', /^pause step 1 \(1s\): until \d{4}-/)
  const last = await until((v) => v.phase === 'succeeded' || v.phase === 'failed', 15_000)
  t.equal(last.phase, 'succeeded', JSON.stringify(last.rollout?.history.map((h) => h.note)))
  await Promise.all([beta.stop(), others.stop()])

  const history = last.rollout?.history ?? []
  const steps = history.filter((h) => h.note.includes('step') || h.note.startsWith('started')).map((h) => [h.step, h.phase, h.weight])
  t.match(steps, [[0, 'progressing', 0], [1, 'paused', 0], [2, 'progressing', 20], [3, 'progressing', 100]], JSON.stringify(history.map((h) => h.note)))
  const atOf = (step: number): number => Date.parse(history.find((h) => h.step === step)?.at ?? '')
  // Requests sent once the match step is in force, and that arrived before the step after it was decided.
  const matchFrom = Math.max(atOf(0), inForce)
  const matchTo = atOf(1)
  t.ok(matchTo > matchFrom, 'the match step lasted')
  const during = arrivals.filter((a) => a.sentAt >= matchFrom && a.at <= matchTo)
  const betaDuring = during.filter((a) => a.beta)
  const othersDuring = during.filter((a) => !a.beta)
  t.ok(betaDuring.length >= 20 && othersDuring.length >= 20, `traffic during the match step (${betaDuring.length} x-beta, ${othersDuring.length} others)`)
  t.same(betaDuring.filter((a) => a.upstream !== 'canary'), [], 'every x-beta: yes request reached the canary')
  t.same(othersDuring.filter((a) => a.upstream !== 'stable'), [], 'every other request reached stable')
  // The match rule ends with the next weight step: at 20 %, x-beta requests are split like any.
  const at20 = arrivals.filter((a) => a.beta && a.sentAt >= atOf(2) + 100 && a.at <= atOf(3))
  t.ok(at20.some((a) => a.upstream === 'stable'), 'at the weight step the match rule is gone')

  // The event is appended just after the state it records: the view can show 'succeeded' first.
  t.ok(await event('rollout.succeeded'), 'the promotion is logged')
  const actions = (await events()).filter((e) => e.action.startsWith('rollout.') && e.action !== 'rollout.held').map((e) => e.action)
  t.same(actions, ['rollout.started', 'rollout.step', 'rollout.step', 'rollout.step', 'rollout.promoting', 'rollout.succeeded'])
  const after = await view()
  t.equal(after.rollout?.pauseUntil, null)
})

t.test('a canary failing (500) during the match step is reverted; x-beta requests go back to stable', async (t) => {
  const { proxy, admin, stable, canary, until, event } = await setup(t, { steps: [{ match: BETA }, 50, 100] })
  const arrivals: { sentAt: number; upstream: string; beta: boolean }[] = []
  for (const u of [stable, canary]) {
    u.handle((req, res) => {
      arrivals.push({ sentAt: Number(req.headers['x-sent-at'] ?? 0), upstream: u.name, beta: req.headers['x-beta'] === 'yes' })
      res.statusCode = u === canary ? 500 : 200
      res.end(u.name)
    })
  }
  const beta = startTraffic(proxy.url, { rate: 100, maxMs: 15_000, headers: { 'x-beta': 'yes' }, sentAtHeader: 'x-sent-at' })
  const others = startTraffic(proxy.url, { rate: 100, maxMs: 15_000, sentAtHeader: 'x-sent-at' })
  t.teardown(() => Promise.all([beta.stop(), others.stop()]))
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const last = await until((v) => v.phase !== 'progressing', 5000)
  t.equal(last.phase, 'failed', JSON.stringify(last.rollout?.history.map((h) => h.note)))
  t.equal(last.rollout?.step, 0, 'failed at the match step')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  const failed = await event('rollout.failed')
  t.match(failed?.reason?.check, /^(guard|error-rate)$/)
  t.match(failed?.reason?.detail, /canary/)
  const failedAt = Date.now()
  await sleep(600)
  await Promise.all([beta.stop(), others.stop()])
  t.ok(arrivals.some((a) => a.beta && a.upstream === 'canary'), 'x-beta requests reached the canary before')
  const after = arrivals.filter((a) => a.beta && a.sentAt >= failedAt)
  t.ok(after.length > 0, `x-beta requests after the revert (${after.length})`)
  t.same(after.filter((a) => a.upstream !== 'stable'), [], 'after the revert, x-beta requests reach stable')
  t.same(arrivals.filter((a) => !a.beta && a.upstream !== 'stable'), [], 'the others never reached the canary')
})

t.test('{ pause: true } waits until POST .../rollout/resume, then takes the next step', async (t) => {
  const { proxy, admin, until, view } = await setup(t, { steps: [10, { pause: true }, 100], analysis: { minRequests: 5, failureThreshold: 2 } })
  const traffic = startTraffic(proxy.url, { rate: 150, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const paused = await until((v) => v.phase !== 'progressing', 6000)
  t.equal(paused.phase, 'paused', JSON.stringify(paused.rollout?.history.map((h) => h.note)))
  t.equal(paused.rollout?.step, 1)
  t.equal(paused.rollout?.waitingFor, 'pause')
  t.equal(paused.rollout?.pauseUntil, null)
  t.match(paused.rollout?.reason, 'pause step 1: until resumed')
  await sleep(2500)
  const still = await view()
  t.equal(still.phase, 'paused', 'still paused 2.5 s later')
  t.equal(still.weights.canary, 10, 'at the weight before the pause')
  const resumed = await admin.call('POST', '/api/v1/routes/app/rollout/resume', {})
  t.equal(resumed.status, 200, resumed.body)
  const after = resumed.json<StepsView>()
  t.equal(after.phase, 'progressing')
  t.equal(after.rollout?.step, 2)
  t.equal(after.weights.canary, 100, 'resume takes the next step at once')
  const last = await until((v) => v.phase === 'succeeded' || v.phase === 'failed', 6000)
  t.equal(last.phase, 'succeeded', JSON.stringify(last.rollout?.history.map((h) => h.note)))
  await traffic.stop()
})

t.test('confirm-rollout holds the start, confirm-traffic-increase answering 403 holds before the increase, 200 lets it go on', async (t) => {
  let rolloutAnswer = 403
  let increaseAnswer = 403
  const hooks = await receiver(t, (p) => {
    if (p.type === 'confirm-rollout') return rolloutAnswer
    if (p.type === 'confirm-traffic-increase') return p.step < 0 ? 200 : increaseAnswer
    return 200
  })
  const { proxy, admin, until, view, events } = await setup(t, {
    steps: [10, 50],
    webhooks: [
      { name: 'start-ok', type: 'confirm-rollout', url: hooks.url },
      { name: 'more', type: 'confirm-traffic-increase', url: hooks.url },
    ],
  })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201, started.body)
  const atStart = await until((v) => v.rollout?.waitingFor === 'confirm-rollout', 3000)
  t.equal(atStart.rollout?.step, -1, 'held at its start')
  t.same(atStart.weights, { stable: 100, canary: 0, green: 0 })
  t.match(atStart.rollout?.reason, /^waiting for confirm-rollout: webhook start-ok \(confirm-rollout\) answered 403: not yet/)
  await sleep(1200)
  t.equal((await view()).rollout?.step, -1, 'still at its start')
  t.notOk(hooks.calls.some((c) => c.type === 'confirm-traffic-increase'), 'nothing else is asked before confirm-rollout agrees')
  rolloutAnswer = 200

  const held = await until((v) => v.rollout?.waitingFor === 'confirm-traffic-increase' || v.phase !== 'progressing', 6000)
  t.equal(held.rollout?.waitingFor, 'confirm-traffic-increase', JSON.stringify(held.rollout?.history.map((h) => h.note)))
  t.equal(held.rollout?.step, 0)
  t.equal(held.weights.canary, 10, 'held at 10 % before the increase to 50 %')
  t.match(held.rollout?.reason, /^waiting for confirm-traffic-increase: webhook more \(confirm-traffic-increase\) answered 403/)
  await sleep(1500)
  const still = await view()
  t.equal(still.weights.canary, 10, 'still held')
  const asked = hooks.calls.filter((c) => c.type === 'confirm-traffic-increase' && c.step === 0).length
  t.ok(asked >= 2, `asked again each interval (${asked})`)
  increaseAnswer = 200
  const on = await until((v) => v.rollout?.step === 1 || v.phase !== 'progressing', 4000)
  t.equal(on.rollout?.step, 1)
  t.equal(on.weights.canary, 50)
  const last = await until((v) => v.phase === 'succeeded' || v.phase === 'failed', 6000)
  t.equal(last.phase, 'succeeded')
  await traffic.stop()
  const held2 = (await events()).filter((e) => e.action === 'rollout.held').map((e) => (e.reason as { check?: string } | undefined)?.check)
  t.ok(held2.includes('confirm-rollout') && held2.includes('confirm-traffic-increase'), `the holds are logged (${held2.join(', ')})`)
  t.ok(hooks.calls.some((c) => c.type === 'confirm-traffic-increase' && c.step === -1), 'asked before the first step\'s increase too')
})

t.test('a rollout with no traffic fails at its progressDeadline with the reason', async (t) => {
  const { admin, until, event } = await setup(t, { steps: [10, 100], progressDeadline: '2s' })
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201, started.body)
  const t0 = Date.now()
  const last = await until((v) => v.phase !== 'progressing', 6000)
  const took = Date.now() - t0
  t.equal(last.phase, 'failed')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  t.ok(took >= 1800 && took < 3500, `failed after ${took} ms`)
  t.match(last.rollout?.reason, /^progress deadline 2s passed: holding: /)
  const failed = await event('rollout.failed')
  t.match(failed?.reason?.detail, /^progress deadline 2s passed: holding: requests: canary had 0 requests .* a check needs 20/)
})

t.test('onProgressDeadline: pause pauses instead; a pause step does not count toward the deadline', async (t) => {
  const { admin, until, view } = await setup(t, { steps: [{ pause: '2s' }, 10, 100], progressDeadline: '1500ms', onProgressDeadline: 'pause' })
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  await sleep(1500)
  const pausing = await view()
  t.equal(pausing.phase, 'paused')
  t.equal(pausing.rollout?.waitingFor, 'pause', 'the pause step is not cut short by the deadline')
  const stuck = await until((v) => v.rollout?.step === 1 && v.phase === 'paused', 5000)
  t.equal(stuck.rollout?.step, 1)
  t.equal(stuck.rollout?.waitingFor, null)
  t.match(stuck.rollout?.reason, /^progress deadline 1500ms passed: holding: /)
  t.equal(stuck.weights.canary, 10, 'paused where it was, not reverted')
  const resumed = await admin.call('POST', '/api/v1/routes/app/rollout/resume', {})
  t.equal(resumed.status, 200, resumed.body)
  t.equal(resumed.json<StepsView>().phase, 'progressing')
})

t.test('bad steps are refused with the field named, and nothing starts', async (t) => {
  const { admin, view } = await setup(t, { steps: [10, 100] })
  const cases: [unknown, RegExp][] = [
    [{ strategy: 'bluegreen', smoke: { path: '/' }, steps: [{ pause: '1s' }] }, /rollout\.steps\[0\]: a blue\/green rollout switches at once/],
    [{ steps: [{ match: { header: { name: 'x-beta', exact: 'yes', prefix: 'y' } } }] }, /rollout\.steps\[0\]\.match\.header: must have exactly one of/],
    [{ steps: [{ match: {} }] }, /rollout\.steps\[0\]\.match: must have a header, cookie or query condition/],
    [{ steps: [{ pause: '10ms' }, 10] }, /rollout\.steps\[0\]\.pause: must be at least 1s/],
    [{ steps: [{ pause: false }] }, /rollout\.steps\[0\]: must be a weight in percent/],
    [{ steps: [50, { pause: '1s' }, 20] }, /rollout\.steps\[2\]: must be greater than the weight step before it \(50\)/],
    [{ progressDeadline: 'soon' }, /rollout\.progressDeadline/],
    [{ onProgressDeadline: 'explode' }, /rollout\.onProgressDeadline/],
  ]
  for (const [body, reason] of cases) {
    const res = await admin.call('POST', '/api/v1/routes/app/rollout', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.match(res.body, reason, res.body)
  }
  t.equal((await view()).phase, 'idle')
})

t.test('a rollout that starts at { pause: true } is paused at once; its plan keeps the step', async (t) => {
  const { admin, view } = await setup(t, { steps: [{ pause: true }, 100] })
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const v = await view()
  t.equal(v.phase, 'paused')
  t.same(v.rollout?.steps, [{ pause: true }, 100])
  const body = (await admin.get('/api/v1/routes/app/rollout')).json<RolloutBody & { rollout: { policy: { steps: unknown[] } } }>()
  t.same(body.rollout?.policy.steps, [{ pause: true, pauseMs: null }, 10_000])
})
