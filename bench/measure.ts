// One measured load run of bench/run.ts, whatever the generator (autocannon, wrk, the open-loop
// sender): the proxy's and upstreams' CPU and each CPU's busy / steal %, sampled from /proc the
// moment the generator reports the start and the end of its measured run, so over that run alone.

import { busyStealPct, cpuTicks, processTicks, TICK_MS, type Ticks } from './cpu-ticks.ts'

/** `monoUs` is CLOCK_MONOTONIC in µs, the clock of V8's profile timestamps. */
interface CpuSample { at: number; monoUs: number; procs: number[]; cpus: Ticks[] }

export interface CpuFigures {
  proxyCpuPct: number | null
  /** CPU time (all threads) the proxy used over the measured run. */
  proxyCpuMs: number | null
  upstreamCpuPct: number
  /** Busy % per CPU ("cpu0") and % stolen by the hypervisor ("cpu0steal") over the measured run. */
  cpuBusyPct: Record<string, number>
  /** The measured run, in CLOCK_MONOTONIC µs. */
  window: { fromUs: number; toUs: number } | null
}

/** What every generator reports. */
export interface GeneratorResult { requests: number; durationSec: number; loadCpuMs: number }

export type Measured<R extends GeneratorResult> = R & CpuFigures

/** Starts a generator; it calls `on.start` / `on.result` when its measured run starts / ends. */
export type Generator<R extends GeneratorResult> = (on: { start: () => void; result: () => void }) => Promise<R>

function sampleCpu (pids: (number | undefined)[]): CpuSample {
  return { at: performance.now(), monoUs: Number(process.hrtime.bigint() / 1000n), procs: pids.map(processTicks), cpus: cpuTicks() }
}

function cpuPercents (a: CpuSample, b: CpuSample): { procs: number[]; procMs: number[]; cpus: Record<string, number> } {
  const wallMs = b.at - a.at
  const procMs = a.procs.map((t, i) => ((b.procs[i] ?? 0) - t) * TICK_MS)
  const procs = procMs.map((ms) => Math.round((ms / wallMs) * 100))
  const cpusOut: Record<string, number> = {}
  b.cpus.forEach((after, i) => {
    const shares = busyStealPct(a.cpus[i], after)
    if (shares === null) return
    cpusOut[`cpu${i}`] = shares[0]
    cpusOut[`cpu${i}steal`] = shares[1]
  })
  return { procs, procMs, cpus: cpusOut }
}

/** Runs `generator`, sampling CPU counters of the proxy (if any) and the upstreams over its measured run. */
export async function measured<R extends GeneratorResult> (generator: Generator<R>, proxyPid: number | undefined, upstreamPids: (number | undefined)[]): Promise<Measured<R>> {
  const pids = [proxyPid, ...upstreamPids]
  let before: CpuSample | null = null
  let after: CpuSample | null = null
  const result = await generator({
    start: () => { before = sampleCpu(pids) },
    result: () => { after = sampleCpu(pids) },
  })
  const [a, b] = [before as CpuSample | null, after as CpuSample | null]
  const cpu = a !== null && b !== null ? cpuPercents(a, b) : { procs: [], procMs: [], cpus: {} }
  return {
    ...result,
    window: a !== null && b !== null ? { fromUs: a.monoUs, toUs: b.monoUs } : null,
    proxyCpuPct: proxyPid === undefined ? null : cpu.procs[0] ?? null,
    proxyCpuMs: proxyPid === undefined ? null : cpu.procMs[0] ?? null,
    upstreamCpuPct: cpu.procs.slice(1).reduce((x, y) => x + y, 0),
    cpuBusyPct: cpu.cpus,
  }
}

/** Proxy CPU µs per request of one run (null without a proxy or without requests). */
export const usPerRequest = (m: CpuFigures & GeneratorResult): number | null =>
  (m.proxyCpuMs === null || m.requests === 0 ? null : (m.proxyCpuMs * 1000) / m.requests)
