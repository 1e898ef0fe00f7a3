// `npm run bench`: measures the same upstream hit directly, through a bare @fastify/http-proxy,
// through a hand-written undici proxy (the Node floor) and through weir (user-id and cookie
// routing, user-id without per-request metrics to price them, and optionally another checkout's
// weir as a baseline), each proxy alone on CPU 0; prints a table, writes bench/results/latest.json.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { LOAD_CPU, pinned, portOpen, PROXY_CPU, ROOT, runBench, startChild, startLoad, stopChild, waitForPort, type Child } from './children.ts'
import { busyStealPct, cpuTicks, processTicks, TICK_MS, type Ticks } from './cpu-ticks.ts'
import { makeUserIds, type LoadResult, type LoadSpec } from './load.ts'
import { codeVersion, commandLine, machine } from './machine.ts'
import { medianOf } from './median.ts'
import { compareProfiles, formatComparison, formatProfile, summarizeProfile, type CpuProfile, type ProfileComparison, type ProfileSummary } from './profile.ts'
import { scenarioSetting, setting } from './settings.ts'
import { fmt, ratio, table } from './table.ts'
import { writeWeirConfig } from './weir-config.ts'

const TMP = '/tmp/weir-bench'

const PORTS = { stable: 18081, canary: 18082, weir: 18080, admin: 19901, bare: 18090, floor: 18091 }

// ---- settings: flags win over env vars, env vars over defaults ----------------------------

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    pipelining: { type: 'string' },
    'user-ids': { type: 'string' },
    rounds: { type: 'string' },
    scenarios: { type: 'string' },
    baseline: { type: 'string' },
    profile: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (flags.help === true) {
  process.stdout.write(`usage: npm run bench [-- --duration S --warmup S --connections N --pipelining N --user-ids N --rounds N --scenarios a,b --baseline PATH --profile]
env: BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_CONNECTIONS (50), BENCH_PIPELINING (1), BENCH_USER_IDS (10000),
     BENCH_ROUNDS (1; >1 repeats every scenario in rotated order and reports the median round),
     BENCH_SCENARIOS (direct,bare,floor,weir-user,weir-cookie,weir-norecord), BENCH_PROFILE=1 (adds --cpu-prof runs of the bare plugin and weir),
     BENCH_BASELINE=PATH (adds weir-baseline: weir-user's config and load against PATH/bin/weir.js, another weir checkout)
`)
  process.exit(0)
}

const settings = {
  duration: setting(flags.duration, 'BENCH_DURATION', 10),
  warmup: setting(flags.warmup, 'BENCH_WARMUP', 2),
  connections: setting(flags.connections, 'BENCH_CONNECTIONS', 50),
  pipelining: setting(flags.pipelining, 'BENCH_PIPELINING', 1),
  userIds: setting(flags['user-ids'], 'BENCH_USER_IDS', 10_000),
  rounds: setting(flags.rounds, 'BENCH_ROUNDS', 1),
}
const profile = flags.profile === true || process.env.BENCH_PROFILE === '1'

type ScenarioId = 'direct' | 'bare' | 'floor' | 'weir-user' | 'weir-baseline' | 'weir-cookie' | 'weir-norecord'
const ALL_SCENARIOS: readonly ScenarioId[] = ['direct', 'bare', 'floor', 'weir-user', 'weir-baseline', 'weir-cookie', 'weir-norecord']
const LABELS: Record<ScenarioId, string> = {
  direct: 'direct (no proxy)',
  bare: 'bare @fastify/http-proxy',
  floor: 'undici floor (node:http + Pool)',
  'weir-user': 'weir, x-user-id routing',
  'weir-baseline': 'weir baseline, x-user-id routing',
  'weir-cookie': 'weir, bucket cookie routing',
  'weir-norecord': 'weir, x-user-id, no request metrics',
}

