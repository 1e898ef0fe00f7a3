// Notification webhooks against a real HTTP receiver: an `event` for every phase change, every
// request signed (X-Weir-Signature, checked here with node:crypto alone), retried while the
// receiver is down, a Slack-shaped body on request, and the secret shown nowhere.

import t, { type Test } from 'tap'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { join } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { closedPort, startUpstreams } from '../helpers/upstream.ts'
import { serveWeir, tempDir, yamlConfig } from '../helpers/weir-process.ts'

const HOOK_SECRET = 'per-webhook-secret-0123456789'
const DEFAULT_SECRET = 'fleet-default-secret-9876543210'

interface Delivery { path: string; headers: IncomingHttpHeaders; body: string; json: Record<string, unknown>; at: number }

/**
 * What a receiver does with X-Weir-Signature, written from the docs, not from weir's code: the
 * HMAC-SHA256 of "<t>.<raw body>", compared in constant time, and t within five minutes.
 */
function verified (secret: string, header: string | string[] | undefined, body: string): boolean {
  if (typeof header !== 'string') return false
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]))
  const ts = Number(parts.t)
  if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > 300 || parts.v1 === undefined) return false
  const expected = createHmac('sha256', secret).update(`${ts}.${body}`).digest()
  const given = Buffer.from(parts.v1, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** A webhook receiver on 127.0.0.1 that can go down and come back on the same port. */
async function receiver (t: Test, port = 0) {
  const deliveries: Delivery[] = []
  let server: Server | null = null
  const listen = async (at: number): Promise<number> => {
    const s = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => { body += c.toString() })
      req.on('end', () => {
        deliveries.push({ path: req.url ?? '', headers: req.headers, body, json: JSON.parse(body) as Record<string, unknown>, at: Date.now() })
        res.end('ok')
      })
    })
    await new Promise<void>((resolve) => s.listen(at, '127.0.0.1', resolve))
    server = s
    return (s.address() as { port: number }).port
  }
  const down = async (): Promise<void> => {
    const s = server
    server = null
    if (s === null) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
  const bound = await listen(port)
  t.teardown(down)
  return { deliveries, url: `http://127.0.0.1:${bound}`, down, up: async () => { await listen(bound) } }
}

/** Polls until `ok()` or `limitMs` passed. */
async function until (ok: () => boolean, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs
  while (!ok() && Date.now() < deadline) await sleep(25)
  return ok()
}

async function setup (t: Test, webhooks: unknown[], policy: Record<string, unknown> = {}) {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url },
    rollout: { steps: [50, 100], interval: '1s', analysis: { minRequests: 20, failureThreshold: 1 }, webhooks, ...policy },
  }], { webhookSecret: DEFAULT_SECRET }))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  return { proxy, admin, stable: stable!, canary: canary!, ...rolloutClient(admin) }
}

const phases = (ds: Delivery[]) => ds.map((d) => `${String(d.json.previousPhase)}→${String(d.json.phase)}`)

