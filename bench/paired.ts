// Paired comparisons of bench/run.ts: two scenarios that ran in the same rounds, compared round
// by round (req/s and proxy CPU per request): what request metrics cost (weir-user against
// weir-norecord), what the access log costs (weir-accesslog against weir-user) and this
// checkout against another one (weir-user against weir-baseline).

import { PROXY_CPU, LOAD_CPU } from './children.ts'
import type { LoadResult } from './load.ts'
import { usPerRequest, type Measured } from './measure.ts'
import { medianOf } from './median.ts'
import { ratio } from './table.ts'

type Saturating = Measured<LoadResult>
type Runs = ReadonlyMap<string, Saturating[]>

export const round1 = (n: number | null): number | null => (n === null ? null : Math.round(n * 10) / 10)

/** Hypervisor steal (% of a CPU) above which a round is too disturbed to compare two runs a few % apart. */
export const STEADY_STEAL_PCT = 10

/** The most the hypervisor stole of either CPU (%) during a run. */
export const stealOf = (m: { cpuBusyPct: Record<string, number> }): number =>
  Math.max(m.cpuBusyPct[`cpu${PROXY_CPU}steal`] ?? 0, m.cpuBusyPct[`cpu${LOAD_CPU}steal`] ?? 0)

/** Two scenarios compared round by round (each round ran both): a's figures ÷ b's. */
interface Pairing {
  rounds: number
  /** Per round, a's req/s ÷ b's. */
  roundRatios: number[]
  reqPerSecRatio: number
  /** Rounds (0-based) in which neither run lost more than STEADY_STEAL_PCT of a CPU to the hypervisor, and their median ratio. */
  steadyRounds: number[]
  steadyReqPerSecRatio: number | null
  /** Per round, a's µs CPU per request ÷ b's. */
  roundCpuRatios: (number | null)[]
  /** a's and b's median µs CPU per request over the rounds. */
  usPerReq: [number | null, number | null]
}

function pairing (runs: Runs, a: string, b: string): Pairing | null {
  const on = runs.get(a) ?? []
  const off = runs.get(b) ?? []
  const rounds = Math.min(on.length, off.length)
  if (rounds === 0) return null
  const both = Array.from({ length: rounds }, (_, i) => [on[i], off[i]] as [Saturating, Saturating])
  const roundRatios = both.map(([x, y]) => ratio(x.reqPerSec, y.reqPerSec) ?? 0)
  const cost = (list: Saturating[]): number | null => medianOf(list.flatMap((m) => usPerRequest(m) ?? []), (c) => c) ?? null
  const steadyRounds = both.flatMap(([x, y], i) => (stealOf(x) <= STEADY_STEAL_PCT && stealOf(y) <= STEADY_STEAL_PCT ? [i] : []))
  return {
    rounds,
    roundRatios,
    reqPerSecRatio: medianOf(roundRatios, (r) => r) ?? 0,
    steadyRounds,
    steadyReqPerSecRatio: medianOf(steadyRounds.map((i) => roundRatios[i] as number), (r) => r) ?? null,
    roundCpuRatios: both.map(([x, y]) => {
      const [cx, cy] = [usPerRequest(x), usPerRequest(y)]
      return cx === null || cy === null ? null : ratio(cx, cy)
    }),
    usPerReq: [cost(on), cost(off)],
  }
}

/** The req/s figures both comparisons report, as the pairing measured them. */
type ReqPerSecRounds = Pick<Pairing, 'rounds' | 'roundRatios' | 'reqPerSecRatio' | 'steadyRounds' | 'steadyReqPerSecRatio'>

function reqPerSecRounds (p: Pairing): ReqPerSecRounds {
  return { rounds: p.rounds, roundRatios: p.roundRatios, reqPerSecRatio: p.reqPerSecRatio, steadyRounds: p.steadyRounds, steadyReqPerSecRatio: p.steadyReqPerSecRatio }
}

/** roundRatios: per round, weir-user req/s ÷ weir-norecord req/s (the two ran in the same round). */
export interface RecordingCost extends ReqPerSecRounds {
  /** weir-norecord's median µs CPU per request ÷ weir-user's: requests per proxy CPU-second, relative. */
  cpuRatio: number | null
  usPerReq: { record: number | null; norecord: number | null }
}

/** What per-request recording costs: weir-user (recording) against weir-norecord, round by round. */
export function recordingCost (runs: Runs): RecordingCost | null {
  const p = pairing(runs, 'weir-user', 'weir-norecord')
  if (p === null) return null
  const [record, norecord] = p.usPerReq
  return {
    ...reqPerSecRounds(p),
    cpuRatio: record === null || norecord === null ? null : ratio(norecord, record),
    usPerReq: { record: round1(record), norecord: round1(norecord) },
  }
}

/** a against b, round by round: req/s, and µs CPU per request as a ratio per round and the median of those. */
interface CpuPerRequestRounds extends ReqPerSecRounds {
  /** Per round, a's µs CPU per request ÷ b's, and their median. */
  roundCpuPerReqRatios: (number | null)[]
  cpuPerReqRatio: number | null
}

function cpuPerRequestRounds (runs: Runs, a: string, b: string): { rounds: CpuPerRequestRounds; usPerReq: [number | null, number | null] } | null {
  const p = pairing(runs, a, b)
  if (p === null) return null
  return {
    rounds: {
      ...reqPerSecRounds(p),
      roundCpuPerReqRatios: p.roundCpuRatios,
      cpuPerReqRatio: medianOf(p.roundCpuRatios.flatMap((r) => r ?? []), (r) => r) ?? null,
    },
    usPerReq: [round1(p.usPerReq[0]), round1(p.usPerReq[1])],
  }
}

/** roundRatios: per round, weir-user req/s ÷ weir-baseline req/s (above 1: this checkout is faster); CPU ratios below 1: it spends less. */
export interface BaselineComparison extends CpuPerRequestRounds {
  usPerReq: { user: number | null; baseline: number | null }
}

/** This checkout's weir against the baseline checkout's, same config and load, round by round. */
export function baselineComparison (runs: Runs): BaselineComparison | null {
  const c = cpuPerRequestRounds(runs, 'weir-user', 'weir-baseline')
  return c === null ? null : { ...c.rounds, usPerReq: { user: c.usPerReq[0], baseline: c.usPerReq[1] } }
}

/** roundRatios: per round, weir-accesslog req/s ÷ weir-user req/s (below 1: the log costs throughput); CPU ratios above 1: it costs CPU. */
export interface AccessLogCost extends CpuPerRequestRounds {
  usPerReq: { on: number | null; off: number | null }
}

/** What `accessLog: on` (lines to a file) costs per request: weir-accesslog against weir-user, round by round. */
export function accessLogCost (runs: Runs): AccessLogCost | null {
  const c = cpuPerRequestRounds(runs, 'weir-accesslog', 'weir-user')
  return c === null ? null : { ...c.rounds, usPerReq: { on: c.usPerReq[0], off: c.usPerReq[1] } }
}