/** Another weir checkout (with its own node_modules) to run as `weir-baseline`, or null. */
const baseline = ((): string | null => {
  const raw = flags.baseline ?? process.env.BENCH_BASELINE
  if (raw === undefined || raw === '') return null
  const dir = resolve(raw)
  if (!existsSync(`${dir}/bin/weir.js`)) throw new Error(`BENCH_BASELINE: no bin/weir.js in ${dir}`)
  return dir
})()
// weir-baseline runs whenever a baseline is given, and only then.
const listed = scenarioSetting(flags.scenarios, ALL_SCENARIOS, ALL_SCENARIOS.filter((s) => s !== 'weir-baseline'))
if (listed.includes('weir-baseline') && baseline === null) throw new Error('scenario weir-baseline needs BENCH_BASELINE=PATH or --baseline PATH')
const scenarios = ALL_SCENARIOS.filter((s) => listed.includes(s) || (s === 'weir-baseline' && baseline !== null))

// ---- CPU accounting from /proc -------------------------------------------------------------

/** `monoUs` is CLOCK_MONOTONIC in µs, the clock of V8's profile timestamps. */
interface CpuSample { at: number; monoUs: number; procs: number[]; cpus: Ticks[] }

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

// ---- load -------------------------------------------------------------------------------------

interface Measured extends LoadResult {
  proxyCpuPct: number | null
  /** CPU time (all threads) the proxy used over the measured run. */
  proxyCpuMs: number | null
  upstreamCpuPct: number
  /** Busy % per CPU ("cpu0") and % stolen by the hypervisor ("cpu0steal") over the measured run. */
  cpuBusyPct: Record<string, number>
  /** The measured run, in CLOCK_MONOTONIC µs. */
  window: { fromUs: number; toUs: number } | null
}

/** Runs bench/load.ts pinned to LOAD_CPU; samples CPU counters between its start and its result. */
async function runLoad (spec: LoadSpec, proxyPid: number | undefined, upstreamPids: (number | undefined)[]): Promise<Measured> {
  const pids = [proxyPid, ...upstreamPids]
  let before: CpuSample | null = null
  let after: CpuSample | null = null
  const result = await startLoad('bench/load.ts', spec, {
    start: () => { before = sampleCpu(pids) },
    result: () => { after = sampleCpu(pids) },
  }).result
  const [a, b] = [before as CpuSample | null, after as CpuSample | null]
  const cpu = a !== null && b !== null ? cpuPercents(a, b) : { procs: [], procMs: [], cpus: {} }
  return {
    window: a !== null && b !== null ? { fromUs: a.monoUs, toUs: b.monoUs } : null,
    ...result,
    proxyCpuPct: proxyPid === undefined ? null : cpu.procs[0] ?? null,
    proxyCpuMs: proxyPid === undefined ? null : cpu.procMs[0] ?? null,
    upstreamCpuPct: cpu.procs.slice(1).reduce((a, b) => a + b, 0),
    cpuBusyPct: cpu.cpus,
  }
}

async function warmAndMeasure (url: string, mode: LoadSpec['mode'], cookie: string | undefined,
  proxyPid: number | undefined, upstreamPids: (number | undefined)[], duration = settings.duration): Promise<Measured> {
  const base = { url, connections: settings.connections, pipelining: settings.pipelining, mode, userIds: settings.userIds, ...(cookie !== undefined ? { cookie } : {}) }
  await runLoad({ ...base, duration: settings.warmup }, proxyPid, upstreamPids)
  return runLoad({ ...base, duration }, proxyPid, upstreamPids)
}

// ---- weir -------------------------------------------------------------------------------------

/**
 * `weir` is this checkout's bin/weir.js; `weir-norecord` bench/servers/weir-norecord.ts, the same
 * weir built with recordRequests: false; `weir-baseline` the baseline checkout's bin/weir.js, run in it.
 */
async function startWeir (config: string, extraNodeArgs: string[] = [], kind: 'weir' | 'weir-norecord' | 'weir-baseline' = 'weir'): Promise<Child> {
  const entry = kind === 'weir-norecord'
    ? ['bench/servers/weir-norecord.ts', config]
    : [kind === 'weir-baseline' ? `${baseline}/bin/weir.js` : 'bin/weir.js', 'serve', '--config', config]
  const child = startChild(kind, PROXY_CPU, [...extraNodeArgs, ...entry], kind === 'weir-baseline' && baseline !== null ? { cwd: baseline } : {})
  await waitForPort(child, PORTS.weir)
  return child
}