t.test('a healthy rollout sends a signed event for each phase change, up to succeeded', async (t) => {
  const hooks = await receiver(t)
  const { proxy, admin, leaves } = await setup(t, [
    { name: 'events', type: 'event', url: `${hooks.url}/events`, secret: HOOK_SECRET, metadata: { team: 'shop' } },
    { name: 'done', type: 'post-rollout', url: `${hooks.url}/done` },
  ])
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 15_000 })
  t.teardown(() => traffic.stop())
  await sleep(200)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  let last = await leaves('progressing', 10_000)
  if (last.phase === 'promoting') last = await leaves('promoting', 2000)
  t.equal(last.phase, 'succeeded')
  await traffic.stop()
  t.ok(await until(() => hooks.deliveries.some((d) => d.path === '/done') && hooks.deliveries.filter((d) => d.path === '/events').length >= 3, 3000))
  const events = hooks.deliveries.filter((d) => d.path === '/events')
  t.same(phases(events), ['null→progressing', 'progressing→promoting', 'promoting→succeeded'], 'one event per phase change, in order (steps are not phase changes)')
  t.same(events.map((e) => e.json.action), ['rollout.started', 'rollout.promoting', 'rollout.succeeded'])
  t.match(events[0]?.json.rollout, /^[0-9a-f]{12}$/)
  for (const e of events) {
    t.ok(verified(HOOK_SECRET, e.headers['x-weir-signature'], e.body), `the ${String(e.json.action)} event is signed with its webhook's secret`)
    t.notOk(verified(DEFAULT_SECRET, e.headers['x-weir-signature'], e.body), 'and not with the default')
    t.match(e.headers['x-weir-delivery'], /^[0-9a-f]{16}$/)
    t.match(e.json, { route: 'app', type: 'event', strategy: 'canary', rollout: events[0]?.json.rollout, metadata: { team: 'shop' } })
    t.ok(Math.abs(Date.parse(String(e.json.at)) - e.at) < 5000, 'with the time of the change')
  }
  t.match(events[0]?.json, { step: 0, weight: 50, weights: { stable: 50, canary: 50, green: 0 } })
  t.match(events[2]?.json, { weights: { stable: 100, canary: 0, green: 0 }, reason: /canary promoted/ })
  const done = hooks.deliveries.find((d) => d.path === '/done')
  t.ok(verified(DEFAULT_SECRET, done?.headers['x-weir-signature'], done?.body ?? ''), 'a webhook without a secret is signed with webhookSecret')
  t.notOk(verified(DEFAULT_SECRET, done?.headers['x-weir-signature'], (done?.body ?? '') + ' '), 'a changed body does not verify')
})

t.test('a pause step is two phase changes at the receiver, progressing → paused and paused → progressing, each signed', async (t) => {
  const hooks = await receiver(t)
  const { proxy, admin, leaves, rollout } = await setup(t, [{ name: 'events', type: 'event', url: `${hooks.url}/events`, secret: HOOK_SECRET }],
    { steps: [50, { pause: '1s' }, 100] })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 15_000 })
  t.teardown(() => traffic.stop())
  await sleep(200)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  let last = await rollout()
  const deadline = Date.now() + 15_000
  while (!['succeeded', 'failed'].includes(last.phase) && Date.now() < deadline) last = await leaves(last.phase, deadline - Date.now())
  t.equal(last.phase, 'succeeded', last.rollout?.reason ?? '')
  await traffic.stop()
  t.ok(await until(() => hooks.deliveries.length >= 5, 3000), `${hooks.deliveries.length} notifications`)
  t.same(phases(hooks.deliveries), ['null→progressing', 'progressing→paused', 'paused→progressing', 'progressing→promoting', 'promoting→succeeded'], 'the pause and its end are phase changes, in order')
  t.same(hooks.deliveries.map((d) => d.json.action), ['rollout.started', 'rollout.step', 'rollout.step', 'rollout.promoting', 'rollout.succeeded'], 'a pause step is entered and left by a step')
  const [, paused, resumed] = hooks.deliveries
  t.match(paused?.json, { step: 1, weight: 50, weights: { stable: 50, canary: 50, green: 0 } }, 'paused at the weight it had')
  t.match(resumed?.json, { step: 2, weight: 100 }, 'the pause ended into the next step')
  // `at` is when the change was written, a write after its decision, so the pause is measured
  // from the end the paused event names.
  const pauseEnd = Date.parse(/^pause step 1 \(1s\): until (\S+)$/.exec(String(paused?.json.reason))?.[1] ?? '')
  const late = Date.parse(String(resumed?.json.at)) - pauseEnd
  t.ok(late >= 0 && late < 1500, `the pause ended at the time it named, not before (${late} ms after)`)
  for (const d of hooks.deliveries) {
    t.ok(verified(HOOK_SECRET, d.headers['x-weir-signature'], d.body), `the ${String(d.json.action)} event has a valid signature`)
  }
})

