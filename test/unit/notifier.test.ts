// The notification queue against a real receiver on 127.0.0.1: what it retries and how often,
// what it gives up on, and that a dead receiver cannot grow it.

import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Notifier, type Notification, type RetryPolicy } from '../../src/controller/notifier.ts'
import { callWebhook } from '../../src/controller/webhooks.ts'
import type { WebhookPlan } from '../../src/rollout/policy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { closedPort } from '../helpers/upstream.ts'

const fast: RetryPolicy = { attempts: 4, firstDelayMs: 20, maxElapsedMs: 5000, queueLimit: 3 }
const quiet = { error: () => {} }

async function receiver (t: Test, status: (n: number) => number) {
  const calls: { at: number; body: string }[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      calls.push({ at: Date.now(), body })
      res.statusCode = status(calls.length)
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { calls, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` }
}

function hook (url: string): WebhookPlan {
  return { name: 'tell', type: 'event', url, timeoutMs: 500, metadata: {} }
}

/** A notification of `n` whose outcome lands in `log`. */
function note (url: string, n: number, log: string[]): Notification {
  return {
    send: async () => await callWebhook(hook(url), { n }, { secret: undefined }),
    failed: async (r, attempts) => { log.push(`${n} failed after ${attempts}: ${String(r.status)}`) },
    dropped: async (dropped) => { log.push(`${n} dropped (${dropped})`) },
  }
}

async function until (ok: () => boolean, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs
  while (!ok() && Date.now() < deadline) await sleep(10)
  return ok()
}

t.test('5xx is retried with doubling waits until it passes', async (t) => {
  const r = await receiver(t, (n) => (n < 3 ? 503 : 200))
  const notifier = new Notifier(quiet, fast)
  t.teardown(() => notifier.close())
  const log: string[] = []
  notifier.enqueue('a', note(r.url, 1, log))
  t.ok(await until(() => r.calls.length === 3, 2000))
  await sleep(100)
  t.equal(r.calls.length, 3, 'no attempt after the one that passed')
  t.same(log, [])
  const gaps = [(r.calls[1]?.at ?? 0) - (r.calls[0]?.at ?? 0), (r.calls[2]?.at ?? 0) - (r.calls[1]?.at ?? 0)]
  t.ok((gaps[0] ?? 0) >= 18 && (gaps[1] ?? 0) >= 38, `waits of about 20 and 40 ms: ${gaps.join(', ')}`)
})

t.test('a receiver that keeps failing is given up after the last attempt; a 4xx is not retried', async (t) => {
  const failing = await receiver(t, () => 500)
  const refusing = await receiver(t, () => 404)
  const notifier = new Notifier(quiet, fast)
  t.teardown(() => notifier.close())
  const log: string[] = []
  notifier.enqueue('a', note(failing.url, 1, log))
  notifier.enqueue('b', note(refusing.url, 2, log))
  t.ok(await until(() => log.length === 2, 3000))
  t.same(log.sort(), ['1 failed after 4: 500', '2 failed after 1: 404'])
  t.equal(failing.calls.length, 4)
  t.equal(refusing.calls.length, 1)
})

t.test('a dead receiver keeps at most queueLimit waiting: the oldest are dropped, counted; order is kept', async (t) => {
  const port = await closedPort()
  const notifier = new Notifier(quiet, { ...fast, attempts: 2, firstDelayMs: 200 })
  t.teardown(() => notifier.close())
  const log: string[] = []
  for (let n = 1; n <= 6; n++) notifier.enqueue('dead', note(`http://127.0.0.1:${port}/`, n, log))
  // 1 is in flight; 2..6 wait in a queue of 3: 2 and 3 are dropped.
  t.same(log, ['2 dropped (1)', '3 dropped (2)'])
  t.ok(await until(() => log.length === 6, 5000), log.join('; '))
  t.same(log.slice(2), ['1 failed after 2: null', '4 failed after 2: null', '5 failed after 2: null', '6 failed after 2: null'])
})

t.test('close stops the retries at once and drops what waits', async (t) => {
  const r = await receiver(t, () => 503)
  const errors: string[] = []
  const notifier = new Notifier({ error: (_o, msg) => errors.push(msg) }, { ...fast, firstDelayMs: 10_000, maxElapsedMs: 60_000 })
  const log: string[] = []
  notifier.enqueue('a', note(r.url, 1, log))
  notifier.enqueue('a', note(r.url, 2, log))
  t.ok(await until(() => r.calls.length === 1, 2000))
  const began = Date.now()
  await notifier.close()
  t.ok(Date.now() - began < 1000, 'close does not wait out the backoff')
  t.equal(r.calls.length, 1)
  t.same(log, [], 'no failure is reported for a delivery cut short by the shutdown')
  t.match(errors, [/1 webhook notification\(s\) not delivered/])
})