/** Sends `count` requests with distinct user ids; returns the share answered by canary. */
async function canaryShare (count: number): Promise<number> {
  const ids = makeUserIds(count)
  let canary = 0
  for (let i = 0; i < ids.length; i += 20) {
    const answers = await Promise.all(ids.slice(i, i + 20).map(async (id) => {
      const res = await fetch(`http://127.0.0.1:${PORTS.weir}/`, { headers: { 'x-user-id': id } })
      await res.arrayBuffer()
      if (res.status !== 200) throw new Error(`weir answered ${res.status} during the routing check`)
      return res.headers.get('x-weir-version')
    }))
    canary += answers.filter((v) => v === 'canary').length
  }
  return canary / count
}

/** A valid bucket cookie (`weir_b=<bucket>.<mac>`) whose bucket routes to stable. */
async function stableBucketCookie (): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const res = await fetch(`http://127.0.0.1:${PORTS.weir}/`)
    await res.arrayBuffer()
    const setCookie = res.headers.get('set-cookie')
    if (setCookie === null) throw new Error('weir sent no Set-Cookie to a request without user id or cookie')
    if (res.headers.get('x-weir-version') !== 'stable') continue
    const cookie = setCookie.split(';')[0] as string
    // The cookie must now be honoured: same version, no new Set-Cookie.
    const again = await fetch(`http://127.0.0.1:${PORTS.weir}/`, { headers: { cookie } })
    await again.arrayBuffer()
    if (again.headers.get('set-cookie') !== null || again.headers.get('x-weir-version') !== 'stable') {
      throw new Error(`weir did not honour its own cookie ${cookie}`)
    }
    return cookie
  }
  throw new Error('no stable bucket cookie in 100 tries')
}

// ---- report -------------------------------------------------------------------------------------

interface Row {
  id: ScenarioId
  label: string
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  meanMs: number
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
  upstreamCpuPct: number
  loadCpuPct: number
  cpuBusyPct: Record<string, number>
  roundsReqPerSec: number[]
}

/** Proxy CPU µs per request of one run (null without a proxy or without requests). */
const usPerRequest = (m: Measured): number | null => (m.proxyCpuMs === null || m.requests === 0 ? null : (m.proxyCpuMs * 1000) / m.requests)
const round1 = (n: number | null): number | null => (n === null ? null : Math.round(n * 10) / 10)

/** Hypervisor steal (% of a CPU) above which a round is too disturbed to compare two runs a few % apart. */
const STEADY_STEAL_PCT = 10

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