t.test('a failing canary sends progressing → failed with the revert\'s weights and reason', async (t) => {
  const hooks = await receiver(t)
  const { proxy, admin, leaves, canary } = await setup(t, [{ name: 'events', type: 'event', url: `${hooks.url}/events`, secret: HOOK_SECRET }],
    { analysis: { minRequests: 20, failureThreshold: 1, maxErrorRate: 0.01 } })
  canary.handle((_req, res) => { res.statusCode = 500; res.end('no') })
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 10_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const last = await leaves('progressing', 6000)
  t.equal(last.phase, 'failed')
  await traffic.stop()
  t.ok(await until(() => hooks.deliveries.length >= 2, 3000))
  t.same(phases(hooks.deliveries), ['null→progressing', 'progressing→failed'])
  const failed = hooks.deliveries[1]
  t.match(failed?.json, { type: 'event', action: 'rollout.failed', weight: 0, weights: { stable: 100, canary: 0, green: 0 }, reason: /error rate|fast guard/ })
  t.ok(verified(HOOK_SECRET, failed?.headers['x-weir-signature'], failed?.body ?? ''), 'signed')
})

t.test('a receiver that is down for 3 s gets the notification once it is back', async (t) => {
  const hooks = await receiver(t, await closedPort())
  const { admin, event } = await setup(t, [{ name: 'events', type: 'event', url: `${hooks.url}/events` }], { interval: '30s' })
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  t.ok(await until(() => hooks.deliveries.length === 1, 3000), 'the start is told')
  await hooks.down()
  const abortedAt = Date.now()
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout/abort')).status, 200)
  await sleep(3000)
  t.equal(hooks.deliveries.length, 1, 'nothing arrives while it is down')
  const upAt = Date.now()
  await hooks.up()
  t.ok(await until(() => hooks.deliveries.length === 2, 8000), 'the abort arrives after the receiver returned')
  const late = hooks.deliveries[1]
  t.match(late?.json, { action: 'rollout.aborted', previousPhase: 'progressing', phase: 'failed' })
  t.ok((late?.at ?? 0) >= upAt, `delivered ${(late?.at ?? 0) - abortedAt} ms after the abort`)
  t.ok(verified(DEFAULT_SECRET, late?.headers['x-weir-signature'], late?.body ?? ''), 'the retry is signed afresh')
  t.equal(await event('rollout.webhook-failed', 200), undefined, 'a delivery that finally arrived is no failure')
})

t.test('format: slack sends an incoming-webhook body describing the change in words', async (t) => {
  const hooks = await receiver(t)
  const { admin } = await setup(t, [
    { name: 'chat', type: 'event', url: `${hooks.url}/slack`, format: 'slack' },
    { name: 'chat-rollback', type: 'rollback', url: `${hooks.url}/slack-rollback`, format: 'slack' },
  ], { interval: '30s' })
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  t.ok(await until(() => hooks.deliveries.length === 1, 3000))
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollback')).status, 200, 'a manual rollback of the running rollout')
  t.ok(await until(() => hooks.deliveries.length === 3, 3000))
  for (const d of hooks.deliveries) {
    t.same(Object.keys(d.json).sort(), ['blocks', 'text'], `${d.path}: only { text, blocks }`)
    t.type(d.json.text, 'string')
    t.ok(Array.isArray(d.json.blocks) && d.json.blocks.length > 0)
    t.ok(verified(DEFAULT_SECRET, d.headers['x-weir-signature'], d.body))
  }
  t.match(hooks.deliveries[0]?.json.text, /Route app: canary rollout [0-9a-f]+ changed phase \(started → progressing\)/)
  const rolledBack = hooks.deliveries.filter((d) => d.path === '/slack' && d !== hooks.deliveries[0])
  t.match(rolledBack[0]?.json.text, /changed phase \(progressing → failed\)/)
  t.match(JSON.stringify(rolledBack[0]?.json.blocks), /stable 100 %, canary 0 %/)
  t.match(hooks.deliveries.find((d) => d.path === '/slack-rollback')?.json.text, /was reverted/)
})

