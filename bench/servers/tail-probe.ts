// What stalls a proxy's event loop during a measured run, seen from inside the process: loaded
// with `node --import ./bench/servers/tail-probe.ts <proxy>` (BENCH_TAIL=1 in bench/run.ts). It
// keeps an event-loop delay histogram (perf_hooks.monitorEventLoopDelay, 1 ms resolution), every
// garbage collection (a PerformanceObserver on 'gc'), and every stall of the loop of 5 ms or more
// with the CPU time the main thread got in it (a 1 ms interval reading process.threadCpuUsage):
// a stall the thread spent running is the process's own work, one it did not was the OS or the
// hypervisor running something else. The first SIGUSR2 starts the window, the second writes the
// window's figures as JSON to $WEIR_TAIL_PROBE_OUT.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { constants, monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks'

export interface GcKindFigures { count: number; totalMs: number; maxMs: number }

export interface TailProbeResult {
  windowMs: number
  /** ms by which the event loop's 1 ms timer came late: how long the loop was busy in one go. */
  loopDelay: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number; samples: number }
  /** Every collection in the window by kind (minor: scavenge; major: mark-compact; incremental: a mark step). */
  gc: Record<'minor' | 'major' | 'incremental' | 'weakcb', GcKindFigures>
  /** Collections of at least 2 ms, and their total: the pauses a request can feel. */
  gcPausesOver2Ms: number
  gcPauseMsOver2Ms: number
  /** The longest pauses with their start in ms into the window, longest first (at most 10). */
  longestGcs: { atMs: number; ms: number; kind: string }[]
  /** Gaps of ≥ STALL_MS between two ticks of a 1 ms interval, what the main thread ran in them and the GC time inside them. */
  stalls: { count: number; totalMs: number; onCpuMs: number; gcMs: number; longest: Stall[] }
  /** The main thread's time runnable but waiting for a CPU (/proc/thread-self/schedstat). */
  runQueueWaitMs: number | null
  /** CPU ms each of the process's threads ran in the window, by thread name (the main thread is the process's name), largest first. */
  threadsCpuMs: Record<string, number>
  heapUsedMb: number
}

export interface Stall { atMs: number; ms: number; onCpuMs: number; gcMs: number }

/** A gap between two 1 ms ticks that counts as a stall. */
const STALL_MS = 5

const out = process.env.WEIR_TAIL_PROBE_OUT
if (out === undefined || out === '') throw new Error('tail-probe: set WEIR_TAIL_PROBE_OUT to the file the figures go to')

const KINDS: Record<number, keyof TailProbeResult['gc']> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
}

const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
let gcs: { at: number; ms: number; kind: keyof TailProbeResult['gc'] }[] = []
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = KINDS[((entry as { detail?: { kind?: number } }).detail?.kind) ?? -1] ?? 'weakcb'
    gcs.push({ at: entry.startTime, ms: entry.duration, kind })
  }
}).observe({ entryTypes: ['gc'] })

// The stall recorder: a gap between ticks, and the main thread's CPU time over it.
let lastTick = performance.now()
let lastCpuUs = threadCpuUs()
let stalls: { at: number; ms: number; onCpuMs: number }[] = []
setInterval(() => {
  const now = performance.now()
  const cpu = threadCpuUs()
  if (now - lastTick >= STALL_MS) stalls.push({ at: lastTick, ms: now - lastTick, onCpuMs: (cpu - lastCpuUs) / 1000 })
  lastTick = now
  lastCpuUs = cpu
}, 1).unref()

let startedAt: number | null = null
let waitAtStart: number | null = null
let threadsAtStart = new Map<string, { name: string; ns: number }>()
/** A histogram value as ms of delay: the histogram records the time between ticks, and its 1 ms period is not delay. */
const delayMs = (ns: number): number => round(ns / 1e6 - 1)