function pairing (runs: ReadonlyMap<ScenarioId, Measured[]>, a: ScenarioId, b: ScenarioId): Pairing | null {
  const on = runs.get(a) ?? []
  const off = runs.get(b) ?? []
  const rounds = Math.min(on.length, off.length)
  if (rounds === 0) return null
  const both = Array.from({ length: rounds }, (_, i) => [on[i], off[i]] as [Measured, Measured])
  const roundRatios = both.map(([x, y]) => ratio(x.reqPerSec, y.reqPerSec) ?? 0)
  const cost = (list: Measured[]): number | null => medianOf(list.flatMap((m) => usPerRequest(m) ?? []), (c) => c) ?? null
  const steal = (m: Measured): number => Math.max(m.cpuBusyPct[`cpu${PROXY_CPU}steal`] ?? 0, m.cpuBusyPct[`cpu${LOAD_CPU}steal`] ?? 0)
  const steadyRounds = both.flatMap(([x, y], i) => (steal(x) <= STEADY_STEAL_PCT && steal(y) <= STEADY_STEAL_PCT ? [i] : []))
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

interface RecordingCost {
  rounds: number
  /** Per round, weir-user req/s ÷ weir-norecord req/s (the two ran in the same round). */
  roundRatios: number[]
  reqPerSecRatio: number
  steadyRounds: number[]
  steadyReqPerSecRatio: number | null
  /** weir-norecord's median µs CPU per request ÷ weir-user's: requests per proxy CPU-second, relative. */
  cpuRatio: number | null
  usPerReq: { record: number | null; norecord: number | null }
}

/** What per-request recording costs: weir-user (recording) against weir-norecord, round by round. */
function recordingCost (runs: ReadonlyMap<ScenarioId, Measured[]>): RecordingCost | null {
  const p = pairing(runs, 'weir-user', 'weir-norecord')
  if (p === null) return null
  const [record, norecord] = p.usPerReq
  return {
    rounds: p.rounds,
    roundRatios: p.roundRatios,
    reqPerSecRatio: p.reqPerSecRatio,
    steadyRounds: p.steadyRounds,
    steadyReqPerSecRatio: p.steadyReqPerSecRatio,
    cpuRatio: record === null || norecord === null ? null : ratio(norecord, record),
    usPerReq: { record: round1(record), norecord: round1(norecord) },
  }
}

interface BaselineComparison {
  rounds: number
  /** Per round, weir-user req/s ÷ weir-baseline req/s (above 1: this checkout is faster). */
  roundRatios: number[]
  reqPerSecRatio: number
  steadyRounds: number[]
  steadyReqPerSecRatio: number | null
  /** Per round, weir-user µs CPU per request ÷ weir-baseline's (below 1: this checkout spends less), and their median. */
  roundCpuPerReqRatios: (number | null)[]
  cpuPerReqRatio: number | null
  usPerReq: { user: number | null; baseline: number | null }
}

/** This checkout's weir against the baseline checkout's, same config and load, round by round. */
function baselineComparison (runs: ReadonlyMap<ScenarioId, Measured[]>): BaselineComparison | null {
  const p = pairing(runs, 'weir-user', 'weir-baseline')
  if (p === null) return null
  return {
    rounds: p.rounds,
    roundRatios: p.roundRatios,
    reqPerSecRatio: p.reqPerSecRatio,
    steadyRounds: p.steadyRounds,
    steadyReqPerSecRatio: p.steadyReqPerSecRatio,
    roundCpuPerReqRatios: p.roundCpuRatios,
    cpuPerReqRatio: medianOf(p.roundCpuRatios.flatMap((r) => r ?? []), (r) => r) ?? null,
    usPerReq: { user: round1(p.usPerReq[0]), baseline: round1(p.usPerReq[1]) },
  }
}

function printTable (rows: Row[]): void {
  process.stdout.write('\n' + table(
    ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'vs bare', 'vs floor', 'proxy CPU', `CPU${PROXY_CPU} busy`, 'µs CPU/req', 'CPU-norm vs bare', 'CPU-norm vs floor', 'errors'],
    rows.map((r) => [
      r.label, Math.round(r.reqPerSec).toString(), fmt(r.p50Ms, 0), fmt(r.p99Ms, 0), fmt(r.ratioVsBare), fmt(r.ratioVsFloor),
      r.proxyCpuPct === null ? '-' : `${r.proxyCpuPct} %`, `${r.cpuBusyPct[`cpu${PROXY_CPU}`] ?? '-'} %`,
      fmt(r.proxyCpuUsPerReq, 0), fmt(r.cpuRatioVsBare), fmt(r.cpuRatioVsFloor), String(r.errors + r.non2xx),
    ])))
}

// ---- profiles ---------------------------------------------------------------------------------

interface ProfiledRun { file: string; reqPerSec: number; requests: number; window: { fromUs: number; toUs: number }; summary: ProfileSummary }
interface ProfileReport { weir: ProfiledRun; bare: ProfiledRun; comparison: ProfileComparison }

/**
 * Runs the user-id load against weir and against the bare plugin, each under --cpu-prof, and
 * summarizes the measured window only (not start-up, warm-up or drain).
 */
