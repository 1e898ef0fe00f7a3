// `npm run bench:shadow`: does a broken shadow upstream cost the client anything? Runs weir at a
// fixed request rate once without shadow and once per shadow behaviour (healthy, refusing,
// hanging, 500, 100× slower, reset mid-body), each on a fresh weir alone on CPU 0; prints client
// latency ratios against the no-shadow run, response checks, copies by outcome, in-flight peak
// and proxy memory, and writes bench/results/shadow-latest.json.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { LOAD_CPU, pinned, portOpen, PROXY_CPU, ROOT, runBench, startChild, startLoad, stopChild, waitForPort, type Child } from './children.ts'
import { busyStealPct, cpuTicks, processTicks, statusKb, TICK_MS, type Ticks } from './cpu-ticks.ts'
import { codeVersion, commandLine, machine } from './machine.ts'
import { medianOf } from './median.ts'
import { headerNamesOf, type ExpectedResponse, type RateLoadResult, type RateLoadSpec } from './rate-load.ts'
import { scenarioSetting, setting } from './settings.ts'
import { fmt, ratio, table } from './table.ts'
import { writeWeirConfig } from './weir-config.ts'

const TMP = '/tmp/weir-bench-shadow'

// Apart from bench/run.ts's ports, so the two never collide.
const PORTS = { weir: 18180, admin: 19911, stable: 18181, shadow: 18183, closed: 18189 }

/** The shadow settings every shadow scenario uses (only `upstreams.shadow` changes). */
const SHADOW = { percent: 100, maxInFlight: 100, timeout: '1s' }
const percentSetting = Number(process.env.BENCH_SHADOW_PERCENT ?? '100')
if (!(percentSetting > 0 && percentSetting <= 100)) throw new Error('BENCH_SHADOW_PERCENT: expected a percent above 0 and at most 100')
SHADOW.percent = percentSetting
/** How long the `slow` shadow waits before answering (the primary answers at once). */
const SLOW_MS = 100

// ---- settings: flags win over env vars, env vars over defaults ----------------------------

