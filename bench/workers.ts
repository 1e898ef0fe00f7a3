// `npm run bench:workers`: weir with one process against weir with two workers, connections
// handed out by the primary (node:cluster round-robin, the default) and spread by the kernel
// (SO_REUSEPORT). Every weir process is pinned to PROXY_CPU, wrk and the upstreams to LOAD_CPU:
// on a 2-core machine that compares the cost of a request, not the speed-up (there is no third
// core to give the second worker). Per scenario and round: req/s, CPU µs per request summed
// over the primary and every worker, how wrk's 50 connections and the requests spread over the
// workers, and peak RSS per process. Results: bench/results/workers-latest.json.

import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ensureDebianPackage } from './debian.ts'
import { LOAD_CPU, PROXY_CPU, ROOT, runBench, safeExec, sleep, startChild, stopChild, waitForPort, type Child } from './children.ts'
import { busyStealPct, cpuTicks, processTicks, statusKb, TICK_MS, type Ticks } from './cpu-ticks.ts'
import { codeVersion, commandLine, machine } from './machine.ts'
import { median } from './median.ts'
import { fmt, ratio, table } from './table.ts'
import { setting } from './settings.ts'
import { writeWeirConfig } from './weir-config.ts'
import { runWrk, WRK } from './wrk-load.ts'

const { values: flags } = parseArgs({
  options: { duration: { type: 'string' }, warmup: { type: 'string' }, rounds: { type: 'string' }, connections: { type: 'string' }, help: { type: 'boolean' } },
})
if (flags.help === true) {
  process.stdout.write('usage: npm run bench:workers [-- --duration S --warmup S --rounds N --connections N]\n' +
    '  (or BENCH_DURATION, BENCH_WARMUP, BENCH_ROUNDS, BENCH_CONNECTIONS)\n')
  process.exit(0)
}
const settings = {
  duration: setting(flags.duration, 'BENCH_DURATION', 10),
  warmup: setting(flags.warmup, 'BENCH_WARMUP', 3),
  rounds: setting(flags.rounds, 'BENCH_ROUNDS', 3),
  connections: setting(flags.connections, 'BENCH_CONNECTIONS', 50),
}

const TMP = '/tmp/weir-bench-workers'
const PORTS = { weir: 18080, admin: 19901, stable: 18081, canary: 18082 }

type ScenarioId = 'one-process' | 'two-workers' | 'two-workers-kernel'
const SCENARIOS: Record<ScenarioId, { workers: number; entry: (config: string) => string[]; label: string }> = {
  'one-process': { workers: 1, entry: (c) => ['bin/weir.js', 'serve', '--config', c], label: 'workers: 1 (one process)' },
  'two-workers': { workers: 2, entry: (c) => ['bin/weir.js', 'serve', '--config', c], label: 'workers: 2, round-robin by the primary' },
  'two-workers-kernel': { workers: 2, entry: (c) => ['bench/servers/weir-kernel.ts', c], label: 'workers: 2, SO_REUSEPORT (kernel)' },
}

interface Round {
  reqPerSec: number
  requests: number
  /** CPU µs per request over the primary and its workers. */
  cpuUsPerRequest: number
  /** CPU µs per request of the primary alone. */
  primaryUsPerRequest: number
  wrkCpuPct: number
  /** Established client connections per worker (by pid order of slots), read during the run. */
  connections: number[]
  /** Requests per worker slot over the run (weir_worker_requests_total deltas). */
  requestsPerWorker: number[]
  peakRssMb: number[]
  errors: number
  /** % of each CPU's time stolen by the hypervisor over the run: a noisy neighbour makes a round untrustworthy. */
  stealPct: number[]
}

interface WorkerView { worker: number; pid: number | null; requests: number }

async function workers (): Promise<WorkerView[]> {
  const reply = await fetch(`http://127.0.0.1:${PORTS.admin}/api/v1/workers`)
  return ((await reply.json()) as { workers: WorkerView[] }).workers
}

/** Established connections on the proxy port, by the pid that owns each (ss -p). */
function connectionsByPid (): Map<number, number> {
  const out = new Map<number, number>()
  const lines = safeExec('ss', ['-Htnp', 'state', 'established', `( sport = :${PORTS.weir} )`]).split('\n')
  for (const line of lines) {
    const pid = /pid=(\d+)/.exec(line)?.[1]
    if (pid !== undefined) out.set(Number(pid), (out.get(Number(pid)) ?? 0) + 1)
  }
  return out
}

