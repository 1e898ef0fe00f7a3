// Micro-benchmark of the data path's deliberate tricks, each against the plain way it replaced
// (checked to give the same result first), timed in the same rounds so a busy machine slows both:
//  - trace ids from a 4 KiB pool of random bytes (src/proxy/trace-context.ts) vs a crypto call per id;
//  - the per-request logger made lazily (src/proxy/lazy-logger.ts) vs pino's child() per request;
//  - response headers copied into a fresh object (rewriteResponseHeaders) vs spread then `delete`,
//    each then read once key by key as writeHead does;
//  - the response's 'close' listener added with on() vs once().
// Usage: node bench/micro/hot-path.ts [--rounds N]

import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { IncomingHttpHeaders } from 'node:http'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { rewriteResponseHeaders } from '../../src/proxy/forward-headers.ts'
import { lazyChildLogger } from '../../src/proxy/lazy-logger.ts'
import { newSpanId, newTraceId } from '../../src/proxy/trace-context.ts'
import { median } from '../median.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string' } } })
const ROUNDS = Number(values.rounds ?? process.env.BENCH_ROUNDS ?? 15)
const CALLS = 200_000

interface Pair { name: string; plain: [string, (i: number) => unknown]; trick: [string, (i: number) => unknown] }

/** Median ns per call of each body, both timed in every round (2 warm-up rounds first). */
function timePair (pair: Pair): [number, number] {
  const rounds: [number[], number[]] = [[], []]
  let sink = 0
  for (let round = 0; round < ROUNDS + 2; round++) {
    for (const [k, [, body]] of [pair.plain, pair.trick].entries()) {
      const start = process.hrtime.bigint()
      for (let i = 0; i < CALLS; i++) if (body(i) !== undefined) sink++
      if (round >= 2) rounds[k]?.push(Number(process.hrtime.bigint() - start) / CALLS)
    }
  }
  if (sink < 0) throw new Error('unreachable')
  return [median(rounds[0], 'upper') as number, median(rounds[1], 'upper') as number]
}

function check (what: string, ok: boolean): void {
  if (!ok) throw new Error(`${what}: the two ways disagree`)
}

// ---- trace ids --------------------------------------------------------------------------------

const HEX32 = /^[0-9a-f]{32}$/
const HEX16 = /^[0-9a-f]{16}$/
const perCall = (): string => randomBytes(16).toString('hex') + randomBytes(8).toString('hex')
const pooled = (): string => newTraceId() + newSpanId()
for (let i = 0; i < 1000; i++) {
  const [a, b] = [perCall(), pooled()]
  check('trace ids', HEX32.test(a.slice(0, 32)) && HEX16.test(a.slice(32)) && HEX32.test(b.slice(0, 32)) && HEX16.test(b.slice(32)) && a !== b)
}

// ---- request loggers --------------------------------------------------------------------------

// As the proxy runs by default: level warn, so a request that goes well logs nothing.
const lines: string[] = []
const sinkStream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
const parent = pino({ level: 'warn' }, sinkStream) as unknown as FastifyBaseLogger
const ids = Array.from({ length: 4096 }, (_, i) => `req-${i.toString(36)}`)
parent.child({ reqId: 'a' }).warn('same line')
lazyChildLogger(parent, { reqId: 'a' }).warn('same line')
await new Promise((resolve) => setImmediate(resolve))
const strip = (line: string): unknown => ({ ...JSON.parse(line), time: 0 })
check('request loggers', lines.length === 2 && JSON.stringify(strip(lines[0] as string)) === JSON.stringify(strip(lines[1] as string)))

// ---- response headers -------------------------------------------------------------------------

// What undici hands over from an nginx upstream.
const upstream: IncomingHttpHeaders = {
  server: 'nginx/1.22.1',
  date: 'Wed, 02 Dec 2026 00:03:19 GMT',
  'content-type': 'application/json',
  'content-length': '1024',
  connection: 'keep-alive',
}
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding']
function withDelete (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...headers }
  for (const name of HOP_BY_HOP) delete out[name]
  return out
}
/** What writeHead does with the object: every name and value, once. */
function readAll (headers: IncomingHttpHeaders): number {
  let n = 0
  for (const name in headers) n += name.length + String(headers[name]).length
  return n
}
check('response headers', JSON.stringify(withDelete(upstream)) === JSON.stringify(rewriteResponseHeaders(upstream, null, false)))

// ---- close listeners --------------------------------------------------------------------------

let closed = 0
const onClose = (): void => { closed++ }
function closeWith (add: 'on' | 'once'): number {
  const res = new EventEmitter()
  res[add]('close', onClose)
  res.emit('close')
  return closed
}
closeWith('on')
closeWith('once')
check('close listeners', closed === 2)

// ---- timing -----------------------------------------------------------------------------------

const pairs: Pair[] = [
  { name: 'trace id + span id', plain: ['randomBytes per id', perCall], trick: ['4 KiB pool (trace-context.ts)', pooled] },
  { name: 'request logger', plain: ['pino child()', (i) => parent.child({ reqId: ids[i & 4095] })], trick: ['lazyChildLogger', (i) => lazyChildLogger(parent, { reqId: ids[i & 4095] })] },
  { name: 'response headers', plain: ['spread + delete, read', () => readAll(withDelete(upstream))], trick: ['rewriteResponseHeaders, read', () => readAll(rewriteResponseHeaders(upstream, null, false))] },
  { name: "'close' listener", plain: ['once()', () => closeWith('once')], trick: ['on()', () => closeWith('on')] },
]

process.stdout.write(`median ns per call of ${ROUNDS} rounds of ${CALLS} calls, both ways in every round (node ${process.version}):\n`)
for (const pair of pairs) {
  const [plain, trick] = timePair(pair)
  process.stdout.write(`  ${pair.name.padEnd(20)} ${pair.plain[0].padEnd(24)} ${plain.toFixed(0).padStart(6)} ns   ` +
    `${pair.trick[0].padEnd(30)} ${trick.toFixed(0).padStart(6)} ns   ${(plain / trick).toFixed(2)}×\n`)
}