async function profileRuns (stableUrl: string, weirConfig: string, upstreamPids: (number | undefined)[]): Promise<ProfileReport> {
  const dir = `${TMP}/prof`
  mkdirSync(dir, { recursive: true })
  const run = async (name: 'weir' | 'bare'): Promise<{ run: ProfiledRun; profile: CpuProfile }> => {
    process.stdout.write(`  profiling ${name} under the user-id load (--cpu-prof)...\n`)
    const file = `${dir}/${name}-user.cpuprofile`
    const profFlags = ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-user.cpuprofile`]
    const [child, port] = name === 'weir'
      ? [await startWeir(weirConfig, profFlags), PORTS.weir]
      : [startChild('bare', PROXY_CPU, [...profFlags, 'bench/servers/bare-plugin.ts', String(PORTS.bare), stableUrl]), PORTS.bare]
    let m: Measured
    try {
      await waitForPort(child, port)
      m = await warmAndMeasure(`http://127.0.0.1:${port}/`, 'user-id', undefined, child.proc.pid, upstreamPids)
    } finally {
      // SIGTERM lets the process exit normally, which is when V8 writes the profile.
      await stopChild(child, 15_000)
    }
    if (!existsSync(file)) throw new Error(`no profile written for ${name} (${readdirSync(dir).join(', ')})`)
    if (m.window === null) throw new Error(`no measurement window for ${name}`)
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
    const summary = summarizeProfile(profile, { top: 12, ...m.window, requests: m.requests })
    return { run: { file, reqPerSec: Math.round(m.reqPerSec), requests: m.requests, window: m.window, summary }, profile }
  }
  const bare = await run('bare')
  const weir = await run('weir')
  const comparison = compareProfiles(
    { label: 'bare', profile: bare.profile, options: { ...bare.run.window, requests: bare.run.requests } },
    { label: 'weir', profile: weir.profile, options: { ...weir.run.window, requests: weir.run.requests } })
  return { weir: weir.run, bare: bare.run, comparison }
}

// ---- main -------------------------------------------------------------------------------------

