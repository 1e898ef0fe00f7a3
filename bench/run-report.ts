// The report of bench/run.ts: one row per scenario from its rounds (saturating figures of the
// median round, paced latencies of the round with the median p99, the peak RSS), the ratios to
// the bare plugin, the floor and direct, the one table, and the checks that say when to distrust it.

import { PROXY_CPU, LOAD_CPU } from './children.ts'
import type { LoadResult } from './load.ts'
import { usPerRequest, type Measured } from './measure.ts'
import { medianOf } from './median.ts'
import type { OpenLoopResult } from './open-loop.ts'
import { round1, STEADY_STEAL_PCT, stealOf } from './paired.ts'
import { fmt, ratio, table } from './table.ts'

export type Saturating = Measured<LoadResult>
export type Paced = Measured<OpenLoopResult>

/** Everything measured of one scenario, one entry per round. */
export interface ScenarioRuns {
  id: string
  label: string
  saturating: Saturating[]
  paced: Paced[]
  /** VmHWM of the proxy at the end of each round's run (kB). */
  peakRssKb: number[]
}

export interface PacedRow {
  requests: number
  reqPerSec: number
  /** From each request's due time (open loop): what a client at this rate sees. */
  p50Ms: number
  p90Ms: number
  p99Ms: number
  p999Ms: number
  maxMs: number
  meanMs: number
  /** From the actual write (closed-loop view; lower than the above when requests had to wait). */
  serviceP50Ms: number
  serviceP99Ms: number
  /** Due time → write: the sender's lateness plus waiting for a free connection. */
  sendLagP50Ms: number
  sendLagP99Ms: number
  /** The sender's own lateness: how late its timer ticks came. */
  tickLagP50Ms: number
  tickLagP99Ms: number
  peakInFlight: number
  errors: number
  timeouts: number
  non2xx: number
  setCookie: number
  proxyCpuPct: number | null
  proxyCpuUsPerReq: number | null
  loadCpuPct: number
  cpuBusyPct: Record<string, number>
  /** Every round's p99 (the row shows the round with the median one of its steady rounds). */
  roundsP99Ms: number[]
  /** Rounds (0-based) the row's paced figures were chosen from (as Row.steadyRounds). */
  steadyRounds: number[]
}

export interface Row {
  id: string
  label: string
  /** Saturating run (null when BENCH_MODES leaves it out). */
  reqPerSec: number | null
  p50Ms: number | null
  p99Ms: number | null
  meanMs: number | null
  errors: number
  non2xx: number
  ratioVsBare: number | null
  ratioVsFloor: number | null
  proxyCpuPct: number | null
  /** Proxy CPU time per request (median over rounds): robust to other load on the machine. */
  proxyCpuUsPerReq: number | null
  /** Requests per proxy CPU-second relative to the bare plugin / the floor (= their µs per request ÷ this one's). */
  cpuRatioVsBare: number | null
  cpuRatioVsFloor: number | null
  upstreamCpuPct: number | null
  loadCpuPct: number | null
  cpuBusyPct: Record<string, number>
  roundsReqPerSec: number[]
  /** Rounds (0-based) whose saturating run the row's figures come from: those with steal ≤ STEADY_STEAL_PCT, or all when none was. */
  steadyRounds: number[]
  /** Peak RSS of the proxy process over all its runs (VmHWM, max over rounds). */
  peakRssMb: number | null
  paced: PacedRow | null
  /** Paced p50 / p99 minus direct's: what the proxy hop adds at this rate. */
  addedP50Ms: number | null
  addedP99Ms: number | null
  /** addedP50Ms ÷ the floor's addedP50Ms. */
  addedP50VsFloor: number | null
}

const pct = (ms: number, wallSec: number): number => (wallSec > 0 ? Math.round((ms / (wallSec * 1000)) * 100) : 0)
const ms3 = (n: number): number => Math.round(n * 1000) / 1000