async function measureScenario (id: ScenarioId, script: string): Promise<Round> {
  const scenario = SCENARIOS[id]
  const config = writeWeirConfig({
    writer: `bench/workers.ts (${id})`,
    file: `${TMP}/${id}.yaml`,
    stateFile: `${TMP}/state-${id}.json`,
    ports: { weir: PORTS.weir, admin: PORTS.admin },
    route: 'shop',
    upstreams: { stable: `http://127.0.0.1:${PORTS.stable}`, canary: `http://127.0.0.1:${PORTS.canary}` },
    weights: { stable: 90, canary: 10 },
    workers: scenario.workers,
  })
  const weir = startChild(id, PROXY_CPU, scenario.entry(config))
  try {
    await waitForPort(weir, PORTS.weir)
    await waitForPort(weir, PORTS.admin)
    await sleep(500)
    const primary = weir.proc.pid as number
    const before = scenario.workers > 1 ? await workers() : []
    const pids = [primary, ...before.map((w) => w.pid as number)]
    const spec = { url: `http://127.0.0.1:${PORTS.weir}/`, connections: settings.connections, pipelining: 1, duration: settings.warmup, mode: 'user-id' as const, userIds: 10_000 }
    await runWrk(spec, script, LOAD_CPU)
    let ticksBefore: number[] = []
    let ticksAfter: number[] = []
    let cpusBefore: Ticks[] = []
    let cpusAfter: Ticks[] = []
    let connections = new Map<number, number>()
    const started = { at: 0 }
    const result = await runWrk({ ...spec, duration: settings.duration }, script, LOAD_CPU, {
      start: () => {
        ticksBefore = pids.map(processTicks)
        cpusBefore = cpuTicks()
        started.at = performance.now()
        // Mid-run, every connection wrk keeps is open.
        setTimeout(() => { connections = connectionsByPid() }, 1000)
      },
      result: () => {
        ticksAfter = pids.map(processTicks)
        cpusAfter = cpuTicks()
      },
    })
    const after = scenario.workers > 1 ? await workers() : []
    const cpuMs = ticksAfter.map((t, i) => (t - (ticksBefore[i] ?? 0)) * TICK_MS)
    const total = cpuMs.reduce((a, b) => a + b, 0)
    return {
      reqPerSec: result.reqPerSec,
      requests: result.requests,
      cpuUsPerRequest: (total * 1000) / result.requests,
      primaryUsPerRequest: ((cpuMs[0] ?? 0) * 1000) / result.requests,
      wrkCpuPct: Math.round((result.loadCpuMs / (result.durationSec * 1000)) * 100),
      connections: scenario.workers > 1 ? before.map((w) => connections.get(w.pid as number) ?? 0) : [connections.get(primary) ?? 0],
      requestsPerWorker: after.map((w, i) => w.requests - (before[i]?.requests ?? 0)),
      peakRssMb: pids.map((pid) => Math.round((statusKb(pid, 'VmHWM') ?? 0) / 1024)),
      errors: result.errors + result.non2xx,
      stealPct: cpusAfter.map((after, i) => busyStealPct(cpusBefore[i], after)?.[1] ?? 0),
    }
  } finally {
    await stopChild(weir)
  }
}

/** Largest deviation from an even share, in percent of the even share. */
function spread (counts: readonly number[]): number | null {
  if (counts.length < 2) return null
  const sum = counts.reduce((a, b) => a + b, 0)
  if (sum === 0) return null
  const even = sum / counts.length
  return Math.round((Math.max(...counts.map((c) => Math.abs(c - even))) / even) * 1000) / 10
}

