// Shadow traffic (docs/shadow.md), end to end: real primary and shadow upstreams on loopback, real
// clients, /metrics scraped and parsed. A shadow that fails in any way must leave clients'
// responses exactly as they are without it.

import { createHash } from 'node:crypto'
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import t, { type Test } from 'tap'
import { send, type Reply } from '../helpers/http.ts'
import { scrape, type PromText } from '../helpers/prom-text.ts'
import { configDoc, startProxy, type RouteDoc, type TestProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { inParallel, sendMany } from '../helpers/send-many.ts'
import { settled } from '../helpers/shadow-settled.ts'
import { closedPort, startUpstream, startUpstreams, type Upstream } from '../helpers/upstream.ts'

interface Seen { method: string; url: string; id: string; shadowHeader: string | undefined; bodySha: string; bytes: number }

/** Makes an upstream record what it received (with a digest of the body) and answer `answer`. */
function recordInto (upstream: Upstream, seen: Seen[], answer: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): void {
  upstream.handle((req, res, body) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      id: String(req.headers['x-request-id']),
      shadowHeader: req.headers['x-weir-shadow'] as string | undefined,
      bodySha: createHash('sha256').update(body).digest('hex'),
      bytes: body.length,
    })
    answer(req, res, body)
  })
}

const answerOk = (name: string) => (req: IncomingMessage, res: ServerResponse): void => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ from: name, url: req.url }))
}

/** A primary and a shadow upstream, closed when the test ends. */
async function pairOf (t: Test): Promise<[Upstream, Upstream]> {
  return await startUpstreams(t, 'stable', 'shadow') as [Upstream, Upstream]
}

/** A primary and a shadow that both record what they receive and answer with their name. */
async function recordingPair (t: Test): Promise<{ primary: Upstream; shadow: Upstream; primarySeen: Seen[]; shadowSeen: Seen[] }> {
  const [primary, shadow] = await pairOf(t)
  const primarySeen: Seen[] = []
  const shadowSeen: Seen[] = []
  recordInto(primary, primarySeen, answerOk('stable'))
  recordInto(shadow, shadowSeen, answerOk('shadow'))
  return { primary, shadow, primarySeen, shadowSeen }
}

function shopRoute (primary: Upstream, shadowUrl: string, shadow: Record<string, unknown>, extra: RouteDoc = {}): RouteDoc {
  return { name: 'shop', upstreams: { stable: primary.url, shadow: shadowUrl }, shadow, ...extra }
}

async function proxyFor (t: Test, route: RouteDoc): Promise<TestProxy> {
  const proxy = await startProxy(configDoc([route]))
  t.teardown(() => proxy.close())
  return proxy
}

function shadowCounts (m: PromText): Record<string, number> {
  const out: Record<string, number> = {}
  for (const s of m.select('weir_shadow_requests_total')) out[s.labels.outcome as string] = s.value
  return out
}

t.test('percent 10 over 10 000 requests: 10 % ± 1 point are copied, each the same request as its primary', async (t) => {
  const { primary, shadow, primarySeen, shadowSeen } = await recordingPair(t)
  const proxy = await proxyFor(t, shopRoute(primary, shadow.url, { percent: 10, methods: ['GET', 'POST'], maxInFlight: 1000 }))

  const replies = await sendMany(proxy.url, 10_000, 16, (i) => i % 2 === 0
    ? { path: `/items/${i}?q=${i}&x=%20y` }
    : { method: 'POST', path: `/orders?n=${i}`, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ order: i, pad: 'x'.repeat(i % 500) }) })
  await settled(proxy)
  t.equal(replies.filter((r) => r.status === 200 && r.json().from === 'stable').length, 10_000, 'every client was answered by stable')
  t.equal(primarySeen.length, 10_000)
  t.ok(shadowSeen.length >= 900 && shadowSeen.length <= 1100, `shadow received ${shadowSeen.length} of 10 000 (10 % ± 1 point)`)

  const byId = new Map(primarySeen.map((s) => [s.id, s]))
  let same = 0
  for (const copy of shadowSeen) {
    const original = byId.get(copy.id)
    if (original !== undefined && original.method === copy.method && original.url === copy.url &&
        original.bodySha === copy.bodySha && original.bytes === copy.bytes && copy.shadowHeader === '1') same++
  }
  t.equal(same, shadowSeen.length, 'every copy has its primary\'s request id, method, path, query and body, and x-weir-shadow: 1')
  t.ok(shadowSeen.some((s) => s.method === 'POST' && s.bytes > 0), 'POST bodies (the route opts in) are copied')
  t.equal(primarySeen.filter((s) => s.shadowHeader !== undefined).length, 0, 'the primary never sees x-weir-shadow')

  const counts = shadowCounts(await scrape(proxy.adminUrl))
  t.same(counts, { ok: shadowSeen.length, error: 0, dropped: 0, skipped: 0 })
})