/**
 * The rounds (0-based) a row is made of: those in which the hypervisor stole at most
 * STEADY_STEAL_PCT of either CPU, or every round when none was that quiet. On this VM steal comes
 * and goes within minutes, and a stolen run is slower by about what was stolen.
 */
export function steadyRoundsOf (list: { cpuBusyPct: Record<string, number> }[]): number[] {
  const steady = list.flatMap((m, i) => (stealOf(m) <= STEADY_STEAL_PCT ? [i] : []))
  return steady.length > 0 ? steady : list.map((_, i) => i)
}

function pacedRow (all: Paced[]): PacedRow | null {
  const steadyRounds = steadyRoundsOf(all)
  const list = steadyRounds.map((i) => all[i] as Paced)
  const m = medianOf(list, (p) => p.latencyP99)
  if (m === undefined) return null
  const cost = usPerRequest(m)
  return {
    requests: m.requests,
    reqPerSec: m.reqPerSec,
    p50Ms: m.latencyP50,
    p90Ms: m.latencyP90,
    p99Ms: m.latencyP99,
    p999Ms: m.latencyP999,
    maxMs: m.latencyMax,
    meanMs: m.latencyMean,
    serviceP50Ms: m.serviceP50,
    serviceP99Ms: m.serviceP99,
    sendLagP50Ms: m.sendLagP50,
    sendLagP99Ms: m.sendLagP99,
    tickLagP50Ms: m.tickLagP50,
    tickLagP99Ms: m.tickLagP99,
    peakInFlight: m.peakInFlight,
    errors: m.errors,
    timeouts: m.timeouts,
    non2xx: m.non2xx,
    setCookie: m.setCookie,
    proxyCpuPct: m.proxyCpuPct,
    proxyCpuUsPerReq: round1(cost),
    loadCpuPct: pct(m.loadCpuMs, m.durationSec),
    cpuBusyPct: m.cpuBusyPct,
    roundsP99Ms: all.map((p) => p.latencyP99),
    steadyRounds,
  }
}

export function buildRows (scenarios: ScenarioRuns[]): Row[] {
  const steadyOf = (s: ScenarioRuns): Saturating[] => steadyRoundsOf(s.saturating).map((i) => s.saturating[i] as Saturating)
  const costOf = (s: ScenarioRuns | undefined): number | undefined =>
    s === undefined ? undefined : medianOf(steadyOf(s).flatMap((m) => usPerRequest(m) ?? []), (c) => c)
  const rateOf = (s: ScenarioRuns | undefined): number | undefined =>
    s === undefined ? undefined : medianOf(steadyOf(s), (m) => m.reqPerSec)?.reqPerSec
  const find = (id: string): ScenarioRuns | undefined => scenarios.find((s) => s.id === id)
  const [bare, floor] = [find('bare'), find('floor')]
  const cpuRatio = (cost: number | undefined, base: number | undefined): number | null =>
    cost === undefined || base === undefined ? null : ratio(base, cost)
  const rows = scenarios.map((s): Row => {
    const m = medianOf(steadyOf(s), (r) => r.reqPerSec)
    const cost = costOf(s)
    return {
      id: s.id,
      label: s.label,
      reqPerSec: m === undefined ? null : Math.round(m.reqPerSec),
      p50Ms: m?.latencyP50 ?? null,
      p99Ms: m?.latencyP99 ?? null,
      meanMs: m?.latencyMean ?? null,
      errors: m === undefined ? 0 : m.errors + m.timeouts,
      non2xx: m?.non2xx ?? 0,
      ratioVsBare: m === undefined ? null : ratio(m.reqPerSec, rateOf(bare)),
      ratioVsFloor: m === undefined ? null : ratio(m.reqPerSec, rateOf(floor)),
      proxyCpuPct: m?.proxyCpuPct ?? null,
      proxyCpuUsPerReq: round1(cost ?? null),
      cpuRatioVsBare: cpuRatio(cost, costOf(bare)),
      cpuRatioVsFloor: cpuRatio(cost, costOf(floor)),
      upstreamCpuPct: m?.upstreamCpuPct ?? null,
      loadCpuPct: m === undefined ? null : pct(m.loadCpuMs, m.durationSec),
      cpuBusyPct: m?.cpuBusyPct ?? {},
      roundsReqPerSec: s.saturating.map((r) => Math.round(r.reqPerSec)),
      steadyRounds: steadyRoundsOf(s.saturating),
      peakRssMb: s.peakRssKb.length === 0 ? null : round1(Math.max(...s.peakRssKb) / 1024),
      paced: pacedRow(s.paced),
      addedP50Ms: null,
      addedP99Ms: null,
      addedP50VsFloor: null,
    }
  })
  // What the proxy hop adds at the paced rate: direct's latency (sender, loopback, upstream) taken off.
  const direct = rows.find((r) => r.id === 'direct')?.paced
  if (direct !== null && direct !== undefined) {
    for (const r of rows) {
      if (r.id === 'direct' || r.paced === null) continue
      r.addedP50Ms = ms3(r.paced.p50Ms - direct.p50Ms)
      r.addedP99Ms = ms3(r.paced.p99Ms - direct.p99Ms)
    }
    const floorAdded = rows.find((r) => r.id === 'floor')?.addedP50Ms ?? null
    for (const r of rows) {
      if (r.addedP50Ms !== null && floorAdded !== null && floorAdded > 0) r.addedP50VsFloor = ratio(r.addedP50Ms, floorAdded)
    }
  }
  return rows
}