process.on('SIGUSR2', () => {
  if (startedAt === null) {
    startedAt = performance.now()
    delay.reset()
    gcs = []
    stalls = []
    waitAtStart = runQueueWaitNs()
    threadsAtStart = threadsCpuNs()
    return
  }
  const from = startedAt
  const inWindow = gcs.filter((g) => g.at >= from)
  const gc: TailProbeResult['gc'] = { minor: zero(), major: zero(), incremental: zero(), weakcb: zero() }
  for (const g of inWindow) {
    const k = gc[g.kind]
    k.count++
    k.totalMs += g.ms
    k.maxMs = Math.max(k.maxMs, g.ms)
  }
  for (const k of Object.values(gc)) {
    k.totalMs = round(k.totalMs)
    k.maxMs = round(k.maxMs)
  }
  const long = inWindow.filter((g) => g.ms >= 2)
  const gcIn = (from: number, to: number): number => inWindow.reduce((sum, g) => sum + Math.max(0, Math.min(to, g.at + g.ms) - Math.max(from, g.at)), 0)
  const seen: Stall[] = stalls.filter((x) => x.at >= from).map((x) => ({ atMs: Math.round(x.at - from), ms: round(x.ms), onCpuMs: round(x.onCpuMs), gcMs: round(gcIn(x.at, x.at + x.ms)) }))
  const waitNow = runQueueWaitNs()
  const threadsMs: Record<string, number> = {}
  for (const [tid, now] of threadsCpuNs()) {
    const ms = (now.ns - (threadsAtStart.get(tid)?.ns ?? 0)) / 1e6
    if (ms >= 0.5) threadsMs[now.name] = round((threadsMs[now.name] ?? 0) + ms)
  }
  const result: TailProbeResult = {
    windowMs: Math.round(performance.now() - from),
    loopDelay: {
      p50: delayMs(delay.percentile(50)),
      p90: delayMs(delay.percentile(90)),
      p99: delayMs(delay.percentile(99)),
      p999: delayMs(delay.percentile(99.9)),
      max: delayMs(delay.max),
      mean: delayMs(delay.mean),
      samples: delay.count,
    },
    gc,
    gcPausesOver2Ms: long.length,
    gcPauseMsOver2Ms: round(long.reduce((sum, g) => sum + g.ms, 0)),
    longestGcs: [...inWindow].sort((a, b) => b.ms - a.ms).slice(0, 10).map((g) => ({ atMs: Math.round(g.at - from), ms: round(g.ms), kind: g.kind })),
    stalls: {
      count: seen.length,
      totalMs: round(seen.reduce((sum, x) => sum + x.ms, 0)),
      onCpuMs: round(seen.reduce((sum, x) => sum + x.onCpuMs, 0)),
      gcMs: round(seen.reduce((sum, x) => sum + x.gcMs, 0)),
      longest: [...seen].sort((a, b) => b.ms - a.ms).slice(0, 10),
    },
    runQueueWaitMs: waitAtStart === null || waitNow === null ? null : round((waitNow - waitAtStart) / 1e6),
    threadsCpuMs: Object.fromEntries(Object.entries(threadsMs).sort((a, b) => b[1] - a[1])),
    heapUsedMb: Math.round(process.memoryUsage().heapUsed / 1e5) / 10,
  }
  writeFileSync(out, JSON.stringify(result) + '\n')
  startedAt = null
  waitAtStart = null
})

function threadCpuUs (): number {
  const { user, system } = process.threadCpuUsage()
  return user + system
}

/** ns the calling thread has spent runnable but waiting for a CPU (Linux), or null. */
function runQueueWaitNs (): number | null {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1])
  } catch {
    return null
  }
}

/** Each thread's name and on-CPU ns, by thread id (Linux; empty elsewhere). */
function threadsCpuNs (): Map<string, { name: string; ns: number }> {
  const out = new Map<string, { name: string; ns: number }>()
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
        out.set(tid, { name, ns: Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) })
      } catch { /* the thread ended */ }
    }
  } catch { /* not Linux */ }
  return out
}

function zero (): GcKindFigures {
  return { count: 0, totalMs: 0, maxMs: 0 }
}

function round (x: number): number {
  return Math.round(x * 100) / 100
}