const { values: flags } = parseArgs({
  options: {
    rate: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    rounds: { type: 'string' },
    scenarios: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (flags.help === true) {
  process.stdout.write(`usage: npm run bench:shadow [-- --rate N --duration S --warmup S --connections N --rounds N --scenarios a,b]
env: BENCH_RATE (1000 req/s), BENCH_DURATION (15), BENCH_WARMUP (2), BENCH_CONNECTIONS (20),
     BENCH_ROUNDS (1; >1 repeats every scenario in rotated order and reports the median round),
     BENCH_SCENARIOS (none,ok,refuse,hang,500,slow,reset; none is always run: it is the reference),
     BENCH_SHADOW_PERCENT (100: share of requests copied)
`)
  process.exit(0)
}

const settings = {
  rate: setting(flags.rate, 'BENCH_RATE', 1000),
  duration: setting(flags.duration, 'BENCH_DURATION', 15),
  warmup: setting(flags.warmup, 'BENCH_WARMUP', 2),
  connections: setting(flags.connections, 'BENCH_CONNECTIONS', 20),
  rounds: setting(flags.rounds, 'BENCH_ROUNDS', 1),
  userIds: 10_000,
}

type ScenarioId = 'none' | 'ok' | 'refuse' | 'hang' | '500' | 'slow' | 'reset'
const ALL_SCENARIOS: readonly ScenarioId[] = ['none', 'ok', 'refuse', 'hang', '500', 'slow', 'reset']
const LABELS: Record<ScenarioId, string> = {
  none: 'none (no shadow)',
  ok: 'ok (healthy shadow)',
  refuse: 'refuse (closed port)',
  hang: 'hang (never answers)',
  500: '500 (+ Set-Cookie)',
  slow: `slow (${SLOW_MS} ms)`,
  reset: 'reset (cut mid-body)',
}
const selected = scenarioSetting(flags.scenarios, ALL_SCENARIOS)
const scenarios = ALL_SCENARIOS.filter((s) => s === 'none' || selected.includes(s))

// ---- /proc: memory of the proxy ---------------------------------------------------------------

/**
 * Samples the proxy's VmRSS every 500 ms until stop(): the peak over everything, and the peaks
 * of the first and second half of the window after mark() (a second half well above the first
 * means memory is still growing).
 */
function rssSampler (pid: number | undefined): { mark: () => void; stop: () => { peakKb: number; firstHalfKb: number; secondHalfKb: number } } {
  const samples: [number, number][] = []
  let peak = statusKb(pid, 'VmRSS') ?? 0
  let markedAt = Infinity
  const timer = setInterval(() => {
    const rss = statusKb(pid, 'VmRSS')
    if (rss === null) return
    if (rss > peak) peak = rss
    samples.push([performance.now(), rss])
  }, 500)
  return {
    mark: () => {
      markedAt = performance.now()
    },
    stop: () => {
      clearInterval(timer)
      const window = samples.filter(([at]) => at >= markedAt)
      const mid = ((window[0]?.[0] ?? 0) + (window.at(-1)?.[0] ?? 0)) / 2
      const peakOf = (list: [number, number][]): number => list.reduce((a, [, kb]) => Math.max(a, kb), 0)
      return { peakKb: peak, firstHalfKb: peakOf(window.filter(([at]) => at <= mid)), secondHalfKb: peakOf(window.filter(([at]) => at > mid)) }
    },
  }
}

// ---- load -------------------------------------------------------------------------------------

interface Measured extends RateLoadResult {
  proxyCpuPct: number
  proxyCpuUsPerReq: number
  /** CPU 0 (the proxy's) busy and stolen by the hypervisor over the measured run, %. */
  proxyCpuBusyPct: number
  proxyCpuStealPct: number
}

interface Sample { at: number; proc: number; cpu: Ticks | undefined }

/** Runs bench/rate-load.ts pinned to LOAD_CPU, sampling the proxy's CPU over the run alone. */
async function runLoad (spec: RateLoadSpec, proxyPid: number | undefined): Promise<Measured> {
  let before: Sample | null = null
  let after: Sample | null = null
  const sample = (): Sample => ({ at: performance.now(), proc: processTicks(proxyPid), cpu: cpuTicks()[PROXY_CPU] })
  const result = await startLoad('bench/rate-load.ts', spec, {
    start: () => { before = sample() },
    result: () => { after = sample() },
  }).result
  const a = before as Sample | null
  const b = after as Sample | null
  const procMs = a !== null && b !== null ? (b.proc - a.proc) * TICK_MS : 0
  const wallMs = a !== null && b !== null ? b.at - a.at : 1
  const [busy, steal] = busyStealPct(a?.cpu, b?.cpu) ?? [0, 0]
  return {
    ...result,
    proxyCpuPct: Math.round((procMs / wallMs) * 100),
    proxyCpuUsPerReq: result.requests === 0 ? 0 : Math.round((procMs * 1000) / result.requests),
    proxyCpuBusyPct: busy,
    proxyCpuStealPct: steal,
  }
}

// ---- weir and the shadows -----------------------------------------------------------------

function shadowUrl (id: ScenarioId): string | null {
  if (id === 'none') return null
  return `http://127.0.0.1:${id === 'refuse' ? PORTS.closed : PORTS.shadow}`
}

/** The same config for every scenario; only the shadow upstream and its settings differ. Validated in round 1. */
function weirConfig (id: ScenarioId, round: number): string {
  const shadow = shadowUrl(id)
  return writeWeirConfig({
    writer: `bench/shadow.ts (scenario ${id})`,
    file: `${TMP}/weir-${id}.yaml`,
    stateFile: `${TMP}/state-${id}.json`,
    ports: PORTS,
    route: 'shop',
    upstreams: { stable: `http://127.0.0.1:${PORTS.stable}`, ...(shadow === null ? {} : { shadow }) },
    ...(shadow === null ? {} : { shadow: SHADOW }),
    validate: round === 0,
  })
}

function startShadow (id: ScenarioId): Child | null {
  if (id === 'none' || id === 'refuse') return null
  if (id === 'ok') return startChild('shadow ok', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.shadow), 'shadow'])
  return startChild(`shadow ${id}`, LOAD_CPU, ['bench/servers/shadow-upstream.ts', String(PORTS.shadow), id, String(SLOW_MS)])
}

interface ShadowStats { requests: number; markedShadow: number; open: number; peakOpen: number }

async function shadowStats (id: ScenarioId): Promise<ShadowStats | null> {
  if (id === 'none' || id === 'refuse' || id === 'ok') return null
  const res = await fetch(`http://127.0.0.1:${PORTS.shadow}/__stats`, { signal: AbortSignal.timeout(5000) })
  return await res.json() as ShadowStats
}

type Outcome = 'ok' | 'error' | 'dropped' | 'skipped'

interface Scrape {
  shadowRequests: Record<Outcome, number>
  /** weir_upstream_errors_total{version="shadow"} by reason. */
  shadowErrors: Record<string, number>
}

/** weir_shadow_requests_total by outcome and the shadow's upstream errors, from the admin /metrics. */
async function scrapeMetrics (): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${PORTS.admin}/metrics`, { signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  const shadowRequests: Record<Outcome, number> = { ok: 0, error: 0, dropped: 0, skipped: 0 }
  const shadowErrors: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^(weir_shadow_requests_total|weir_upstream_errors_total)\{([^}]*)\} (\S+)$/.exec(line)
    if (m === null) continue
    const labels = Object.fromEntries([...(m[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]))
    const value = Number(m[3])
    if (m[1] === 'weir_shadow_requests_total' && labels.outcome !== undefined && labels.outcome in shadowRequests) {
      shadowRequests[labels.outcome as Outcome] += value
    } else if (m[1] === 'weir_upstream_errors_total' && labels.version === 'shadow' && value > 0) {
      shadowErrors[labels.reason ?? '?'] = (shadowErrors[labels.reason ?? '?'] ?? 0) + value
    }
  }
  return { shadowRequests, shadowErrors }
}

/** What a client gets from weir without shadow: every response of every scenario must be this. */
async function referenceResponse (): Promise<ExpectedResponse> {
  const res = await fetch(`http://127.0.0.1:${PORTS.weir}/`, { headers: { 'x-user-id': 'u-reference' } })
  return { status: res.status, body: await res.text(), headerNames: headerNamesOf(res.headers.keys()) }
}