/** What a client sees, minus what differs between any two responses (Date, request id). */
function comparable (reply: Reply): string {
  const { date: _date, 'x-request-id': _id, ...headers } = reply.headers
  return JSON.stringify({ status: reply.status, headers, body: reply.body })
}

const FAILURES: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  'answers 500': (_req, res) => {
    res.statusCode = 500
    res.setHeader('set-cookie', 'shadow=1')
    res.end('shadow broke')
  },
  hangs: () => { /* never answers */ },
  'is 100x slower': (req, res) => { setTimeout(() => answerOk('shadow')(req, res), 300) },
  'resets mid-body': (_req, res) => {
    res.writeHead(200, { 'content-length': '100000', 'x-shadow-only': 'yes' })
    res.write('partial')
    setTimeout(() => res.socket?.destroy(), 5)
  },
}

t.test('a shadow that refuses, hangs, answers 500, is 100x slower or resets mid-body leaves every client response identical', async (t) => {
  const primary = await startUpstream('stable')
  t.teardown(() => primary.close())
  // A primary that takes ~3 ms, with a body that depends on the request only.
  primary.handle((req, res) => {
    setTimeout(() => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('x-primary', 'p')
      res.end(JSON.stringify({ from: 'stable', url: req.url }))
    }, 3)
  })
  // A user id decides the bucket, so no random bucket cookie differs between runs.
  const make = (i: number): { path: string; headers: Record<string, string> } => ({ path: `/p/${i}?i=${i}`, headers: { 'x-user': `u${i}` } })
  const sticky = { stickiness: { userId: { header: 'x-user' } } }
  const baselineProxy = await proxyFor(t, { name: 'shop', upstreams: { stable: primary.url }, ...sticky })
  const baseline = (await sendMany(baselineProxy.url, 300, 8, make)).map(comparable)

  const cases: [string, string][] = [['refuses connections', `http://127.0.0.1:${await closedPort()}`]]
  const shadows: Upstream[] = []
  for (const [name, behave] of Object.entries(FAILURES)) {
    const shadow = await startUpstream('shadow')
    shadow.handle(behave)
    shadows.push(shadow)
    cases.push([name, shadow.url])
  }
  t.teardown(async () => { for (const s of shadows) await s.close() })

  for (const [name, url] of cases) {
    const proxy = await proxyFor(t, shopRoute(primary, url, { percent: 100, maxInFlight: 8, timeout: '1s' }, sticky))
    const started = performance.now()
    const replies = (await sendMany(proxy.url, 300, 8, make)).map(comparable)
    const elapsed = performance.now() - started
    const differing = replies.filter((r, i) => r !== baseline[i])
    t.equal(differing.length, 0, `shadow ${name}: the 300 client responses are identical to the run without shadow (${elapsed.toFixed(0)} ms)`,
      { first: differing[0], expected: baseline[replies.indexOf(differing[0] as string)] })
    await settled(proxy)
    const counts = shadowCounts(await scrape(proxy.adminUrl))
    // A slow shadow still answers: its copies are ok (or dropped while 8 are in flight).
    const answered = name === 'is 100x slower' ? counts.ok : counts.error
    t.equal((answered ?? 0) + (counts.dropped ?? 0), 300, `shadow ${name}: every copy counted as ${name === 'is 100x slower' ? 'ok' : 'error'} or dropped (${JSON.stringify(counts)})`)
    t.equal(counts.skipped, 0)
  }
})

t.test('in-flight copies never exceed maxInFlight; the excess is dropped and counted', async (t) => {
  const [primary, shadow] = await pairOf(t)
  let open = 0
  let most = 0
  shadow.handle((_req, res) => {
    open++
    most = Math.max(most, open)
    setTimeout(() => { open--; res.end('late') }, 200)
  })
  const proxy = await proxyFor(t, shopRoute(primary, shadow.url, { percent: 100, maxInFlight: 5, timeout: '2s' }))
  const replies = await sendMany(proxy.url, 200, 20, (i) => ({ path: `/x/${i}` }))
  t.equal(replies.filter((r) => r.status === 200).length, 200)
  await settled(proxy)
  const counts = shadowCounts(await scrape(proxy.adminUrl))
  t.ok(most <= 5, `the shadow saw at most ${most} copies at once (maxInFlight 5)`)
  t.ok(counts.dropped !== undefined && counts.dropped > 0, `dropped copies are counted (${counts.dropped})`)
  t.equal((counts.ok ?? 0) + (counts.dropped ?? 0), 200, 'every request is either copied or dropped')
  t.equal(shadow.received.length, counts.ok)
})

