// Rollout webhooks against a real HTTP receiver: what they are sent, and what a failing or silent
// one does (a failed check; nothing moves before pre-rollout passes; rollback is notified).

import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { adminClient } from '../helpers/admin.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'

interface Call { path: string; payload: Record<string, unknown> }

/** A webhook receiver: `answer(path, payload)` picks the status (or null: never answer). */
async function receiver (t: Test, answer: (path: string, payload: Record<string, unknown>) => number | null) {
  const calls: Call[] = []
  const hung: ServerResponse[] = []
  const server = createServer((req: IncomingMessage, res) => {
    let text = ''
    req.on('data', (c: Buffer) => { text += c.toString() })
    req.on('end', () => {
      const payload = JSON.parse(text) as Record<string, unknown>
      calls.push({ path: req.url ?? '', payload })
      const status = answer(req.url ?? '', payload)
      if (status === null) {
        hung.push(res)
        return
      }
      res.statusCode = status
      res.end(status < 300 ? 'ok' : 'refused')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const res of hung) res.destroy()
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { calls, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

async function setup (t: Test, webhooks: unknown[]) {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url },
    rollout: { steps: [20, 60], interval: '1s', analysis: { minRequests: 20, failureThreshold: 2 }, webhooks },
  }]))
  t.teardown(() => proxy.close())
  const admin = adminClient(proxy.adminUrl)
  return { proxy, admin, ...rolloutClient(admin) }
}

t.test('a failing pre-rollout webhook fails the rollout before any traffic moves', async (t) => {
  // A 4xx is final (a 5xx would be retried for a while: test/unit/notifier.test.ts).
  const hooks = await receiver(t, (path) => (path === '/rollback' ? 400 : 503))
  const { admin, leaves, event } = await setup(t, [{ name: 'gate', type: 'pre-rollout', url: `${hooks.url}/pre`, metadata: { team: 'shop' } },
    { name: 'tell', type: 'rollback', url: `${hooks.url}/rollback` }])
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201)
  t.same(started.json<{ weights: unknown }>().weights, { stable: 100, canary: 0, green: 0 }, 'no traffic before pre-rollout passes')
  const last = await leaves('progressing', 4000)
  t.equal(last.phase, 'failed')
  t.same(last.weights, { stable: 100, canary: 0, green: 0 })
  const failed = await event('rollout.failed')
  t.equal(failed?.reason?.check, 'webhook:gate')
  t.match(failed?.reason?.detail, /webhook gate \(pre-rollout\) answered 503: refused/)
  const pre = hooks.calls.filter((c) => c.path === '/pre')
  t.equal(pre.length, 2, 'asked once per interval up to the failure threshold')
  t.match(pre[0]?.payload, { route: 'app', type: 'pre-rollout', strategy: 'canary', phase: 'progressing', step: -1, weight: 0, metadata: { team: 'shop' } })
  await sleep(300)
  const rollback = hooks.calls.find((c) => c.path === '/rollback')
  t.match(rollback?.payload, { route: 'app', type: 'rollback', phase: 'failed' }, 'the rollback webhook is told')
  const undelivered = await event('rollout.webhook-failed')
  t.match(undelivered?.reason, { webhook: 'tell', type: 'rollback', attempts: 1, detail: /answered 400/ }, 'its 400 is logged, not retried')
})

t.test('a rollout webhook that does not answer in time is a failed check each step', async (t) => {
  const hooks = await receiver(t, (path) => (path === '/step' ? null : 200))
  const { proxy, admin, leaves, event } = await setup(t, [{ name: 'load-test', type: 'rollout', url: `${hooks.url}/step`, timeout: '300ms' }])
  const traffic = startTraffic(proxy.url, { rate: 200, maxMs: 15_000 })
  t.teardown(() => traffic.stop())
  t.equal((await admin.call('POST', '/api/v1/routes/app/rollout', {})).status, 201)
  const last = await leaves('progressing', 6000)
  t.equal(last.phase, 'failed')
  const failed = await event('rollout.failed')
  t.equal(failed?.reason?.check, 'webhook:load-test')
  t.match(failed?.reason?.detail, /no answer within 300 ms/)
  const steps = hooks.calls.filter((c) => c.path === '/step')
  t.equal(steps.length, 2)
  t.match(steps[0]?.payload, { type: 'rollout', step: 0, weight: 20, weights: { stable: 80, canary: 20, green: 0 } })
  await traffic.stop()
})
