// A traceable request (docs/proxying.md, "Tracing" and "Access log"): W3C traceparent reaches the
// upstream with its trace id and weir's own span as the parent, one is started when absent or
// invalid, the shadow copy is a sibling span of the same trace; and the access log writes one
// line per request, with both ids, on weir's own log (from worker processes too).

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { send } from '../helpers/http.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { eventually, openSocket, readUntilClose } from '../helpers/raw-http.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { exitWithin, serveWeir, tempDir, yamlConfig } from '../helpers/weir-process.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

t.test('a request with a traceparent reaches the upstream with the same trace id, a new parent span id, its flags and tracestate', async (t) => {
  const [stable] = await startUpstreams(t, 'stable')
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: stable?.url } }]))
  t.teardown(() => proxy.close())
  for (const flags of ['01', '00']) {
    const reply = await send(proxy.url + '/x', { headers: { traceparent: `00-${TRACE}-${PARENT}-${flags}`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' } })
    t.equal(reply.status, 200)
    const seen = stable?.received.at(-1)
    const [, trace, parent, sent] = TRACEPARENT.exec(String(seen?.headers.traceparent)) ?? []
    t.equal(trace, TRACE, 'the same trace id')
    t.ok(parent !== undefined && parent !== PARENT && parent !== '0000000000000000', `a new parent id: weir's span (${parent})`)
    t.equal(sent, flags, 'the flags as sent')
    t.equal(seen?.headers.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'tracestate unchanged')
  }
})

t.test('a request without one, or with an invalid one, starts a new trace and drops tracestate', async (t) => {
  const [stable] = await startUpstreams(t, 'stable')
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: stable?.url } }]))
  t.teardown(() => proxy.close())
  const traces = new Set<string>()
  for (const headers of [{}, { tracestate: 'a=b' }, { traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01`, tracestate: 'a=b' },
    { traceparent: `00-${'0'.repeat(32)}-${PARENT}-01` }, { traceparent: `ff-${TRACE}-${PARENT}-01` }, { traceparent: 'nonsense' }]) {
    await send(proxy.url + '/', { headers })
    const seen = stable?.received.at(-1)
    const [, trace, , flags] = TRACEPARENT.exec(String(seen?.headers.traceparent)) ?? []
    t.ok(trace !== undefined && trace !== TRACE && trace !== '0'.repeat(32), `${JSON.stringify(headers)}: a new trace (${trace})`)
    t.equal(flags, '01', 'sampled: tracers that follow their parent keep recording')
    t.equal(seen?.headers.tracestate, undefined, 'no tracestate without a valid traceparent')
    traces.add(trace as string)
  }
  t.equal(traces.size, 6, 'each request its own trace')
})

t.test('tracing.generate: false propagates a valid traceparent and starts none', async (t) => {
  const [stable] = await startUpstreams(t, 'stable')
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: stable?.url } }], { tracing: { generate: false } }))
  t.teardown(() => proxy.close())
  await send(proxy.url + '/', { headers: { tracestate: 'a=b' } })
  t.equal(stable?.received.at(-1)?.headers.traceparent, undefined, 'none started')
  t.equal(stable?.received.at(-1)?.headers.tracestate, undefined)
  await send(proxy.url + '/', { headers: { traceparent: 'invalid', tracestate: 'a=b' } })
  t.equal(stable?.received.at(-1)?.headers.traceparent, undefined, 'an invalid one is not passed on')
  await send(proxy.url + '/', { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } })
  t.match(stable?.received.at(-1)?.headers.traceparent, new RegExp(`^00-${TRACE}-(?!${PARENT})[0-9a-f]{16}-01$`), 'a valid one still gets weir\'s span')
})

t.test('the shadow copy carries the same trace with a span of its own', async (t) => {
  const [stable, shadow] = await startUpstreams(t, 'stable', 'shadow')
  const proxy = await startProxy(configDoc([{ name: 'shop', upstreams: { stable: stable?.url, shadow: shadow?.url }, shadow: { percent: 100 } }]))
  t.teardown(() => proxy.close())
  await send(proxy.url + '/', { headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'k=v' } })
  t.ok(await eventually(() => (shadow?.received.length ?? 0) > 0, 5000), 'the shadow got its copy')
  const primary = TRACEPARENT.exec(String(stable?.received[0]?.headers.traceparent)) ?? []
  const copy = TRACEPARENT.exec(String(shadow?.received[0]?.headers.traceparent)) ?? []
  t.equal(copy[1], TRACE, 'the same trace id')
  t.equal(copy[3], '01', 'the same flags')
  t.ok(copy[2] !== undefined && copy[2] !== primary[2] && copy[2] !== PARENT, 'its own span id')
  t.equal(shadow?.received[0]?.headers.tracestate, 'k=v')
})

interface AccessLine { level: number; msg: string; [key: string]: unknown }

function accessLines (output: string): AccessLine[] {
  return output.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try {
      const line = JSON.parse(l) as AccessLine
      return line.msg === 'access' ? [line] : []
    } catch { return [] }
  })
}

t.test('the access log writes one line per request with both ids, the bytes sent and the upstream; off writes none', async (t) => {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${stable?.url}, canary: ${canary?.url} }
weights: { stable: 0, canary: 100 }
stickiness: { userId: { header: x-user-id } }
match: { host: shop.test }`, 'accessLog: on\n'))
  const { weir, port } = await serveWeir(t, file)
  // A raw request, so the bytes the log counts can be checked against the bytes that arrived.
  const socket = await openSocket(port)
  const received: Buffer[] = []
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  socket.write(`GET /items?token=secret HTTP/1.1\r\nHost: shop.test\r\nx-user-id: u1\r\nx-request-id: req-trace-1\r\ntraceparent: 00-${TRACE}-${PARENT}-01\r\nConnection: close\r\n\r\n`)
  const reply = await readUntilClose(socket, 5000)
  t.equal(reply?.status, 200)
  const bytes = Buffer.concat(received).length
  await send(`http://127.0.0.1:${port}/`, { headers: { host: 'nowhere.test', 'x-request-id': 'req-404' } })
  t.ok(await eventually(() => accessLines(weir.output()).length >= 2, 5000), 'two lines')
  const [line, missed] = accessLines(weir.output())
  const upstreamTrace = TRACEPARENT.exec(String(canary?.received[0]?.headers.traceparent)) ?? []
  t.match(line, {
    level: 30,
    route: 'app',
    version: 'canary',
    reason: 'user',
    method: 'GET',
    path: '/items',
    status: 200,
    bytes,
    upstream: canary?.url,
    client: '127.0.0.1',
    requestId: 'req-trace-1',
    traceId: TRACE,
    spanId: upstreamTrace[2],
    parentSpanId: PARENT,
  }, JSON.stringify(line))
  t.ok(typeof line?.time === 'number' && typeof line.durationMs === 'number' && line.durationMs >= 0, 'its time and duration')
  t.notMatch(JSON.stringify(line), /token=secret/, 'the query is not logged')
  t.match(missed, { route: null, status: 404, upstream: null, requestId: 'req-404', traceId: null }, 'a request no route matches is logged too')
  weir.child.kill('SIGTERM')
  t.equal((await exitWithin(weir, 10_000))?.code, 0)

  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${stable?.url} }`))
  const quiet = await serveWeir(t, file)
  for (let i = 0; i < 3; i++) t.equal((await send(quiet.url + '/')).status, 200)
  quiet.weir.child.kill('SIGTERM')
  t.equal((await exitWithin(quiet.weir, 10_000))?.code, 0)
  t.same(accessLines(quiet.weir.output()), [], 'accessLog off (the default): no line')
})