t.test('WEIR_WEBHOOK_SECRET signs the webhooks when the file sets no secret; a webhook\'s own secret still wins', async (t) => {
  const ENV_SECRET = 'from-the-environment-0123456789'
  const dir = tempDir()
  const hooks = await receiver(t)
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const file = join(dir, 'weir.yaml')
  // No webhookSecret and no ${VAR} in the file: the key comes from the environment alone.
  writeFileSync(file, yamlConfig(dir, `
    upstreams: { stable: "${stable!.url}", canary: "${canary!.url}" }
    rollout: { steps: [50, 100], interval: 30s, webhooks: [{ name: events, type: event, url: "${hooks.url}/events" }, { name: own, type: event, url: "${hooks.url}/own", secret: own-webhook-secret-0123456789 }] }
  `))
  const { weir, adminUrl } = await serveWeir(t, file, { ...process.env, WEIR_WEBHOOK_SECRET: ENV_SECRET })
  const admin = adminClient(adminUrl)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout/abort')).status, 200)
  t.ok(await until(() => hooks.deliveries.length === 4, 3000), 'the start and the abort, to both webhooks')
  const at = (path: string) => hooks.deliveries.filter((d) => d.path === path)
  t.same(phases(at('/events')), ['null→progressing', 'progressing→failed'])
  for (const d of at('/events')) {
    t.ok(verified(ENV_SECRET, d.headers['x-weir-signature'], d.body), `${String(d.json.action)}: signed with WEIR_WEBHOOK_SECRET`)
  }
  for (const d of at('/own')) {
    t.ok(verified('own-webhook-secret-0123456789', d.headers['x-weir-signature'], d.body), `${String(d.json.action)}: the webhook's own secret`)
    t.notOk(verified(ENV_SECRET, d.headers['x-weir-signature'], d.body))
  }
  t.notOk(weir.output().includes(ENV_SECRET), 'the secret is not logged')
})

t.test('a request body cannot set a secret, and none appears in a reply, an event, the state or the log', async (t) => {
  const dir = tempDir()
  const hooks = await receiver(t)
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
state: { file: ${join(dir, 'state.json')} }
cookieSecret: notify-test-cookie-secret
webhookSecret: \${DEFAULT_SECRET}
logLevel: debug
workers: 1
routes:
  - name: app
    upstreams: { stable: "${stable!.url}", canary: "${canary!.url}" }
    rollout:
      steps: [50, 100]
      interval: 30s
      webhooks:
        - { name: events, type: event, url: "${hooks.url}/events", secret: \${HOOK_SECRET} }
        - { name: tell, type: rollback, url: "${hooks.url}/tell" }
`)
  const { weir, adminUrl } = await serveWeir(t, file, { ...process.env, HOOK_SECRET, DEFAULT_SECRET })
  const admin = adminClient(adminUrl)
  const refused = await admin.call('POST', '/api/v1/routes/app/rollout', { webhooks: [{ name: 'events', type: 'event', url: `${hooks.url}/events`, secret: 'sixteen-or-more-chars' }] })
  t.equal(refused.status, 400)
  t.match(refused.body, /rollout\.webhooks\[0\]\.secret/)
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  t.ok(await until(() => hooks.deliveries.length === 1, 3000))
  t.ok(verified(HOOK_SECRET, hooks.deliveries[0]?.headers['x-weir-signature'], hooks.deliveries[0]?.body ?? ''), 'the ${HOOK_SECRET} of the file signs it')
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout/abort')).status, 200)
  t.ok(await until(() => hooks.deliveries.length === 3, 3000), 'the abort is told to both webhooks')
  const seen = [
    (await admin.get('/api/v1/routes/app/rollout')).body,
    (await admin.get('/api/v1/routes/app')).body,
    (await admin.get('/api/v1/routes')).body,
    (await admin.get('/api/v1/events')).body,
    readFileSync(join(dir, 'state.json'), 'utf8'),
    readFileSync(join(dir, 'events.jsonl'), 'utf8'),
    weir.output(),
    ...hooks.deliveries.map((d) => d.body),
  ]
  t.match(seen[0], /"webhooks":\[\{"name":"events"/, 'the rollout view shows the webhooks')
  for (const [i, text] of seen.entries()) {
    t.notOk(text.includes(HOOK_SECRET) || text.includes(DEFAULT_SECRET), `no secret in source ${i}`)
  }
})