// ---- one scenario ---------------------------------------------------------------------------

interface Run extends Measured {
  id: ScenarioId
  round: number
  /** VmRSS right after start-up, peak VmRSS sampled every 500 ms over warm-up + run, VmHWM at the end (kB). */
  rssStartKb: number
  rssPeakKb: number
  /** Peak VmRSS over the first and the second half of the measured run (kB). */
  rssFirstHalfKb: number
  rssSecondHalfKb: number
  hwmKb: number
  metrics: Scrape
  shadowServer: ShadowStats | null
}

let expected: ExpectedResponse | null = null

async function measure (id: ScenarioId, round: number): Promise<Run> {
  if (id === 'refuse' && await portOpen(PORTS.closed)) throw new Error(`port ${PORTS.closed} must be closed for the refuse scenario`)
  const shadow = startShadow(id)
  let weir: Child | null = null
  try {
    if (shadow !== null) await waitForPort(shadow, PORTS.shadow)
    weir = startChild('weir', PROXY_CPU, ['bin/weir.js', 'serve', '--config', weirConfig(id, round)])
    await waitForPort(weir, PORTS.weir)
    const pid = weir.proc.pid
    if (id === 'none') expected ??= await referenceResponse()
    if (expected === null) throw new Error('the reference response is taken in `none`, which runs first')
    const rssStartKb = statusKb(pid, 'VmRSS') ?? 0
    const rss = rssSampler(pid)
    const base = { url: `http://127.0.0.1:${PORTS.weir}/`, connections: settings.connections, rate: settings.rate, userIds: settings.userIds, expect: expected }
    let m: Measured
    let memory: ReturnType<ReturnType<typeof rssSampler>['stop']>
    try {
      const warm = await runLoad({ ...base, duration: settings.warmup }, pid)
      rss.mark()
      m = await runLoad({ ...base, duration: settings.duration }, pid)
      // Warm-up responses are checked too: a broken shadow must not change any of them.
      m.different += warm.different
      m.setCookie += warm.setCookie
      m.samples.push(...warm.samples)
    } finally {
      memory = rss.stop()
    }
    const metrics = await scrapeMetrics()
    const server = await shadowStats(id)
    const hwmKb = statusKb(pid, 'VmHWM') ?? 0
    return { id, round, ...m, rssStartKb, rssPeakKb: memory.peakKb, rssFirstHalfKb: memory.firstHalfKb, rssSecondHalfKb: memory.secondHalfKb, hwmKb, metrics, shadowServer: server }
  } finally {
    if (weir !== null) await stopChild(weir)
    if (shadow !== null) await stopChild(shadow)
  }
}

