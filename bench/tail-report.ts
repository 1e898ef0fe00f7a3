// BENCH_TAIL's runs (bench/run.ts): a paced run of each Node proxy with bench/servers/tail-probe.ts
// loaded, and the lines that put what the client saw (latency from due time) beside what the
// proxy's own event loop and garbage collector did over the same window.

import { PROXY_CPU } from './children.ts'
import type { Paced } from './run-report.ts'
import type { TailProbeResult } from './servers/tail-probe.ts'

/** The scenarios whose proxy is a Node process the probe can be loaded into. */
export const TAIL_SCENARIOS = ['bare', 'floor', 'weir-user', 'weir-anon', 'weir-cookie'] as const
export type TailScenario = typeof TAIL_SCENARIOS[number]

/** How the probe is loaded: node arguments, and the environment naming its output file. */
export interface TailProbe { nodeArgs: string[]; env: Record<string, string> }

export interface TailRun { id: TailScenario; label: string; paced: Paced; probe: TailProbeResult }

export function formatTailRun (run: TailRun): string {
  const { paced: p, probe: q } = run
  const d = q.loopDelay
  const gc = (k: keyof TailProbeResult['gc']): string => `${q.gc[k].count} × ${k} ${q.gc[k].totalMs} ms (max ${q.gc[k].maxMs})`
  const steal = Math.max(p.cpuBusyPct.cpu0steal ?? 0, p.cpuBusyPct.cpu1steal ?? 0)
  return `  ${run.label}\n` +
    `    client (from due time): p50 ${p.latencyP50} p99 ${p.latencyP99} p99.9 ${p.latencyP999} max ${p.latencyMax} ms at ${p.reqPerSec} req/s; sender late p99 ${p.tickLagP99} ms; ` +
    `proxy CPU ${p.proxyCpuPct ?? '-'} %, steal ${steal} %\n` +
    `    event-loop delay: p50 ${d.p50} p99 ${d.p99} p99.9 ${d.p999} max ${d.max} ms (${d.samples} samples over ${q.windowMs} ms)\n` +
    `    GC: ${gc('minor')}, ${gc('major')}, ${gc('incremental')}; ${q.gcPausesOver2Ms} pauses ≥ 2 ms (${q.gcPauseMsOver2Ms} ms); ` +
    `longest ${q.longestGcs.slice(0, 3).map((g) => `${g.ms} ms ${g.kind} at ${g.atMs} ms`).join(', ') || '-'}; heap used ${q.heapUsedMb} MB\n` +
    `    stalls ≥ 5 ms: ${q.stalls.count}, ${q.stalls.totalMs} ms in all, of which the main thread ran ${q.stalls.onCpuMs} ms and GC ${q.stalls.gcMs} ms; ` +
    `longest ${q.stalls.longest.slice(0, 3).map((x) => `${x.ms} ms (ran ${x.onCpuMs}, GC ${x.gcMs})`).join(', ') || '-'}\n` +
    `    main thread runnable but waiting for its CPU ${q.runQueueWaitMs ?? '-'} ms (CPU ${PROXY_CPU} busy ${p.cpuBusyPct[`cpu${PROXY_CPU}`] ?? '-'} %); CPU ms by thread ${JSON.stringify(q.threadsCpuMs)}`
}