export function formatTable (rows: Row[], loadgen: string, rate: number): string {
  const busy = (r: Row): string => (r.cpuBusyPct[`cpu${PROXY_CPU}`] === undefined ? '-' : `${r.cpuBusyPct[`cpu${PROXY_CPU}`]} %`)
  return (rows.some((r) => r.reqPerSec !== null) ? `saturating (req/s … peak RSS MB): ${loadgen}\n` : '') +
    (rows.some((r) => r.paced !== null) ? `paced (p50 … ÷ floor): open loop at ${rate} req/s, ms from each request's due time; ÷ floor: +p50 vs direct ÷ the floor's\n` : '') +
    table(
      ['scenario', 'req/s', 'vs bare', 'vs floor', 'µs CPU/req', 'CPU-norm vs bare', 'CPU-norm vs floor', 'proxy CPU', `CPU${PROXY_CPU} busy`,
        'peak RSS MB', 'p50 ms', 'p99 ms', 'p99.9 ms', '+p50 vs direct', '÷ floor', 'errors'],
      rows.map((r) => [
        r.label, r.reqPerSec === null ? '-' : String(r.reqPerSec), fmt(r.ratioVsBare), fmt(r.ratioVsFloor),
        fmt(r.proxyCpuUsPerReq, 0), fmt(r.cpuRatioVsBare), fmt(r.cpuRatioVsFloor),
        r.proxyCpuPct === null ? '-' : `${r.proxyCpuPct} %`, busy(r), fmt(r.peakRssMb, 0),
        fmt(r.paced?.p50Ms ?? null), fmt(r.paced?.p99Ms ?? null), fmt(r.paced?.p999Ms ?? null),
        fmt(r.addedP50Ms), fmt(r.addedP50VsFloor),
        String(r.errors + r.non2xx + (r.paced === null ? 0 : r.paced.errors + r.paced.timeouts + r.paced.non2xx)),
      ]))
}

/** Which rounds each row was made of, when steal left some out (null when every row used every round). */
export function roundsNote (rows: Row[]): string | null {
  const parts = rows.flatMap((r) => {
    const sat = r.roundsReqPerSec.length > 0 && r.steadyRounds.length < r.roundsReqPerSec.length ? [`saturating ${r.steadyRounds.length} of ${r.roundsReqPerSec.length}`] : []
    const paced = r.paced !== null && r.paced.steadyRounds.length < r.paced.roundsP99Ms.length ? [`paced ${r.paced.steadyRounds.length} of ${r.paced.roundsP99Ms.length}`] : []
    return sat.length + paced.length === 0 ? [] : [`${r.id} ${[...sat, ...paced].join(', ')}`]
  })
  if (parts.length === 0) return null
  return `rows made of their rounds with steal <= ${STEADY_STEAL_PCT} % (the others left out): ${parts.join('; ')}`
}