// ---- report -------------------------------------------------------------------------------------

const P99_TOLERANCE = 1.05

interface Row {
  id: ScenarioId
  label: string
  /** The round whose p99 is this scenario's median; its ratios are to `none` of that round. */
  round: number
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  p50Ratio: number | null
  p99Ratio: number | null
  p999Ratio: number | null
  roundP99Ratios: (number | null)[]
  /** Median over rounds of (this p99 ÷ none's p99 in the same round): steadier than one round's ratio. */
  p99RatioMedianOfRounds: number | null
  within5Pct: boolean | null
  non2xx: number
  errors: number
  different: number
  setCookie: number
  proxyCpuPct: number
  proxyCpuUsPerReq: number
  proxyCpuBusyPct: number
  proxyCpuStealPct: number
  rssStartMb: number
  rssPeakMb: number
  /** The median round's peak VmRSS over the first / second half of its measured run. */
  rssHalvesMb: [number, number]
  hwmMb: number
  shadowRequests: Record<Outcome, number>
  shadowErrors: Record<string, number>
  shadowPeakOpen: number | null
  shadowSeen: number | null
}

const mb = (kb: number): number => Math.round(kb / 102.4) / 10

function buildRows (runs: Run[]): Row[] {
  const noneOf = (round: number): Run | undefined => runs.find((r) => r.id === 'none' && r.round === round)
  return scenarios.flatMap((id) => {
    const mine = runs.filter((r) => r.id === id)
    const m = medianOf(mine, (r) => r.latencyP99)
    if (m === undefined) return []
    const none = noneOf(m.round)
    const p99Ratio = ratio(m.latencyP99, none?.latencyP99)
    const roundP99Ratios = mine.map((r) => ratio(r.latencyP99, noneOf(r.round)?.latencyP99))
    // Every round's responses count: one changed response in any round is a failure.
    const sum = (f: (r: Run) => number): number => mine.reduce((a, r) => a + f(r), 0)
    const shadowPeaks = mine.flatMap((r) => (r.shadowServer === null ? [] : [r.shadowServer.peakOpen]))
    return [{
      id,
      label: LABELS[id],
      round: m.round,
      reqPerSec: m.reqPerSec,
      p50Ms: m.latencyP50,
      p99Ms: m.latencyP99,
      p999Ms: m.latencyP999,
      p50Ratio: ratio(m.latencyP50, none?.latencyP50),
      p99Ratio,
      p999Ratio: ratio(m.latencyP999, none?.latencyP999),
      roundP99Ratios,
      p99RatioMedianOfRounds: medianOf(roundP99Ratios.flatMap((x) => (x === null ? [] : [x])), (x) => x) ?? null,
      within5Pct: id === 'none' || p99Ratio === null ? null : p99Ratio <= P99_TOLERANCE,
      non2xx: sum((r) => r.non2xx),
      errors: sum((r) => r.errors + r.timeouts),
      different: sum((r) => r.different),
      setCookie: sum((r) => r.setCookie),
      proxyCpuPct: m.proxyCpuPct,
      proxyCpuUsPerReq: m.proxyCpuUsPerReq,
      proxyCpuBusyPct: m.proxyCpuBusyPct,
      proxyCpuStealPct: m.proxyCpuStealPct,
      rssStartMb: mb(m.rssStartKb),
      rssPeakMb: mb(Math.max(...mine.map((r) => r.rssPeakKb))),
      rssHalvesMb: [mb(m.rssFirstHalfKb), mb(m.rssSecondHalfKb)],
      hwmMb: mb(Math.max(...mine.map((r) => r.hwmKb))),
      shadowRequests: m.metrics.shadowRequests,
      shadowErrors: m.metrics.shadowErrors,
      shadowPeakOpen: shadowPeaks.length === 0 ? null : Math.max(...shadowPeaks),
      shadowSeen: m.shadowServer?.markedShadow ?? null,
    }]
  })
}