async function main (): Promise<void> {
  rmSync(TMP, { recursive: true, force: true })
  mkdirSync(TMP, { recursive: true })
  for (const [name, port] of Object.entries(PORTS)) {
    if (name !== 'admin' && await portOpen(port)) throw new Error(`port ${port} (${name}) is already in use: stop whatever listens there`)
  }
  process.stdout.write(`weir bench: ${settings.duration} s per scenario after ${settings.warmup} s warm-up, ${settings.rounds} round(s), ` +
    `${settings.connections} connections, pipelining ${settings.pipelining}, ${settings.userIds} user ids; ` +
    (pinned ? `proxy on CPU ${PROXY_CPU}, upstreams + autocannon on CPU ${LOAD_CPU}\n` : 'taskset not found: not pinned\n'))
  /** The baseline checkout as measured: its path, commit and any modified src/ or bin/ files. */
  const baselineCode = baseline === null ? null : { path: baseline, ...codeVersion(baseline) }
  if (baselineCode !== null) {
    process.stdout.write(`baseline (weir-baseline): ${baselineCode.path} at ${baselineCode.commit}` +
      (baselineCode.modified.length > 0 ? `, ${baselineCode.modified.length} modified src/bin file(s)` : '') + '\n')
  }

  const stable = startChild('upstream stable', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.stable), 'stable'])
  const canary = startChild('upstream canary', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.canary), 'canary'])
  await waitForPort(stable, PORTS.stable)
  await waitForPort(canary, PORTS.canary)
  const upstreamPids = [stable.proc.pid, canary.proc.pid]
  const stableUrl = `http://127.0.0.1:${PORTS.stable}`
  const weirConfig = writeWeirConfig({
    writer: 'bench/run.ts',
    file: `${TMP}/weir.yaml`,
    stateFile: `${TMP}/state.json`,
    ports: PORTS,
    route: 'shop',
    upstreams: { stable: stableUrl, canary: `http://127.0.0.1:${PORTS.canary}` },
    weights: { stable: 90, canary: 10 },
  })

  const notes: Record<string, unknown> = {}
  let cookie: string | undefined

  /** Starts the scenario's proxy alone on PROXY_CPU, warms up, measures, stops it. */
  async function measure (id: ScenarioId): Promise<Measured> {
    if (id === 'direct') return warmAndMeasure(`${stableUrl}/`, 'user-id', undefined, undefined, upstreamPids)
    if (id === 'bare' || id === 'floor') {
      const [script, port] = id === 'bare' ? ['bench/servers/bare-plugin.ts', PORTS.bare] : ['bench/servers/undici-floor.ts', PORTS.floor]
      const proxy = startChild(id, PROXY_CPU, [script, String(port), stableUrl])
      try {
        await waitForPort(proxy, port)
        return await warmAndMeasure(`http://127.0.0.1:${port}/`, 'user-id', undefined, proxy.proc.pid, upstreamPids)
      } finally {
        await stopChild(proxy)
      }
    }
    const weir = await startWeir(weirConfig, [], id === 'weir-norecord' || id === 'weir-baseline' ? id : 'weir')
    try {
      // The routing check is of this checkout's weir, not the baseline's.
      if (notes.canaryShareOf2000Users === undefined && id !== 'weir-baseline') {
        const share = await canaryShare(2000)
        notes.canaryShareOf2000Users = share
        process.stdout.write(`  (routing check: ${(share * 100).toFixed(1)} % of 2000 user ids went to canary, weights 90/10)\n`)
      }
      if (id !== 'weir-cookie') return await warmAndMeasure(`http://127.0.0.1:${PORTS.weir}/`, 'user-id', undefined, weir.proc.pid, upstreamPids)
      // The cookie secret is fixed in the config, so one cookie stays valid across weir restarts.
      cookie ??= await stableBucketCookie()
      notes.bucketCookie = cookie
      return await warmAndMeasure(`http://127.0.0.1:${PORTS.weir}/`, 'cookie', cookie, weir.proc.pid, upstreamPids)
    } finally {
      await stopChild(weir)
    }
  }

  const runs = new Map<ScenarioId, Measured[]>(scenarios.map((id) => [id, []]))
  for (let round = 0; round < settings.rounds; round++) {
    if (settings.rounds > 1) process.stdout.write(`round ${round + 1}/${settings.rounds}\n`)
    // Rotating the order spreads slow drifts (other load on the machine) over all scenarios.
    const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length] as ScenarioId)
    for (const id of order) {
      const m = await measure(id)
      runs.get(id)?.push(m)
      process.stdout.write(`  ${LABELS[id].padEnd(34)} ${Math.round(m.reqPerSec).toString().padStart(7)} req/s  p50 ${m.latencyP50} ms  p99 ${m.latencyP99} ms` +
        `  proxy CPU ${m.proxyCpuPct ?? '-'} %  CPU busy ${JSON.stringify(m.cpuBusyPct)}` +
        (m.errors + m.non2xx + m.timeouts > 0 ? `  ERRORS ${m.errors} non2xx ${m.non2xx} timeouts ${m.timeouts}` : '') + '\n')
    }
  }
  /** Per scenario, the round with the median throughput, and the median proxy CPU µs per request. */
  const measured = new Map<ScenarioId, Measured>()
  const usPerReq = new Map<ScenarioId, number>()
  for (const [id, list] of runs) {
    const median = medianOf(list, (m) => m.reqPerSec)
    if (median !== undefined) measured.set(id, median)
    const cost = medianOf(list.flatMap((m) => usPerRequest(m) ?? []), (c) => c)
    if (cost !== undefined) usPerReq.set(id, cost)
  }

  let profiles: ProfileReport | null = null
  if (profile) profiles = await profileRuns(stableUrl, weirConfig, upstreamPids)

  await stopChild(stable)
  await stopChild(canary)

  const bare = measured.get('bare')?.reqPerSec
  const floor = measured.get('floor')?.reqPerSec
  const bareCost = usPerReq.get('bare')
  const floorCost = usPerReq.get('floor')
  const cpuRatio = (cost: number | undefined, base: number | undefined): number | null =>
    cost === undefined || base === undefined ? null : ratio(base, cost)
  const rows: Row[] = scenarios.flatMap((id) => {
    const m = measured.get(id)
    if (m === undefined) return []
    const wallMs = m.durationSec * 1000
    return [{
      id,
      label: LABELS[id],
      reqPerSec: Math.round(m.reqPerSec),
      p50Ms: m.latencyP50,
      p99Ms: m.latencyP99,
      meanMs: m.latencyMean,
      errors: m.errors + m.timeouts,
      non2xx: m.non2xx,
      ratioVsBare: ratio(m.reqPerSec, bare),
      ratioVsFloor: ratio(m.reqPerSec, floor),
      proxyCpuPct: m.proxyCpuPct,
      proxyCpuUsPerReq: usPerReq.has(id) ? Math.round((usPerReq.get(id) as number) * 10) / 10 : null,
      cpuRatioVsBare: cpuRatio(usPerReq.get(id), bareCost),
      cpuRatioVsFloor: cpuRatio(usPerReq.get(id), floorCost),
      upstreamCpuPct: m.upstreamCpuPct,
      loadCpuPct: wallMs > 0 ? Math.round((m.loadCpuMs / wallMs) * 100) : 0,
      cpuBusyPct: m.cpuBusyPct,
      roundsReqPerSec: (runs.get(id) ?? []).map((r) => Math.round(r.reqPerSec)),
    }]
  })
  printTable(rows)

  const weirUser = rows.find((r) => r.id === 'weir-user')
  const target = weirUser?.ratioVsBare ?? null
  const holds = target === null ? null : target >= 0.95
  const cpuTarget = weirUser?.cpuRatioVsBare ?? null
  const verdict = (r: number): string => `${r >= 0.95 ? 'HOLDS' : 'MISSED'} (ratio ${r.toFixed(3)}: ${(Math.abs(1 - r) * 100).toFixed(1)} % ${r <= 1 ? 'less' : 'more'})`
  if (target !== null) {
    process.stdout.write('\nweir user-id routing costs at most 5 % of throughput vs bare @fastify/http-proxy:\n' +
      `  by req/s:                      ${verdict(target)}\n`)
    if (cpuTarget !== null) process.stdout.write(`  by req per proxy CPU-second:   ${verdict(cpuTarget)}\n`)
    const busy = Math.max(...rows.map((r) => r.cpuBusyPct[`cpu${PROXY_CPU}`] ?? 0))
    const own = Math.min(...rows.flatMap((r) => (r.proxyCpuPct === null ? [] : [r.proxyCpuPct])))
    if (busy - own > 15) {
      process.stdout.write(`  note: CPU ${PROXY_CPU} was up to ${busy} % busy while a proxy used as little as ${own} %: other processes ` +
        'shared it, so req/s ratios are noisy; the CPU-normalized ratio is the steadier one. Try BENCH_ROUNDS=3.\n')
    }
  }
  const recording = recordingCost(runs)
  if (recording !== null) {
    process.stdout.write(`\nrequest metrics + rolling stats (weir-user) vs recordRequests: false (weir-norecord), ${recording.rounds} paired round(s):\n` +
      `  req/s ratio, median of rounds:        ${recording.reqPerSecRatio.toFixed(3)} (rounds ${recording.roundRatios.map((r) => r.toFixed(3)).join(' / ')})\n` +
      `  same, rounds with steal <= ${STEADY_STEAL_PCT} %:       ${recording.steadyReqPerSecRatio?.toFixed(3) ?? '-'} (rounds ${recording.steadyRounds.map((i) => i + 1).join(', ') || 'none'})\n` +
      `  req per proxy CPU-second ratio:       ${recording.cpuRatio?.toFixed(3) ?? '-'} (${recording.usPerReq.record} vs ${recording.usPerReq.norecord} µs CPU/req, medians)\n` +
      `  recording costs at most 5 % of throughput: ${(recording.steadyReqPerSecRatio ?? recording.reqPerSecRatio) >= 0.95 ? 'HOLDS' : 'MISSED'} ` +
      `by req/s${recording.steadyReqPerSecRatio === null ? '' : ' (steady rounds)'}, ` +
      `${recording.cpuRatio === null ? '-' : recording.cpuRatio >= 0.95 ? 'HOLDS' : 'MISSED'} by CPU\n`)
  }
  const vsBaseline = baselineComparison(runs)
  if (vsBaseline !== null && baselineCode !== null) {
    const rounds = (list: (number | null)[]): string => list.map((r) => fmt(r, 3)).join(' / ')
    process.stdout.write(`\nweir-user (this checkout) vs weir-baseline (${baselineCode.path} at ${baselineCode.commit}), same config and load, ` +
      `${vsBaseline.rounds} paired round(s); weir-user ÷ weir-baseline:\n` +
      `  req/s ratio, median of rounds:        ${vsBaseline.reqPerSecRatio.toFixed(3)} (rounds ${rounds(vsBaseline.roundRatios)})\n` +
      `  same, rounds with steal <= ${STEADY_STEAL_PCT} %:       ${fmt(vsBaseline.steadyReqPerSecRatio, 3)} (rounds ${vsBaseline.steadyRounds.map((i) => i + 1).join(', ') || 'none'})\n` +
      `  µs CPU/req ratio, median of rounds:   ${fmt(vsBaseline.cpuPerReqRatio, 3)} (rounds ${rounds(vsBaseline.roundCpuPerReqRatios)}; ` +
      `${vsBaseline.usPerReq.user} vs ${vsBaseline.usPerReq.baseline} µs CPU/req, medians; below 1: weir-user spends less CPU per request)\n`)
  }
  const floorRow = rows.find((r) => r.id === 'floor')
  if (floorRow?.ratioVsBare != null) process.stdout.write(`undici floor vs bare plugin: ${floorRow.ratioVsBare.toFixed(2)}x\n`)
  if (profiles !== null) {
    process.stdout.write(`\nCPU profile of weir, user-id scenario (${profiles.weir.reqPerSec} req/s while profiling; ${profiles.weir.file}):\n`)
    process.stdout.write(formatProfile(profiles.weir.summary) + '\n')
    process.stdout.write(`\nweir vs bare @fastify/http-proxy, per request (both profiled the same way; bare: ${profiles.bare.file}):\n`)
    process.stdout.write(formatComparison(profiles.comparison) + '\n')
  }

  const results = {
    date: new Date().toISOString(),
    command: commandLine('npm run bench'),
    machine: machine(),
    code: codeVersion(),
    ...(baselineCode !== null ? { baseline: baselineCode } : {}),
    settings: { ...settings, scenarios },
    rows,
    target: {
      statement: 'weir user-id routing costs at most 5 % of throughput vs bare @fastify/http-proxy',
      ratio: target,
      holds,
      cpuNormalizedRatio: cpuTarget,
      cpuNormalizedHolds: cpuTarget === null ? null : cpuTarget >= 0.95,
    },
    notes,
    ...(recording !== null ? { recordingCost: recording } : {}),
    ...(vsBaseline !== null ? { baselineComparison: vsBaseline } : {}),
    ...(profiles !== null
      ? {
          profile: {
            weir: { file: profiles.weir.file, reqPerSec: profiles.weir.reqPerSec, requests: profiles.weir.requests, summary: profiles.weir.summary },
            bare: { file: profiles.bare.file, reqPerSec: profiles.bare.reqPerSec, requests: profiles.bare.requests, busyUsPerReq: profiles.bare.summary.busyUsPerReq, groups: profiles.bare.summary.groups },
            comparison: profiles.comparison,
          },
        }
      : {}),
  }
  mkdirSync(`${ROOT}bench/results`, { recursive: true })
  writeFileSync(`${ROOT}bench/results/latest.json`, JSON.stringify(results, null, 2) + '\n')
  process.stdout.write('\nwrote bench/results/latest.json\n')
}

runBench('bench', main)