/** One of issue 12's targets for one weir scenario, as this run measured it. */
export interface TargetCheck {
  target: string
  scenario: string
  /** The measured ratio (null: a row it needs is missing). */
  value: number | null
  limit: number
  /** 'min': value ≥ limit holds; 'max': value ≤ limit holds. */
  bound: 'min' | 'max'
  holds: boolean | null
}

const TARGET_SCENARIOS = ['weir-user', 'weir-anon', 'weir-cookie']

/**
 * Issue 12's targets ("a lean data path") for each weir scenario in the run: req/s against the
 * bare plugin's and the floor's, CPU per request against the floor's, and at the paced rate the
 * added p50 and the p99 against the floor's. All from the rows as the table shows them.
 */
export function issueTargets (rows: Row[]): TargetCheck[] {
  const floor = rows.find((r) => r.id === 'floor')
  const per = (value: number | null | undefined, base: number | null | undefined): number | null =>
    value == null || base == null || base <= 0 ? null : ratio(value, base)
  const out: TargetCheck[] = []
  for (const r of rows.filter((row) => TARGET_SCENARIOS.includes(row.id))) {
    const check = (target: string, value: number | null, bound: 'min' | 'max', limit: number): void => {
      out.push({ target, scenario: r.id, value, limit, bound, holds: value === null ? null : bound === 'min' ? value >= limit : value <= limit })
    }
    check('req/s ≥ 1.50× the bare plugin\'s', r.ratioVsBare, 'min', 1.5)
    check('req/s ≥ 0.90× the floor\'s', r.ratioVsFloor, 'min', 0.9)
    check('µs CPU per request ≤ 1.15× the floor\'s', per(r.proxyCpuUsPerReq, floor?.proxyCpuUsPerReq), 'max', 1.15)
    check('paced: added p50 ≤ 1.25× the floor\'s', r.addedP50VsFloor, 'max', 1.25)
    check('paced: p99 ≤ 2× the floor\'s', per(r.paced?.p99Ms, floor?.paced?.p99Ms), 'max', 2)
  }
  return out
}

/** The targets as one table: a row per target, a column per weir scenario. */
export function formatTargets (checks: TargetCheck[]): string {
  const scenarios = [...new Set(checks.map((c) => c.scenario))]
  const targets = [...new Set(checks.map((c) => c.target))]
  const cell = (c: TargetCheck | undefined): string =>
    c === undefined || c.holds === null ? '-' : `${c.holds ? 'holds' : 'MISSED'} (${(c.value as number).toFixed(3)})`
  return 'issue 12 targets (ratios of the table above):\n' + table(['target', ...scenarios],
    targets.map((t) => [t, ...scenarios.map((s) => cell(checks.find((c) => c.target === t && c.scenario === s)))]))
}

/** A proxy row within this share of direct's req/s: the load side, not the proxy, may be the ceiling. */
const CEILING_SHARE = 0.85

/** The open-loop sender's timer ticks later than this (p99) mean CPU 1 kept it from its schedule. */
const SENDER_LATE_MS = 5

/** Below this % of CPU 0 (busy + stolen), a saturating run's proxy was not what saturated. */
const SATURATED_PCT = 85