function printTables (rows: Row[]): void {
  process.stdout.write('\nclient latency (median round by p99; ratios to `none` of the same round)\n' + table(
    ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'p50 ×', 'p99 ×', 'p99.9 ×', 'p99 ≤ 1.05×', 'p99 × med. of rounds', 'non-2xx', 'errors', 'changed', 'proxy CPU', 'µs CPU/req', 'CPU0 busy/steal'],
    rows.map((r) => [
      r.label, String(r.reqPerSec), fmt(r.p50Ms), fmt(r.p99Ms), fmt(r.p999Ms), fmt(r.p50Ratio), fmt(r.p99Ratio), fmt(r.p999Ratio),
      r.within5Pct === null ? '-' : r.within5Pct ? 'yes' : 'NO', fmt(r.p99RatioMedianOfRounds), String(r.non2xx), String(r.errors), String(r.different + r.setCookie),
      `${r.proxyCpuPct} %`, String(r.proxyCpuUsPerReq), `${r.proxyCpuBusyPct}/${r.proxyCpuStealPct} %`,
    ])))
  process.stdout.write('\nshadow copies (weir_shadow_requests_total at the end of warm-up + run) and proxy memory\n' + table(
    ['scenario', 'ok', 'error', 'dropped', 'skipped', 'shadow errors by reason', 'peak open at shadow', 'RSS start MB', 'RSS 1st/2nd half MB', 'RSS peak MB', 'VmHWM MB'],
    rows.map((r) => [
      r.label, String(r.shadowRequests.ok), String(r.shadowRequests.error), String(r.shadowRequests.dropped), String(r.shadowRequests.skipped),
      Object.entries(r.shadowErrors).map(([k, v]) => `${k} ${v}`).join(', ') || '-',
      r.shadowPeakOpen === null ? '-' : `${r.shadowPeakOpen} / ${SHADOW.maxInFlight}`,
      r.rssStartMb.toFixed(1), `${r.rssHalvesMb[0].toFixed(1)} / ${r.rssHalvesMb[1].toFixed(1)}`, r.rssPeakMb.toFixed(1), r.hwmMb.toFixed(1),
    ])))
  if (settings.rounds > 1) {
    process.stdout.write('\np99 ratio to `none`, round by round: ' +
      rows.filter((r) => r.id !== 'none').map((r) => `${r.id} ${r.roundP99Ratios.map((x) => fmt(x)).join('/')}`).join('; ') + '\n')
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main (): Promise<void> {
  rmSync(TMP, { recursive: true, force: true })
  mkdirSync(TMP, { recursive: true })
  for (const [name, port] of Object.entries(PORTS)) {
    if (await portOpen(port)) throw new Error(`port ${port} (${name}) is already in use: stop whatever listens there`)
  }
  const perScenario = settings.warmup + settings.duration + 3
  process.stdout.write(`weir shadow bench: ${settings.rate} req/s over ${settings.connections} connections, ${settings.duration} s per scenario after ` +
    `${settings.warmup} s warm-up, ${settings.rounds} round(s), shadow ${JSON.stringify(SHADOW)}; ` +
    (pinned ? `proxy on CPU ${PROXY_CPU}, upstreams + shadows + autocannon on CPU ${LOAD_CPU}` : 'taskset not found: not pinned') +
    `; about ${Math.ceil((perScenario * scenarios.length * settings.rounds) / 60)} min\n`)

  const stable = startChild('upstream stable', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.stable), 'stable'])
  await waitForPort(stable, PORTS.stable)

  const runs: Run[] = []
  for (let round = 0; round < settings.rounds; round++) {
    if (settings.rounds > 1) process.stdout.write(`round ${round + 1}/${settings.rounds}\n`)
    // Rotating the order spreads slow drifts (other load on the machine) over all scenarios.
    const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length] as ScenarioId)
    for (const id of order) {
      const r = await measure(id, round)
      runs.push(r)
      const s = r.metrics.shadowRequests
      process.stdout.write(`  ${LABELS[id].padEnd(22)} ${String(r.reqPerSec).padStart(5)} req/s  p50 ${r.latencyP50} ms  p99 ${r.latencyP99} ms  p99.9 ${r.latencyP999} ms` +
        `  proxy CPU ${r.proxyCpuPct} %  CPU0 busy ${r.proxyCpuBusyPct} % steal ${r.proxyCpuStealPct} %  RSS peak ${mb(r.rssPeakKb)} MB` +
        (id === 'none' ? '' : `  copies ok ${s.ok} error ${s.error} dropped ${s.dropped} skipped ${s.skipped}`) +
        (r.shadowServer === null ? '' : `  peak open at shadow ${r.shadowServer.peakOpen}`) +
        (r.errors + r.non2xx + r.timeouts + r.different + r.setCookie > 0
          ? `  ERRORS ${r.errors} timeouts ${r.timeouts} non2xx ${r.non2xx} changed ${r.different} set-cookie ${r.setCookie} ${JSON.stringify(r.samples)}`
          : '') + '\n')
    }
  }
  await stopChild(stable)

  const rows = buildRows(runs)
  printTables(rows)

  const shadowRows = rows.filter((r) => r.id !== 'none')
  const clean = rows.every((r) => r.non2xx + r.errors + r.different + r.setCookie === 0)
  const over = shadowRows.filter((r) => r.within5Pct === false).map((r) => `${r.id} (${fmt(r.p99Ratio)}×)`)
  const peaks = shadowRows.flatMap((r) => (r.shadowPeakOpen === null ? [] : [r.shadowPeakOpen]))
  process.stdout.write(`\nevery client response identical to the no-shadow one (status, body, header names, no Set-Cookie), no errors: ${clean ? 'YES' : 'NO'}\n` +
    `client p99 within 5 % of none: ${over.length === 0 ? 'all scenarios' : `NOT for ${over.join(', ')}`}\n` +
    `peak copies open at the shadow server: ${peaks.length === 0 ? '-' : Math.max(...peaks)} (maxInFlight ${SHADOW.maxInFlight})\n` +
    `proxy peak RSS: ${Math.max(...rows.map((r) => r.rssPeakMb)).toFixed(1)} MB with shadow at worst, ${rows.find((r) => r.id === 'none')?.rssPeakMb.toFixed(1) ?? '-'} MB without\n`)

  const results = {
    date: new Date().toISOString(),
    command: commandLine('npm run bench:shadow'),
    machine: machine(),
    code: codeVersion(),
    settings: { ...settings, scenarios, shadow: SHADOW, slowShadowMs: SLOW_MS },
    expectedResponse: expected,
    rows,
    runs,
  }
  mkdirSync(`${ROOT}bench/results`, { recursive: true })
  writeFileSync(`${ROOT}bench/results/shadow-latest.json`, JSON.stringify(results, null, 2) + '\n')
  process.stdout.write('\nwrote bench/results/shadow-latest.json\n')
}

runBench('bench:shadow', main)
