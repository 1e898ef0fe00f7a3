// Micro-benchmark of what the data path pays per response to count it (src/metrics/cells.ts):
// `countResponse` (weir_requests_total + weir_request_duration_seconds into plain typed-array
// cells) against prom-client's pre-bound children doing the same (`counter.labels(...).inc()`,
// `histogram.labels(...).observe()`), and the whole recording of a response as the proxy does
// it (two performance.now(), countResponse, RollingStats.record). Checks first that both
// routes expose the same /metrics values.
// Usage: node bench/micro/recorder.ts [--rounds N]

import { parseArgs } from 'node:util'
import { Counter, Histogram, Registry } from 'prom-client'
import { countResponse, DURATION_BUCKETS_MS, type VersionMetrics } from '../../src/metrics/cells.ts'
import { createRecorder } from '../../src/metrics/recorder.ts'
import { createMetrics } from '../../src/metrics/registry.ts'
import { StatsRegistry } from '../../src/metrics/rolling-stats.ts'
import { median } from '../median.ts'
import { seededRandom } from './random.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string' } } })
const ROUNDS = Number(values.rounds ?? process.env.BENCH_ROUNDS ?? 15)
const CALLS = 1_000_000

const random = seededRandom()
// Latencies log-normal around 10 ms; statuses mostly 200, some 404, 500, 502.
const LATENCIES = new Float64Array(4096)
const STATUSES = new Uint16Array(4096)
for (let i = 0; i < 4096; i++) {
  LATENCIES[i] = 10 * Math.exp(Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()))
  const r = random()
  STATUSES[i] = r < 0.9 ? 200 : r < 0.95 ? 404 : r < 0.98 ? 500 : 502
}

/** Median ns per call of `body(i)` over ROUNDS rounds of CALLS calls (2 warm-up rounds). */
function time (body: (i: number) => void): number {
  const perRound: number[] = []
  for (let round = 0; round < ROUNDS + 2; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < CALLS; i++) body(i & 4095)
    if (round >= 2) perRound.push(Number(process.hrtime.bigint() - start) / CALLS)
  }
  return median(perRound, 'upper') as number
}

// ---- the two ways, checked equal ---------------------------------------------------------------

function promClientRecorder (): { record (status: number, ms: number): void; registry: Registry } {
  const registry = new Registry()
  const requests = new Counter({ name: 'weir_requests_total', help: 'h', labelNames: ['route', 'version', 'code'] as const, registers: [registry] })
  const duration = new Histogram({
    name: 'weir_request_duration_seconds',
    help: 'h',
    labelNames: ['route', 'version'] as const,
    buckets: DURATION_BUCKETS_MS.map((ms) => ms / 1000),
    registers: [registry],
  })
  // Pre-bound children, prom-client's fast path; the code is dynamic, so one child per status.
  const byStatus = new Map<number, Counter.Internal>()
  const timer = duration.labels('shop', 'stable')
  return {
    registry,
    record (status, ms) {
      let child = byStatus.get(status)
      if (child === undefined) {
        child = requests.labels('shop', 'stable', String(status))
        byStatus.set(status, child)
      }
      child.inc()
      timer.observe(ms / 1000)
    },
  }
}

const metrics = createMetrics({ processDefaults: false })
const stats = new StatsRegistry()
const cells: VersionMetrics = createRecorder(metrics, stats).route('shop', ['stable'], false).versions.stable
const reference = promClientRecorder()

for (let i = 0; i < 4096; i++) {
  countResponse(cells, STATUSES[i] as number, LATENCIES[i] as number)
  reference.record(STATUSES[i] as number, LATENCIES[i] as number)
}
// Same series and values, whatever the label order (prom-client puts `le` first).
const pick = (text: string): string[] => text.split('\n').filter((l) => /^weir_request(s_total|_duration_seconds_(bucket|count))\{/.test(l) && l.includes('version="stable"'))
  .map((l) => l.replace(/\{.*\}/, (labels) => `{${labels.slice(1, -1).split(',').sort().join(',')}}`)).sort()
const ours = pick(await metrics.registry.metrics())
const theirs = pick(await reference.registry.metrics())
if (ours.join('\n') !== theirs.join('\n')) throw new Error(`exposition differs:\nours:\n${ours.join('\n')}\nprom-client:\n${theirs.join('\n')}`)
process.stdout.write(`checked: ${ours.length} weir_requests_total / duration series equal to prom-client's for 4096 responses\n`)

const window = cells.window
if (window === null) throw new Error('no stats bound')
const results = {
  'countResponse (typed-array cells)': time((i) => countResponse(cells, STATUSES[i] as number, LATENCIES[i] as number)),
  'prom-client pre-bound children (inc + observe)': time((i) => reference.record(STATUSES[i] as number, LATENCIES[i] as number)),
  'RollingStats.record (default clock)': time((i) => window.record(LATENCIES[i] as number, (STATUSES[i] as number) >= 500)),
  'performance.now()': time(() => { performance.now() }),
  'whole recording: 2 now() + countResponse + record': time((i) => {
    const started = performance.now()
    const ms = performance.now() - started + (LATENCIES[i] as number)
    countResponse(cells, STATUSES[i] as number, ms)
    window.record(ms, (STATUSES[i] as number) >= 500)
  }),
}
process.stdout.write(`median of ${ROUNDS} rounds of ${CALLS} calls (node ${process.version}):\n`)
for (const [name, ns] of Object.entries(results)) process.stdout.write(`  ${ns.toFixed(1).padStart(7)} ns  ${name}\n`)