/** What makes the table less trustworthy, one sentence each (empty when nothing does). */
export function checks (rows: Row[], rate: number): string[] {
  const out: string[] = []
  const direct = rows.find((r) => r.id === 'direct')
  const proxies = rows.filter((r) => r.id !== 'direct')
  if (direct?.reqPerSec == null) {
    if (proxies.some((r) => r.reqPerSec !== null)) out.push('no direct row: whether the load generator is the ceiling is not checked (add direct to BENCH_SCENARIOS)')
  } else {
    for (const r of proxies) {
      if (r.reqPerSec !== null && r.reqPerSec >= CEILING_SHARE * direct.reqPerSec) {
        out.push(`${r.id} reached ${Math.round((r.reqPerSec / direct.reqPerSec) * 100)} % of direct's req/s (${r.reqPerSec} vs ${direct.reqPerSec}): ` +
          `within ${Math.round((1 - CEILING_SHARE) * 100)} %, so the load side (generator + upstreams on CPU ${LOAD_CPU}) may be the ceiling, not the proxy`)
      }
    }
    const loadBusy = direct.cpuBusyPct[`cpu${LOAD_CPU}`]
    if (loadBusy !== undefined && loadBusy < 90) {
      out.push(`direct left CPU ${LOAD_CPU} ${100 - loadBusy} % idle (${direct.reqPerSec} req/s): the generator did not saturate its CPU, so direct's figure may be a connection-count or latency limit, not CPU`)
    }
  }
  for (const r of proxies) {
    // Saturating, the proxy should have all of CPU 0 that the hypervisor left it.
    const busy = Math.max(r.proxyCpuPct ?? 0, r.cpuBusyPct[`cpu${PROXY_CPU}`] ?? 0)
    const steal = r.cpuBusyPct[`cpu${PROXY_CPU}steal`] ?? 0
    if (r.reqPerSec !== null && r.proxyCpuPct !== null && busy + steal < SATURATED_PCT) {
      out.push(`${r.id} used ${r.proxyCpuPct} % of CPU ${PROXY_CPU} (${steal} % stolen) while saturating: something else limited it ` +
        `(CPU ${LOAD_CPU}: ${r.cpuBusyPct[`cpu${LOAD_CPU}`] ?? '-'} % busy, ${r.cpuBusyPct[`cpu${LOAD_CPU}steal`] ?? '-'} % stolen), so its req/s understates it`)
    }
  }
  for (const r of rows) {
    const p = r.paced
    if (p === null) continue
    if (p.reqPerSec < 0.98 * rate || p.timeouts > 0 || p.errors > 0) {
      out.push(`${r.id} paced: ${p.reqPerSec} of ${rate} req/s answered (${p.errors} errors, ${p.timeouts} unanswered): it did not keep up, its latencies are of an overload`)
    }
    if (r.id === 'weir-anon' && p.setCookie < p.requests) out.push(`weir-anon paced: only ${p.setCookie} of ${p.requests} answers carried a Set-Cookie`)
  }
  const late = rows.flatMap((r) => (r.paced !== null && r.paced.tickLagP99Ms > SENDER_LATE_MS ? [`${r.id} ${r.paced.tickLagP99Ms} ms`] : []))
  if (late.length > 0) {
    out.push(`the open-loop sender itself was late (p99 of its timer ticks, above ${SENDER_LATE_MS} ms) in: ${late.join(', ')}: ` +
      `that much of those paced tails is the load side's own delay (CPU ${LOAD_CPU} busy or stolen)`)
  }
  // A CPU the hypervisor took more than a few % of makes that run slower than the next one.
  const stolen = rows.flatMap((r) => {
    const runs: [string, Record<string, number>][] = [['saturating', r.cpuBusyPct], ['paced', r.paced?.cpuBusyPct ?? {}]]
    const hits = runs.flatMap(([mode, busy]) => [PROXY_CPU, LOAD_CPU].flatMap((cpu) => {
      const steal = busy[`cpu${cpu}steal`] ?? 0
      return steal > STEADY_STEAL_PCT ? [`${mode} CPU ${cpu} ${steal} %`] : []
    }))
    return hits.length === 0 ? [] : [`${r.id} (${hits.join(', ')})`]
  })
  if (stolen.length > 0) {
    out.push(`the hypervisor stole more than ${STEADY_STEAL_PCT} % of a CPU in: ${stolen.join('; ')}: those figures are low and noisy, ` +
      'rerun on a quieter machine or with BENCH_ROUNDS=3')
  }
  return out
}