t.test('bodies: a 5 MB POST reaches the primary intact and is not copied; GET is; POST only when the route opts in', async (t) => {
  const { primary, shadow, primarySeen, shadowSeen } = await recordingPair(t)
  // Two routes: one opts POST in, one keeps the default methods.
  const doc = configDoc([
    { name: 'optin', match: { pathPrefix: '/in/' }, upstreams: { stable: primary.url, shadow: shadow.url }, shadow: { percent: 100, maxBodyBytes: '64kb', methods: ['GET', 'POST'] } },
    { name: 'default', upstreams: { stable: primary.url, shadow: shadow.url }, shadow: { percent: 100 } },
  ])
  const proxy = await startProxy(doc)
  t.teardown(() => proxy.close())

  const big = Buffer.alloc(5 * 1000 * 1000, 7)
  const bigReply = await send(proxy.url + '/in/upload', { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(bigReply.status, 200)
  const small = Buffer.from(JSON.stringify({ small: true }))
  t.equal((await send(proxy.url + '/in/small', { method: 'POST', body: small, headers: { 'content-type': 'application/json' } })).status, 200)
  // A body of unknown length (chunked) streams to the primary and is not copied.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(proxy.url + '/in/chunked', { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
    req.on('error', reject)
    req.write('part one,')
    req.end('part two')
  })
  t.equal(chunked, 200)
  t.equal((await send(proxy.url + '/in/get')).status, 200)
  t.equal((await send(proxy.url + '/plain/post', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })).status, 200)
  t.equal((await send(proxy.url + '/plain/get')).status, 200)
  await settled(proxy)

  const upload = primary.received.find((s) => s.url === '/in/upload')
  t.equal(upload?.bodyBytes, big.length, 'the primary received all 5 MB')
  t.equal(upload?.bodySha256, createHash('sha256').update(big).digest('hex'), 'byte for byte')
  t.equal(primarySeen.find((s) => s.url === '/in/chunked')?.bytes, 'part one,part two'.length)
  t.same(shadowSeen.map((s) => `${s.method} ${s.url} ${s.bytes}`).sort(),
    ['GET /in/get 0', 'GET /plain/get 0', `POST /in/small ${small.length}`],
    'copied: the GETs and the small opted-in POST; not the 5 MB POST, the chunked POST, or the default route\'s POST')
  const m = await scrape(proxy.adminUrl)
  const byRoute = (route: string): Record<string, number> => Object.fromEntries(m.select('weir_shadow_requests_total').filter((s) => s.labels.route === route).map((s) => [s.labels.outcome, s.value]))
  t.same(byRoute('optin'), { ok: 2, error: 0, dropped: 0, skipped: 2 }, 'the 5 MB and the chunked POST are skipped and counted')
  t.same(byRoute('default'), { ok: 1, error: 0, dropped: 0, skipped: 1 }, 'the POST of a route that did not opt in is skipped and counted')
})

t.test('nothing of a shadow response reaches the client; the override header cannot reach the shadow', async (t) => {
  const [primary, shadow] = await pairOf(t)
  shadow.handle((_req, res) => {
    res.setHeader('set-cookie', 'session=from-shadow; Path=/')
    res.setHeader('x-shadow-only', 'leak')
    res.setHeader('content-type', 'text/plain')
    res.end('shadow body')
  })
  const proxy = await proxyFor(t, shopRoute(primary, shadow.url, { percent: 100 }, { stickiness: { userId: { header: 'x-user' } }, override: { header: 'x-weir-version' } }))
  for (let i = 0; i < 50; i++) {
    const reply = await send(proxy.url + '/page', { headers: { 'x-user': `u${i}`, ...(i % 2 === 0 ? { 'x-weir-version': 'shadow' } : {}) } })
    t.equal(reply.status, 200)
    t.equal(reply.json().version, 'stable', 'stable answers, even when the override names shadow')
    t.equal(reply.headers['x-weir-version'], 'stable')
    t.notOk(reply.headers['set-cookie'], 'no Set-Cookie (the shadow\'s, or a bucket cookie: the user id decides)')
    t.notOk(reply.headers['x-shadow-only'], 'no shadow header')
    t.notMatch(reply.body, /shadow body/)
  }
  await settled(proxy)
  t.equal(shadow.received.length, 50, 'every request was still copied')
  const m = await scrape(proxy.adminUrl)
  const decisions = m.select('weir_routing_decisions_total').filter((s) => s.labels.reason === 'override' && s.value > 0)
  t.same(decisions, [], 'the override naming shadow was not taken as an override')
})

