// `npm run bench`: measures the same upstream hit directly, through a bare @fastify/http-proxy,
// through a hand-written undici proxy (the Node floor) and through weir (user-id and cookie
// routing, and user-id without per-request metrics to price them), each proxy alone on CPU 0;
// prints a table and writes bench/results/latest.json.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { killAll, pinned, portOpen, processTicks, ROOT, safeExec, startChild, stopChild, TICK_MS, waitForPort, type Child } from './children.ts'
import { makeUserIds, type LoadResult, type LoadSpec } from './load.ts'
import { compareProfiles, formatComparison, formatProfile, summarizeProfile, type CpuProfile, type ProfileComparison, type ProfileSummary } from './profile.ts'
import { setting } from './settings.ts'

const TMP = '/tmp/weir-bench'

const PORTS = { stable: 18081, canary: 18082, weir: 18080, admin: 19901, bare: 18090, floor: 18091 }
/** The proxy under test runs alone on PROXY_CPU; upstreams and the load generator share LOAD_CPU. */
const PROXY_CPU = 0
const LOAD_CPU = 1

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
    profile: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (flags.help === true) {
  process.stdout.write(`usage: npm run bench [-- --duration S --warmup S --connections N --pipelining N --user-ids N --rounds N --scenarios a,b --profile]
env: BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_CONNECTIONS (50), BENCH_PIPELINING (1), BENCH_USER_IDS (10000),
     BENCH_ROUNDS (1; >1 repeats every scenario in rotated order and reports the median round),
     BENCH_SCENARIOS (direct,bare,floor,weir-user,weir-cookie,weir-norecord), BENCH_PROFILE=1 (adds --cpu-prof runs of the bare plugin and weir)
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

type ScenarioId = 'direct' | 'bare' | 'floor' | 'weir-user' | 'weir-cookie' | 'weir-norecord'
const ALL_SCENARIOS: readonly ScenarioId[] = ['direct', 'bare', 'floor', 'weir-user', 'weir-cookie', 'weir-norecord']
const LABELS: Record<ScenarioId, string> = {
  direct: 'direct (no proxy)',
  bare: 'bare @fastify/http-proxy',
  floor: 'undici floor (node:http + Pool)',
  'weir-user': 'weir, x-user-id routing',
  'weir-cookie': 'weir, bucket cookie routing',
  'weir-norecord': 'weir, x-user-id, no request metrics',
}
const selected = (flags.scenarios ?? process.env.BENCH_SCENARIOS ?? ALL_SCENARIOS.join(','))
  .split(',').map((s) => s.trim()).filter((s) => s !== '')
for (const s of selected) if (!ALL_SCENARIOS.includes(s as ScenarioId)) throw new Error(`unknown scenario "${s}" (known: ${ALL_SCENARIOS.join(', ')})`)
const scenarios = ALL_SCENARIOS.filter((s) => selected.includes(s))

// ---- child processes: every one is tracked and killed by pid on the way out --------------


// ---- CPU accounting from /proc -------------------------------------------------------------

/** [busy, steal, total] jiffies per CPU; busy excludes steal (time the hypervisor gave elsewhere). */
function cpuTicks (): Map<string, [number, number, number]> {
  const out = new Map<string, [number, number, number]>()
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^(cpu\d+)\s+(.*)$/.exec(line)
      if (m === null) continue
      const v = (m[2] as string).split(/\s+/).map(Number)
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
      const idle = (v[3] ?? 0) + (v[4] ?? 0)
      const steal = v[7] ?? 0
      out.set(m[1] as string, [total - idle - steal, steal, total])
    }
  } catch { /* not Linux */ }
  return out
}

/** `monoUs` is CLOCK_MONOTONIC in µs, the clock of V8's profile timestamps. */
interface CpuSample { at: number; monoUs: number; procs: number[]; cpus: Map<string, [number, number, number]> }

function sampleCpu (pids: (number | undefined)[]): CpuSample {
  return { at: performance.now(), monoUs: Number(process.hrtime.bigint() / 1000n), procs: pids.map(processTicks), cpus: cpuTicks() }
}

function cpuPercents (a: CpuSample, b: CpuSample): { procs: number[]; procMs: number[]; cpus: Record<string, number> } {
  const wallMs = b.at - a.at
  const procMs = a.procs.map((t, i) => ((b.procs[i] ?? 0) - t) * TICK_MS)
  const procs = procMs.map((ms) => Math.round((ms / wallMs) * 100))
  const cpusOut: Record<string, number> = {}
  for (const [name, [busy, steal, total]] of b.cpus) {
    const before = a.cpus.get(name)
    if (before === undefined || total === before[2]) continue
    cpusOut[name] = Math.round(((busy - before[0]) / (total - before[2])) * 100)
    cpusOut[`${name}steal`] = Math.round(((steal - before[1]) / (total - before[2])) * 100)
  }
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
  const child = startChild('load', LOAD_CPU, ['bench/load.ts', JSON.stringify(spec)], 'pipe')
  const pids = [proxyPid, ...upstreamPids]
  let before: CpuSample | null = null
  let after: CpuSample | null = null
  let out = ''
  child.proc.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    if (before === null && out.includes('start\n')) before = sampleCpu(pids)
    if (after === null && /\{.*\}\n/.test(out)) after = sampleCpu(pids)
  })
  const guard = setTimeout(() => {
    if (child.proc.pid !== undefined) process.kill(child.proc.pid, 'SIGKILL')
  }, (spec.duration + 45) * 1000)
  const code = await new Promise<number | null>((resolve) => child.proc.once('exit', (c) => resolve(c)))
  clearTimeout(guard)
  const line = out.split('\n').find((l) => l.startsWith('{'))
  if (code !== 0 || line === undefined) throw new Error(`load generator failed (exit ${code}):\n${child.stderr()}`)
  const result = JSON.parse(line) as LoadResult
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

function writeWeirConfig (): string {
  const file = `${TMP}/weir.yaml`
  writeFileSync(file, `# Written by bench/run.ts.
listen: { host: 127.0.0.1, port: ${PORTS.weir} }
admin: { host: 127.0.0.1, port: ${PORTS.admin} }
state: { file: ${TMP}/state.json }
cookieSecret: bench-secret-bench-secret
logLevel: warn
drainTimeout: 2s
routes:
  - name: shop
    upstreams: { stable: http://127.0.0.1:${PORTS.stable}, canary: http://127.0.0.1:${PORTS.canary} }
    weights: { stable: 90, canary: 10 }
    stickiness: { userId: { header: x-user-id } }
`)
  return file
}

/** `record: false` starts bench/servers/weir-norecord.ts: the same weir built with recordRequests: false. */
async function startWeir (config: string, extraNodeArgs: string[] = [], record = true): Promise<Child> {
  const entry = record ? ['bin/weir.js', 'serve', '--config', config] : ['bench/servers/weir-norecord.ts', config]
  const child = startChild(record ? 'weir' : 'weir-norecord', PROXY_CPU, [...extraNodeArgs, ...entry])
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

function machine (): Record<string, string | number | boolean> {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown'
  return {
    nproc: Number(safeExec('nproc', [])) || cpus().length,
    cpuModel: model.trim(),
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    pinned,
    proxyCpu: PROXY_CPU,
    loadAndUpstreamCpu: LOAD_CPU,
  }
}

/** The commit measured, and any src/ or bin/ files that differed from it. */
function codeVersion (): { commit: string; modified: string[] } {
  const modified = safeExec('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'bin'])
  return {
    commit: safeExec('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']) || 'unknown',
    modified: modified === '' ? [] : modified.split('\n').map((l) => l.trim()),
  }
}

interface RecordingCost {
  rounds: number
  /** Per round, weir-user req/s ÷ weir-norecord req/s (the two ran back to back). */
  roundRatios: number[]
  reqPerSecRatio: number
  /** Rounds (0-based) in which neither run lost more than STEADY_STEAL_PCT of a CPU to the hypervisor, and their median ratio. */
  steadyRounds: number[]
  steadyReqPerSecRatio: number | null
  /** weir-norecord's median µs CPU per request ÷ weir-user's: requests per proxy CPU-second, relative. */
  cpuRatio: number | null
  usPerReq: { record: number | null; norecord: number | null }
}

/** Hypervisor steal (% of a CPU) above which a round is too disturbed to compare two runs a few % apart. */
const STEADY_STEAL_PCT = 10

/** What per-request recording costs: weir-user (recording) against weir-norecord, round by round. */
function recordingCost (runs: ReadonlyMap<ScenarioId, Measured[]>): RecordingCost | null {
  const on = runs.get('weir-user') ?? []
  const off = runs.get('weir-norecord') ?? []
  const rounds = Math.min(on.length, off.length)
  if (rounds === 0) return null
  const roundRatios = Array.from({ length: rounds }, (_, i) => ratio((on[i] as Measured).reqPerSec, (off[i] as Measured).reqPerSec) ?? 0)
  const cost = (list: Measured[]): number | null => medianOf(list.flatMap((m) =>
    m.proxyCpuMs === null || m.requests === 0 ? [] : [(m.proxyCpuMs * 1000) / m.requests]), (c) => c) ?? null
  const record = cost(on)
  const norecord = cost(off)
  const steal = (m: Measured): number => Math.max(m.cpuBusyPct[`cpu${PROXY_CPU}steal`] ?? 0, m.cpuBusyPct[`cpu${LOAD_CPU}steal`] ?? 0)
  const steadyRounds = roundRatios.flatMap((_, i) => (steal(on[i] as Measured) <= STEADY_STEAL_PCT && steal(off[i] as Measured) <= STEADY_STEAL_PCT ? [i] : []))
  return {
    rounds,
    roundRatios,
    reqPerSecRatio: medianOf(roundRatios, (r) => r) ?? 0,
    steadyRounds,
    steadyReqPerSecRatio: medianOf(steadyRounds.map((i) => roundRatios[i] as number), (r) => r) ?? null,
    cpuRatio: record === null || norecord === null ? null : ratio(norecord, record),
    usPerReq: { record: record === null ? null : Math.round(record * 10) / 10, norecord: norecord === null ? null : Math.round(norecord * 10) / 10 },
  }
}

function medianOf<T> (items: readonly T[], key: (item: T) => number): T | undefined {
  const sorted = [...items].sort((a, b) => key(a) - key(b))
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

const ratio = (a: number, b: number | undefined): number | null => (b === undefined || b === 0 ? null : Math.round((a / b) * 1000) / 1000)
const fmt = (n: number | null, digits = 2): string => (n === null ? '-' : n.toFixed(digits))

function printTable (rows: Row[]): void {
  const header = ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'vs bare', 'vs floor', 'proxy CPU', `CPU${PROXY_CPU} busy`,
    'µs CPU/req', 'CPU-norm vs bare', 'CPU-norm vs floor', 'errors']
  const body = rows.map((r) => [
    r.label, Math.round(r.reqPerSec).toString(), fmt(r.p50Ms, 0), fmt(r.p99Ms, 0), fmt(r.ratioVsBare), fmt(r.ratioVsFloor),
    r.proxyCpuPct === null ? '-' : `${r.proxyCpuPct} %`, `${r.cpuBusyPct[`cpu${PROXY_CPU}`] ?? '-'} %`,
    fmt(r.proxyCpuUsPerReq, 0), fmt(r.cpuRatioVsBare), fmt(r.cpuRatioVsFloor), String(r.errors + r.non2xx),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ')
  process.stdout.write('\n' + line(header) + '\n' + widths.map((w) => '-'.repeat(w)).join('  ') + '\n')
  for (const row of body) process.stdout.write(line(row) + '\n')
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

  const stable = startChild('upstream stable', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.stable), 'stable'])
  const canary = startChild('upstream canary', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.canary), 'canary'])
  await waitForPort(stable, PORTS.stable)
  await waitForPort(canary, PORTS.canary)
  const upstreamPids = [stable.proc.pid, canary.proc.pid]
  const stableUrl = `http://127.0.0.1:${PORTS.stable}`
  const weirConfig = writeWeirConfig()

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
    const weir = await startWeir(weirConfig, [], id !== 'weir-norecord')
    try {
      if (notes.canaryShareOf2000Users === undefined) {
        const share = await canaryShare(2000)
        notes.canaryShareOf2000Users = share
        process.stdout.write(`  (routing check: ${(share * 100).toFixed(1)} % of 2000 user ids went to canary, weights 90/10)\n`)
      }
      if (id === 'weir-user' || id === 'weir-norecord') return await warmAndMeasure(`http://127.0.0.1:${PORTS.weir}/`, 'user-id', undefined, weir.proc.pid, upstreamPids)
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
    const costs = list.flatMap((m) => (m.proxyCpuMs === null || m.requests === 0 ? [] : [(m.proxyCpuMs * 1000) / m.requests]))
    const cost = medianOf(costs, (c) => c)
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
    process.stdout.write(`\nweir user-id routing costs at most 5 % of throughput vs bare @fastify/http-proxy:\n` +
      `  by req/s:                      ${verdict(target)}\n`)
    if (cpuTarget !== null) process.stdout.write(`  by req per proxy CPU-second:   ${verdict(cpuTarget)}\n`)
    const busy = Math.max(...rows.map((r) => r.cpuBusyPct[`cpu${PROXY_CPU}`] ?? 0))
    const own = Math.min(...rows.flatMap((r) => (r.proxyCpuPct === null ? [] : [r.proxyCpuPct])))
    if (busy - own > 15) {
      process.stdout.write(`  note: CPU ${PROXY_CPU} was up to ${busy} % busy while a proxy used as little as ${own} %: other processes ` +
        `shared it, so req/s ratios are noisy; the CPU-normalized ratio is the steadier one. Try BENCH_ROUNDS=3.\n`)
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
    command: [
      ...Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v ?? ''}`),
      'npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : []),
    ].join(' '),
    machine: machine(),
    code: codeVersion(),
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
  process.stdout.write(`\nwrote bench/results/latest.json\n`)
}

main().then(() => {
  killAll()
  process.exit(0)
}, (err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`)
  killAll()
  process.exit(1)
})