async function main (): Promise<void> {
  mkdirSync(TMP, { recursive: true })
  const wrk = ensureDebianPackage(WRK, ['wrk'], (line) => process.stdout.write(line + '\n'))
  if (!wrk.ok) throw new Error(`wrk is needed: ${wrk.why}`)
  const upstreams: Child[] = [
    startChild('stable', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.stable), 'stable']),
    startChild('canary', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.canary), 'canary']),
  ]
  await waitForPort(upstreams[0] as Child, PORTS.stable)
  await waitForPort(upstreams[1] as Child, PORTS.canary)
  // One wrk script for every scenario: the user-id load of bench/run.ts.
  const script = `${TMP}/wrk-user-id.lua`
  const ids = Object.keys(SCENARIOS) as ScenarioId[]
  const rounds: Record<ScenarioId, Round[]> = { 'one-process': [], 'two-workers': [], 'two-workers-kernel': [] }
  process.stdout.write(`weir workers bench: ${settings.rounds} round(s) of ${settings.duration} s (after ${settings.warmup} s warm-up), wrk -c${settings.connections}, weir pinned to CPU ${PROXY_CPU}\n`)
  for (let round = 0; round < settings.rounds; round++) {
    // Rotated order: slow drifts of the shared machine spread over every scenario.
    for (const id of [...ids.slice(round % ids.length), ...ids.slice(0, round % ids.length)]) {
      const r = await measureScenario(id, script)
      rounds[id].push(r)
      process.stdout.write(`  round ${round + 1} ${id}: ${Math.round(r.reqPerSec)} req/s, ${r.cpuUsPerRequest.toFixed(1)} µs CPU/request, connections ${r.connections.join('/')}, requests ${r.requestsPerWorker.join('/') || '-'}, steal ${r.stealPct.join('/')} %\n`)
    }
  }
  for (const u of upstreams) await stopChild(u)

  const summary = ids.map((id) => {
    const rs = rounds[id]
    return {
      id,
      label: SCENARIOS[id].label,
      reqPerSec: median(rs.map((r) => r.reqPerSec)) ?? 0,
      cpuUsPerRequest: median(rs.map((r) => r.cpuUsPerRequest)) ?? 0,
      primaryUsPerRequest: median(rs.map((r) => r.primaryUsPerRequest)) ?? 0,
      connectionSpreadPct: median(rs.map((r) => spread(r.connections) ?? 0)),
      worstConnectionSpreadPct: Math.max(...rs.map((r) => spread(r.connections) ?? 0)),
      requestSpreadPct: median(rs.map((r) => spread(r.requestsPerWorker) ?? 0)),
      peakRssMb: rs.at(-1)?.peakRssMb ?? [],
      wrkCpuPct: median(rs.map((r) => r.wrkCpuPct)) ?? 0,
      errors: rs.reduce((a, r) => a + r.errors, 0),
    }
  })
  const one = summary[0]
  const rows = summary.map((s) => [
    s.label, String(Math.round(s.reqPerSec)), fmt(s.cpuUsPerRequest, 1), fmt(ratio(s.cpuUsPerRequest, one?.cpuUsPerRequest), 2),
    fmt(s.primaryUsPerRequest, 2), s.id === 'one-process' ? '-' : `${fmt(s.connectionSpreadPct, 1)} (worst ${fmt(s.worstConnectionSpreadPct, 1)})`,
    s.id === 'one-process' ? '-' : fmt(s.requestSpreadPct, 1), s.peakRssMb.join(' + '), `${s.wrkCpuPct} %`, String(s.errors),
  ])
  process.stdout.write('\n' + table(['scenario', 'req/s', 'CPU µs/req', 'vs 1 process', 'primary µs/req', 'conn. spread ±%', 'req. spread ±%', 'peak RSS MB', 'wrk CPU', 'errors'], rows) + '\n')
  const perCore = one === undefined ? 0 : 1e6 / one.cpuUsPerRequest
  process.stdout.write(`\nOn paper: one core does ≈ ${Math.round(perCore)} req/s of this load at the measured cost; 16 workers on 16 cores ≈ ${Math.round(perCore * 16 / 1000)}k req/s ` +
    'if nothing else were shared (the kernel\'s network stack, the load balancer in front, the upstreams are).\n')
  mkdirSync(`${ROOT}bench/results`, { recursive: true })
  writeFileSync(`${ROOT}bench/results/workers-latest.json`, JSON.stringify({
    command: commandLine('npm run bench:workers'), machine: machine(), code: codeVersion(), settings, summary, rounds,
  }, null, 2) + '\n')
  process.stdout.write('wrote bench/results/workers-latest.json\n')
}

runBench('bench:workers', main)
