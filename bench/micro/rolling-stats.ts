// Micro-benchmark of the rolling stats in src/metrics/rolling-stats.ts: ns per `record` (the data path
// pays it on every request) and µs per `snapshot(60)` / `snapshot(600)` (the controller and the
// admin API, about once a second per route), plus the memory an instance holds after 10 minutes.
// Also bucketOf's float-bits index against the Math.log2 one it replaced (checked equal first).
// Usage: node bench/micro/rolling-stats.ts [--rounds N]

import { parseArgs } from 'node:util'
import { BUCKET_COUNT, RollingStats, bucketLowerBound, bucketOf } from '../../src/metrics/rolling-stats.ts'
import { median } from '../median.ts'
import { seededRandom } from './random.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string' } } })
const ROUNDS = Number(values.rounds ?? process.env.BENCH_ROUNDS ?? 15)
const RECORDS = 1_000_000
const SNAPSHOTS = 200

const random = seededRandom()
function gaussian (): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
}

// Latency shapes: what a proxy sees (log-normal around 30 ms) and the worst case for the sparse
// log (log-uniform over 1 µs – 60 s: every second touches hundreds of buckets).
const SHAPES = {
  'log-normal 30 ms': () => 30 * Math.exp(gaussian()),
  'log-uniform 1 µs–60 s': () => Math.exp(Math.log(0.001) + Math.log(60_000 / 0.001) * random()),
} as const
type Shape = keyof typeof SHAPES

function latencies (shape: Shape): Float64Array {
  const out = new Float64Array(4096)
  for (let i = 0; i < out.length; i++) out[i] = SHAPES[shape]()
  return out
}

// ---- record -------------------------------------------------------------------------------------

/** Median ns per record over ROUNDS rounds of RECORDS calls; `perSecond` records per clock second. */
function timeRecord (shape: Shape, clock: 'manual' | 'default', perSecond: number): number {
  const sample = latencies(shape)
  let ms = 0
  const stats = clock === 'manual' ? new RollingStats({ now: () => ms }) : new RollingStats()
  const perRound: number[] = []
  for (let round = 0; round < ROUNDS + 2; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < RECORDS; i++) {
      if (i % perSecond === 0) ms += 1000
      stats.record(sample[i & 4095] as number, (i & 63) === 0)
    }
    const ns = Number(process.hrtime.bigint() - start) / RECORDS
    // The first two rounds are warm-up (JIT tiers, and the log reaching its high-water mark).
    if (round >= 2) perRound.push(ns)
  }
  return median(perRound, 'upper') as number
}

/** bucketOf as it was first written: Math.log2, then the bounds table to settle rounding. */
function bucketOfLog2 (latencyMs: number): number {
  if (!(latencyMs >= 2 ** -10)) return 0
  let i = 1 + Math.floor((Math.log2(latencyMs) + 10) * 18)
  if (i >= BUCKET_COUNT) return BUCKET_COUNT - 1
  if (latencyMs < bucketLowerBound(i)) i--
  else if (latencyMs >= bucketLowerBound(i + 1)) i++
  return i
}

for (let ms = 2 ** -11; ms < 2 ** 17; ms *= 1.00001) {
  if (bucketOf(ms) !== bucketOfLog2(ms)) {
    process.stderr.write(`MISMATCH at ${ms} ms: bucketOf ${bucketOf(ms)}, Math.log2 version ${bucketOfLog2(ms)}\n`)
    process.exit(1)
  }
}

/** Median ns per call of `fn` over the log-normal sample. */
function timeCall (fn: (x: number) => number, sample: Float64Array): number {
  const perRound: number[] = []
  let sink = 0
  for (let round = 0; round < ROUNDS + 2; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < RECORDS; i++) sink += fn(sample[i & 4095] as number)
    if (round >= 2) perRound.push(Number(process.hrtime.bigint() - start) / RECORDS)
  }
  if (sink === 0.5) process.stdout.write('') // keeps `sink` alive
  return median(perRound, 'upper') as number
}

// ---- snapshot -----------------------------------------------------------------------------------

/** An instance with 10 minutes of traffic at `rps` requests per second (manual clock). */
function filled (shape: Shape, rps: number): { stats: RollingStats; advance: () => void } {
  // Fresh draws, not the 4 096-value cycle of the record timing: the spread per second (and so
  // the memory) must be the distribution's own.
  const draw = SHAPES[shape]
  let ms = 0
  const stats = new RollingStats({ now: () => ms })
  for (let second = 0; second < 601; second++) {
    ms = second * 1000
    for (let r = 0; r < rps; r++) stats.record(draw(), (r & 63) === 0)
  }
  // Snapshots move through time without recording, like a controller between requests.
  return { stats, advance: () => { ms += 1 } }
}

function timeSnapshot (stats: RollingStats, window: number): number {
  const perRound: number[] = []
  let sink = 0
  for (let round = 0; round < ROUNDS + 2; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < SNAPSHOTS; i++) sink += stats.snapshot(window).requests
    const us = Number(process.hrtime.bigint() - start) / SNAPSHOTS / 1000
    if (round >= 2) perRound.push(us)
  }
  if (sink === 0.5) process.stdout.write('')
  return median(perRound, 'upper') as number
}

// ---- report -------------------------------------------------------------------------------------

const out = (line: string): void => { process.stdout.write(line + '\n') }
out(`node ${process.version}; medians of ${ROUNDS} rounds (after 2 warm-up rounds)`)

out(`\nrecord: ns per call, ${RECORDS.toLocaleString('en')} calls per round`)
for (const shape of Object.keys(SHAPES) as Shape[]) {
  for (const [clock, perSecond] of [['manual', 1000], ['manual', 100_000], ['default', 0]] as const) {
    const label = clock === 'manual' ? `manual clock, ${perSecond.toLocaleString('en')} records per second` : 'default clock (performance.now())'
    const ns = timeRecord(shape, clock, perSecond === 0 ? Number.MAX_SAFE_INTEGER : perSecond)
    out(`  ${shape.padEnd(22)} ${label.padEnd(42)} ${ns.toFixed(1).padStart(6)} ns`)
  }
}
const parts = latencies('log-normal 30 ms')
out(`  parts:  performance.now() ${timeCall(() => performance.now(), parts).toFixed(1)} ns, ` +
  `bucketOf ${timeCall(bucketOf, parts).toFixed(1)} ns (float bits) vs ${timeCall(bucketOfLog2, parts).toFixed(1)} ns (Math.log2), ` +
  `empty loop ${timeCall((x) => x, parts).toFixed(1)} ns`)
out(`\nsnapshot: µs per call, ${SNAPSHOTS} calls per round, instance filled with 601 s of traffic`)
for (const shape of Object.keys(SHAPES) as Shape[]) {
  for (const rps of [10, 1000, 20_000]) {
    const { stats, advance } = filled(shape, rps)
    advance()
    const s60 = timeSnapshot(stats, 60)
    const s600 = timeSnapshot(stats, 600)
    out(`  ${shape.padEnd(22)} ${String(rps).padStart(6)} req/s   snapshot(60) ${s60.toFixed(1).padStart(7)} µs   ` +
      `snapshot(600) ${s600.toFixed(1).padStart(7)} µs   instance ${(stats.byteLength / 1024).toFixed(0).padStart(5)} KB`)
  }
}
out(`  idle instance: ${(new RollingStats().byteLength / 1024).toFixed(1)} KB`)