t.test('10 000 copies whose shadow responses are 1 MiB each: no pool exhaustion, primary unaffected, memory flat', { timeout: 180_000 }, async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const [primary, shadow] = await pairOf(t)
  const mib = Buffer.alloc(1 << 20, 'a')
  shadow.handle((_req, res) => {
    res.setHeader('content-type', 'application/octet-stream')
    res.setHeader('content-length', String(mib.length))
    res.end(mib)
  })
  const proxy = await proxyFor(t, shopRoute(primary, shadow.url, { percent: 100, maxInFlight: 64 }))
  // V8 frees array buffers' memory on a background thread after a collection: the lowest of
  // three readings 100 ms apart is what stays, not what is still being freed.
  const memory = async (): Promise<number> => {
    let lowest = Infinity
    for (let i = 0; i < 3; i++) {
      gc()
      await sleep(100)
      const usage = process.memoryUsage()
      lowest = Math.min(lowest, usage.heapUsed + usage.arrayBuffers)
    }
    return lowest
  }
  // Replies are tallied, not kept: the test's own memory must not grow with the count.
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  t.teardown(() => agent.destroy())
  let answered = 0
  let sent = 0
  const runBatch = async (count: number): Promise<void> => {
    const first = sent
    sent += count
    await inParallel(count, 8, async (i) => {
      const reply = await send(`${proxy.url}/m/${first + i}`, { agent })
      if (reply.status === 200 && reply.json().version === 'stable') answered++
    })
    await settled(proxy)
    // The test upstreams record every request they get; those records are the test's memory, not weir's.
    primary.received.length = 0
    shadow.received.length = 0
  }
  // 2 000 to warm up, then a reading after every further 2 000.
  await runBatch(2000)
  const readings = [await memory()]
  for (let batch = 0; batch < 4; batch++) {
    await runBatch(2000)
    readings.push(await memory())
  }
  t.equal(answered, 10_000, 'all 10 000 clients answered by the primary')
  const counts = shadowCounts(await scrape(proxy.adminUrl))
  t.equal(counts.error, 0, 'no copy failed (no pool exhaustion, no timeout)')
  t.equal((counts.ok ?? 0) + (counts.dropped ?? 0), 10_000)
  t.ok((counts.ok ?? 0) >= 9000, `most copies went out and were read to the end (${counts.ok} ok, ${counts.dropped} dropped)`)
  const inMiB = (bytes: number): string => (bytes / 2 ** 20).toFixed(1)
  t.comment(`heap + array buffers after 2 000, 4 000, … 10 000 copies: ${readings.map(inMiB).join(', ')} MiB`)
  const growth = Math.max(...readings.slice(1)) - (readings[0] as number)
  t.ok(growth < 16 * 2 ** 20, `memory flat after warm-up: at most ${inMiB(growth)} MiB above the warm-up reading over 8 000 × 1 MiB copies`)
})

t.test('a shadow that gives no answer 5 times in a row is paused (copies dropped), then copied to again once it answers', async (t) => {
  const port = await closedPort()
  const [primary] = await startUpstreams(t, 'stable') as [Upstream]
  const proxy = await proxyFor(t, shopRoute(primary, `http://127.0.0.1:${port}`, { percent: 100 }))
  // The breaker is each process's own (docs/workers.md): with workers, each of them tries 5 times
  // (fresh connections are handed to the workers in turn).
  const processes = proxy.config.workers
  for (let i = 0; i < 20; i++) {
    t.equal((await send(proxy.url + `/a/${i}`)).status, 200)
    await settled(proxy)
  }
  t.same(shadowCounts(await scrape(proxy.adminUrl)), { ok: 0, error: 5 * processes, dropped: 20 - 5 * processes, skipped: 0 }, 'five connection attempts (per process), then copies are dropped without one')
  const paused = (await send(proxy.adminUrl + '/api/v1/routes/shop/stats')).json<{ shadow: { pausedForMs: number } }>().shadow.pausedForMs
  t.ok(paused > 0 && paused <= 1000, `stats say for how long copies are paused (${paused} ms)`)

  const shadow = await startUpstream('shadow', port)
  t.teardown(() => shadow.close())
  await sleep(paused + 50)
  for (let i = 0; i < 10; i++) {
    t.equal((await send(proxy.url + `/b/${i}`)).status, 200)
    await settled(proxy)
  }
  t.equal(shadow.received.length, 10, 'after the pause every copy goes out again')
  t.same(shadowCounts(await scrape(proxy.adminUrl)), { ok: 10, error: 5 * processes, dropped: 20 - 5 * processes, skipped: 0 })
})
