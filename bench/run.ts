// `npm run bench`: the same upstream hit directly, through a bare @fastify/http-proxy, a
// hand-written undici proxy (the Node floor), nginx, and weir (user-id, anonymous and cookie
// clients, user-id without request metrics, optionally another checkout's weir), each proxy alone
// on CPU 0, saturating (wrk, or autocannon) and paced (open loop); one table, bench/results/latest.json.

import { createRequire } from 'node:module'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { LOAD_CPU, pinned, portOpen, PROXY_CPU, ROOT, runBench, safeExec, startChild, startLoad, stopChild, waitForPort, type Child, type ChildOptions } from './children.ts'
import { statusKb } from './cpu-ticks.ts'
import { ensureDebianPackage } from './debian.ts'
import type { LoadResult, LoadSpec } from './load.ts'
import { codeVersion, commandLine, machine } from './machine.ts'
import { measured, type Generator } from './measure.ts'
import { NGINX, NGINX_PACKAGES, startNginx, startNginxUpstream } from './nginx.ts'
import type { OpenLoopSpec } from './open-loop.ts'
import { accessLogCost, baselineComparison, recordingCost, STEADY_STEAL_PCT } from './paired.ts'
import { compareProfiles, formatComparison, formatProfile, summarizeProfile, type CpuProfile, type ProfileComparison, type ProfileSummary } from './profile.ts'
import { buildRows, checks, formatTable, formatTargets, issueTargets, roundsNote, type Paced, type Saturating, type ScenarioRuns } from './run-report.ts'
import { scenarioSetting, setting } from './settings.ts'
import { fmt } from './table.ts'
import { anonymousCookies, canaryShare, stableBucketCookie } from './weir-checks.ts'
import { writeWeirConfig } from './weir-config.ts'
import { runWrk, WRK } from './wrk-load.ts'
import type { TailProbeResult } from './servers/tail-probe.ts'
import { formatTailRun, TAIL_SCENARIOS, type TailProbe, type TailRun, type TailScenario } from './tail-report.ts'

const TMP = '/tmp/weir-bench'

const PORTS = { stable: 18081, canary: 18082, weir: 18080, admin: 19901, bare: 18090, floor: 18091, nginx: 18092 }

// ---- settings: flags win over env vars, env vars over defaults ----------------------------

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'process-warmup': { type: 'string' },
    connections: { type: 'string' },
    pipelining: { type: 'string' },
    'user-ids': { type: 'string' },
    rounds: { type: 'string' },
    scenarios: { type: 'string' },
    baseline: { type: 'string' },
    rate: { type: 'string' },
    loadgen: { type: 'string' },
    upstream: { type: 'string' },
    'body-bytes': { type: 'string' },
    modes: { type: 'string' },
    profile: { type: 'boolean' },
    tail: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (flags.help === true) {
  process.stdout.write(`usage: npm run bench [-- --duration S --warmup S --process-warmup S --connections N --pipelining N --user-ids N --rounds N --scenarios a,b --baseline PATH
                      --rate N --loadgen wrk|autocannon --upstream nginx|node --body-bytes N --modes saturating,paced --profile --tail]
env: BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_PROCESS_WARMUP (15: a new proxy process's first warm-up, the paced run's), BENCH_CONNECTIONS (50), BENCH_PIPELINING (1), BENCH_USER_IDS (10000),
     BENCH_ROUNDS (1; >1 repeats every scenario in rotated order and reports the median round),
     BENCH_SCENARIOS (direct,bare,floor,nginx,weir-user,weir-anon,weir-cookie,weir-norecord,weir-accesslog), BENCH_PROFILE=1 (adds --cpu-prof runs of the bare plugin and weir),
     BENCH_BASELINE=PATH (adds weir-baseline: weir-user's config and load against PATH/bin/weir.js, another weir checkout),
     BENCH_RATE (5000: req/s of the paced runs), BENCH_LOADGEN (wrk when it is or can be installed, else autocannon),
     BENCH_UPSTREAM (nginx when it is or can be installed, else node: what serves stable and canary), BENCH_BODY_BYTES (1024: their JSON body),
     BENCH_MODES (saturating,paced), BENCH_TAIL=1 (adds a paced run of each Node proxy with an event-loop delay and GC probe)
`)
  process.exit(0)
}

const settings = {
  duration: setting(flags.duration, 'BENCH_DURATION', 10),
  warmup: setting(flags.warmup, 'BENCH_WARMUP', 2),
  // Each proxy process meets load first in its paced run: V8 is still compiling its hot code for
  // the first ~15-20 s of load, on background threads that take the proxy's one CPU from its event
  // loop for 20-30 ms at a time, so a shorter warm-up measures the JIT, not the proxy (bench/README, "The tail").
  processWarmup: setting(flags['process-warmup'], 'BENCH_PROCESS_WARMUP', 15),
  connections: setting(flags.connections, 'BENCH_CONNECTIONS', 50),
  pipelining: setting(flags.pipelining, 'BENCH_PIPELINING', 1),
  userIds: setting(flags['user-ids'], 'BENCH_USER_IDS', 10_000),
  rounds: setting(flags.rounds, 'BENCH_ROUNDS', 1),
  rate: setting(flags.rate, 'BENCH_RATE', 5000),
  bodyBytes: setting(flags['body-bytes'], 'BENCH_BODY_BYTES', 1024),
}
const profile = flags.profile === true || process.env.BENCH_PROFILE === '1'
const tail = flags.tail === true || process.env.BENCH_TAIL === '1'

/** The saturating runs' generator as asked for: unset means wrk if it can be had, else autocannon. */
const loadgenAsked = ((): 'wrk' | 'autocannon' | null => {
  const raw = flags.loadgen ?? process.env.BENCH_LOADGEN ?? ''
  if (raw === '') return null
  if (raw !== 'wrk' && raw !== 'autocannon') throw new Error(`BENCH_LOADGEN: expected wrk or autocannon, got "${raw}"`)
  return raw
})()

/** What serves stable and canary as asked for: unset means nginx if it can be had, else node:http. */
const upstreamAsked = ((): 'nginx' | 'node' | null => {
  const raw = flags.upstream ?? process.env.BENCH_UPSTREAM ?? ''
  if (raw === '') return null
  if (raw !== 'nginx' && raw !== 'node') throw new Error(`BENCH_UPSTREAM: expected nginx or node, got "${raw}"`)
  return raw
})()

type Mode = 'saturating' | 'paced'
const modes = ((): Mode[] => {
  const raw = (flags.modes ?? process.env.BENCH_MODES ?? 'saturating,paced').split(',').map((m) => m.trim()).filter((m) => m !== '')
  for (const m of raw) if (m !== 'saturating' && m !== 'paced') throw new Error(`BENCH_MODES: unknown mode "${m}" (known: saturating, paced)`)
  if (raw.length === 0) throw new Error('BENCH_MODES: no mode')
  return (['saturating', 'paced'] as const).filter((m) => raw.includes(m))
})()

type ScenarioId = 'direct' | 'bare' | 'floor' | 'nginx' | 'weir-user' | 'weir-baseline' | 'weir-anon' | 'weir-cookie' | 'weir-norecord' | 'weir-accesslog'
const ALL_SCENARIOS: readonly ScenarioId[] = ['direct', 'bare', 'floor', 'nginx', 'weir-user', 'weir-baseline', 'weir-anon', 'weir-cookie', 'weir-norecord', 'weir-accesslog']
const LABELS: Record<ScenarioId, string> = {
  direct: 'direct (no proxy)',
  bare: 'bare @fastify/http-proxy',
  floor: 'undici floor (node:http + Pool)',
  nginx: 'nginx (nginx-light, 1 process)',
  'weir-user': 'weir, x-user-id routing',
  'weir-baseline': 'weir baseline, x-user-id routing',
  'weir-anon': 'weir, anonymous (new cookie each)',
  'weir-cookie': 'weir, bucket cookie routing',
  'weir-norecord': 'weir, x-user-id, no request metrics',
  'weir-accesslog': 'weir, x-user-id, access log to a file',
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
const listedExplicitly = (flags.scenarios ?? process.env.BENCH_SCENARIOS ?? '') !== ''
if (listed.includes('weir-baseline') && baseline === null) throw new Error('scenario weir-baseline needs BENCH_BASELINE=PATH or --baseline PATH')
const scenarios = ALL_SCENARIOS.filter((s) => listed.includes(s) || (s === 'weir-baseline' && baseline !== null))

// ---- load -------------------------------------------------------------------------------------

/** Set in main: wrk when installed (or installable), autocannon otherwise or when asked. */
let loadgen: 'wrk' | 'autocannon' = 'autocannon'

function saturatingGenerator (spec: LoadSpec): Generator<LoadResult> {
  if (loadgen === 'wrk') return (on) => runWrk(spec, `${TMP}/wrk-${spec.mode}.lua`, LOAD_CPU, on)
  return (on) => startLoad('bench/load.ts', spec, on).result
}

/** A discarded warm-up run, then the measured one, with the same generator and load. */
async function warmAndMeasure (url: string, mode: LoadSpec['mode'], cookie: string | undefined,
  proxyPid: number | undefined, upstreamPids: (number | undefined)[], duration = settings.duration): Promise<Saturating> {
  const base = { url, connections: settings.connections, pipelining: settings.pipelining, mode, userIds: settings.userIds, ...(cookie !== undefined ? { cookie } : {}) }
  // Without a paced run before it, this is the new process's first load: its warm-up is the process's.
  const warmup = modes.includes('paced') || proxyPid === undefined ? settings.warmup : settings.processWarmup
  await measured(saturatingGenerator({ ...base, duration: warmup }), proxyPid, upstreamPids)
  return measured(saturatingGenerator({ ...base, duration }), proxyPid, upstreamPids)
}

/**
 * The paced run: bench/open-loop.ts at settings.rate, its warm-up part of the same stream on the
 * same connections. `atWindowEdge` runs as the measured part starts and as its result arrives.
 */
function pacedRun (url: string, mode: LoadSpec['mode'], cookie: string | undefined,
  proxyPid: number | undefined, upstreamPids: (number | undefined)[], atWindowEdge: () => void = () => {}): Promise<Paced> {
  const { rate, duration, processWarmup: warmup, connections, userIds } = settings
  const spec: OpenLoopSpec = { url, rate, duration, warmup, connections, mode, userIds, ...(cookie !== undefined ? { cookie } : {}) }
  return measured((on) => startLoad('bench/open-loop.ts', spec, {
    start: () => { on.start(); atWindowEdge() },
    result: () => { on.result(); atWindowEdge() },
  }).result, proxyPid, upstreamPids)
}

// ---- weir -------------------------------------------------------------------------------------

/**
 * `weir` is this checkout's bin/weir.js; `weir-norecord` bench/servers/weir-norecord.ts, the same
 * weir built with recordRequests: false; `weir-baseline` the baseline checkout's bin/weir.js, run in it.
 */
async function startWeir (config: string, extraNodeArgs: string[] = [], kind: 'weir' | 'weir-norecord' | 'weir-baseline' = 'weir', options: Pick<ChildOptions, 'stdout' | 'env'> = {}): Promise<Child> {
  const entry = kind === 'weir-norecord'
    ? ['bench/servers/weir-norecord.ts', config]
    : [kind === 'weir-baseline' ? `${baseline}/bin/weir.js` : 'bin/weir.js', 'serve', '--config', config]
  const child = startChild(kind, PROXY_CPU, [...extraNodeArgs, ...entry], {
    ...(kind === 'weir-baseline' && baseline !== null ? { cwd: baseline } : {}),
    ...options,
  })
  await waitForPort(child, PORTS.weir)
  return child
}

/** The Debian package's version, or '' when it is not installed. */
const debVersion = (pkg: string): string => safeExec('dpkg-query', ['-W', '-f=${Version}', pkg])

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
    let m: Saturating
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
  // Ports first: a second run started beside this one must stop before it clears the first's scratch dir.
  for (const [name, port] of Object.entries(PORTS)) {
    if (name !== 'admin' && await portOpen(port)) throw new Error(`port ${port} (${name}) is already in use (another bench running?): stop whatever listens there`)
  }
  rmSync(TMP, { recursive: true, force: true })
  mkdirSync(TMP, { recursive: true })
  const log = (line: string): void => { process.stdout.write(line + '\n') }
  const notes: Record<string, unknown> = {}

  // The tools: wrk and nginx from Debian, installed when missing (as root).
  const active = [...scenarios]
  if (modes.includes('saturating') || profile) {
    if (loadgenAsked === 'autocannon') loadgen = 'autocannon'
    else if (settings.pipelining !== 1) {
      if (loadgenAsked === 'wrk') throw new Error('BENCH_LOADGEN=wrk: wrk has no pipelining (BENCH_PIPELINING > 1)')
      log('  BENCH_PIPELINING > 1: autocannon drives the saturating runs (wrk has no pipelining)')
    } else {
      const wrk = ensureDebianPackage(WRK, ['wrk'], log)
      if (wrk.ok) loadgen = 'wrk'
      else if (loadgenAsked === 'wrk') throw new Error(`BENCH_LOADGEN=wrk: ${wrk.why}`)
      else {
        notes.wrkMissing = wrk.why
        log(`  no wrk (${wrk.why}): autocannon drives the saturating runs`)
      }
    }
  }
  // The upstreams: nginx (light, so CPU 1 is the generator's), else node:http.
  let upstreamKind: 'nginx' | 'node' = 'node'
  if (upstreamAsked !== 'node') {
    const nginx = ensureDebianPackage(NGINX, NGINX_PACKAGES, log)
    if (nginx.ok) upstreamKind = 'nginx'
    else if (upstreamAsked === 'nginx') throw new Error(`BENCH_UPSTREAM=nginx: ${nginx.why}`)
    else {
      notes.nginxUpstreamMissing = nginx.why
      log(`  no nginx (${nginx.why}): node:http servers (bench/servers/upstream.ts) are the upstreams`)
    }
  }
  if (active.includes('nginx')) {
    const nginx = ensureDebianPackage(NGINX, NGINX_PACKAGES, log)
    if (!nginx.ok) {
      if (listedExplicitly) throw new Error(`scenario nginx: ${nginx.why}`)
      active.splice(active.indexOf('nginx'), 1)
      notes.nginxSkipped = nginx.why
      log(`  no nginx (${nginx.why}): the nginx scenario is left out`)
    }
  }
  const autocannonVersion = (createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version
  const nginxVersion = `nginx ${NGINX_PACKAGES.map(debVersion).find((v) => v !== '') ?? '?'}`
  const tools = {
    saturating: loadgen === 'wrk'
      ? `wrk ${debVersion('wrk')} -t1 -c${settings.connections}, Lua request() per request`
      : `autocannon ${autocannonVersion} -c${settings.connections} -p${settings.pipelining}, setupRequest per request`,
    paced: `bench/open-loop.ts (open loop, ${settings.rate} req/s over ${settings.connections} keep-alive connections, latency from each request's due time)`,
    upstream: upstreamKind === 'nginx'
      ? `${nginxVersion}, one process, return 200 with a ${settings.bodyBytes}-byte JSON body`
      : `bench/servers/upstream.ts (node:http, one process per version), a ${settings.bodyBytes}-byte JSON body`,
    ...(active.includes('nginx') ? { nginx: nginxVersion } : {}),
  }

  log(`weir bench: ${settings.duration} s measured per scenario and mode (${modes.join(' + ')}), after ${settings.processWarmup} s of warm-up for a new proxy process, ${settings.warmup} s for its next mode, ` +
    `${settings.rounds} round(s), ${settings.connections} connections, ${settings.userIds} user ids\n` +
    `  saturating: ${tools.saturating}\n  paced: ${tools.paced}\n  upstreams: ${tools.upstream}\n` +
    (pinned ? `  proxy on CPU ${PROXY_CPU}, upstreams + load generator on CPU ${LOAD_CPU}` : '  taskset not found: not pinned'))
  /** The baseline checkout as measured: its path, commit and any modified src/ or bin/ files. */
  const baselineCode = baseline === null ? null : { path: baseline, ...codeVersion(baseline) }
  if (baselineCode !== null) {
    log(`baseline (weir-baseline): ${baselineCode.path} at ${baselineCode.commit}` +
      (baselineCode.modified.length > 0 ? `, ${baselineCode.modified.length} modified src/bin file(s)` : ''))
  }

  const upstreams = upstreamKind === 'nginx'
    ? [startNginxUpstream(`${TMP}/nginx-upstream`, LOAD_CPU, { stable: PORTS.stable, canary: PORTS.canary }, settings.bodyBytes)]
    : (['stable', 'canary'] as const).map((version) =>
        startChild(`upstream ${version}`, LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS[version]), version, String(settings.bodyBytes)]))
  // One nginx serves both ports; a node:http server each.
  for (const [i, port] of [PORTS.stable, PORTS.canary].entries()) await waitForPort(upstreams[upstreams.length === 1 ? 0 : i] as Child, port)
  const upstreamPids = upstreams.map((u) => u.proc.pid)
  const stableUrl = `http://127.0.0.1:${PORTS.stable}`
  const weirUrl = `http://127.0.0.1:${PORTS.weir}/`
  const weirConfig = writeWeirConfig({
    writer: 'bench/run.ts',
    file: `${TMP}/weir.yaml`,
    stateFile: `${TMP}/state.json`,
    ports: PORTS,
    route: 'shop',
    upstreams: { stable: stableUrl, canary: `http://127.0.0.1:${PORTS.canary}` },
    weights: { stable: 90, canary: 10 },
  })
  // weir-accesslog: the same config with accessLog: on, its stdout appended to a file as an operator would.
  const accessLogConfig = writeWeirConfig({
    writer: 'bench/run.ts (weir-accesslog)',
    file: `${TMP}/weir-accesslog.yaml`,
    stateFile: `${TMP}/state-accesslog.json`,
    ports: PORTS,
    route: 'shop',
    upstreams: { stable: stableUrl, canary: `http://127.0.0.1:${PORTS.canary}` },
    weights: { stable: 90, canary: 10 },
    accessLog: true,
    validate: true,
  })
  const accessLogFile = `${TMP}/access.log`

  let cookie: string | undefined

  interface Round { saturating: Saturating | null; paced: Paced | null; peakRssKb: number | null }

  /** Every mode against one URL (and proxy, whose VmHWM is read at the end: its peak RSS over all of them). */
  async function measureModes (url: string, mode: LoadSpec['mode'], withCookie: string | undefined, proxyPid: number | undefined): Promise<Round> {
    // Paced first: its long warm-up is the new process's (processWarmup, above).
    const paced = modes.includes('paced') ? await pacedRun(url, mode, withCookie, proxyPid, upstreamPids) : null
    const saturating = modes.includes('saturating') ? await warmAndMeasure(url, mode, withCookie, proxyPid, upstreamPids) : null
    return { saturating, paced, peakRssKb: statusKb(proxyPid, 'VmHWM') }
  }

  /** Starts a non-weir proxy alone on PROXY_CPU; its port. `probe`: the tail probe's node arguments and environment. */
  async function startProxy (id: 'bare' | 'floor' | 'nginx', probe?: TailProbe): Promise<[Child, number]> {
    const port = PORTS[id]
    const child = id === 'nginx'
      ? startNginx(`${TMP}/nginx`, PROXY_CPU, port, stableUrl)
      : startChild(id, PROXY_CPU, [...probe?.nodeArgs ?? [], id === 'bare' ? 'bench/servers/bare-plugin.ts' : 'bench/servers/undici-floor.ts', String(port), stableUrl],
        probe === undefined ? {} : { env: probe.env })
    await waitForPort(child, port)
    return [child, port]
  }

  /** Starts the scenario's proxy alone on PROXY_CPU, measures every mode (each warmed up), stops it. */
  async function measure (id: ScenarioId): Promise<Round> {
    if (id === 'direct') return measureModes(`${stableUrl}/`, 'user-id', undefined, undefined)
    if (id === 'bare' || id === 'floor' || id === 'nginx') {
      const [proxy, port] = await startProxy(id)
      try {
        return await measureModes(`http://127.0.0.1:${port}/`, 'user-id', undefined, proxy.proc.pid)
      } finally {
        await stopChild(proxy)
      }
    }
    if (id === 'weir-accesslog') {
      const fd = openSync(accessLogFile, 'a')
      const before = statSync(accessLogFile).size
      const weir = await startWeir(accessLogConfig, [], 'weir', { stdout: fd })
      // The child holds its own copy of the descriptor.
      closeSync(fd)
      try {
        return await measureModes(weirUrl, 'user-id', undefined, weir.proc.pid)
      } finally {
        await stopChild(weir)
        const logged = statSync(accessLogFile).size - before
        const bytes = (notes.accessLogBytes as number[] | undefined) ?? []
        notes.accessLogBytes = [...bytes, logged]
        log(`  (access log: ${(logged / 1e6).toFixed(1)} MB written to ${accessLogFile})`)
      }
    }
    const weir = await startWeir(weirConfig, [], id === 'weir-norecord' || id === 'weir-baseline' ? id : 'weir')
    try {
      // The routing check is of this checkout's weir, not the baseline's.
      if (notes.canaryShareOf2000Users === undefined && id !== 'weir-baseline') {
        const share = await canaryShare(weirUrl, 2000)
        notes.canaryShareOf2000Users = share
        log(`  (routing check: ${(share * 100).toFixed(1)} % of 2000 user ids went to canary, weights 90/10)`)
      }
      if (id === 'weir-anon') {
        if (notes.anonymousBucketsOf50 === undefined) {
          const buckets = await anonymousCookies(weirUrl, 50)
          notes.anonymousBucketsOf50 = buckets
          log(`  (anonymous check: 50 requests without user id or cookie, 50 Set-Cookie, ${buckets} distinct buckets)`)
        }
        return await measureModes(weirUrl, 'anon', undefined, weir.proc.pid)
      }
      if (id !== 'weir-cookie') return await measureModes(weirUrl, 'user-id', undefined, weir.proc.pid)
      // The cookie secret is fixed in the config, so one cookie stays valid across weir restarts.
      cookie ??= await stableBucketCookie(weirUrl)
      notes.bucketCookie = cookie
      return await measureModes(weirUrl, 'cookie', cookie, weir.proc.pid)
    } finally {
      await stopChild(weir)
    }
  }

  const runs = new Map<ScenarioId, ScenarioRuns>(active.map((id) => [id, { id, label: LABELS[id], saturating: [], paced: [], peakRssKb: [] }]))
  for (let round = 0; round < settings.rounds; round++) {
    if (settings.rounds > 1) log(`round ${round + 1}/${settings.rounds}`)
    // Rotating the order spreads slow drifts (other load on the machine) over all scenarios.
    const order = active.map((_, i) => active[(i + round) % active.length] as ScenarioId)
    for (const id of order) {
      const r = await measure(id)
      const into = runs.get(id) as ScenarioRuns
      const m = r.saturating
      if (m !== null) {
        into.saturating.push(m)
        log(`  ${LABELS[id].padEnd(34)} ${Math.round(m.reqPerSec).toString().padStart(7)} req/s  p50 ${m.latencyP50} ms  p99 ${m.latencyP99} ms` +
          `  proxy CPU ${m.proxyCpuPct ?? '-'} %  CPU busy ${JSON.stringify(m.cpuBusyPct)}` +
          (m.errors + m.non2xx + m.timeouts > 0 ? `  ERRORS ${m.errors} non2xx ${m.non2xx} timeouts ${m.timeouts}` : ''))
      }
      const p = r.paced
      if (p !== null) {
        into.paced.push(p)
        log(`  ${(m === null ? LABELS[id] : '').padEnd(34)} paced ${p.reqPerSec} req/s: p50 ${p.latencyP50} p99 ${p.latencyP99} p99.9 ${p.latencyP999} ms` +
          ` (sender late p99 ${p.tickLagP99} ms, due → write p99 ${p.sendLagP99} ms, peak in flight ${p.peakInFlight})  proxy CPU ${p.proxyCpuPct ?? '-'} %` +
          (p.errors + p.non2xx + p.timeouts > 0 ? `  ERRORS ${p.errors} non2xx ${p.non2xx} unanswered ${p.timeouts}` : ''))
      }
      if (r.peakRssKb !== null) into.peakRssKb.push(r.peakRssKb)
    }
  }

  /**
   * BENCH_TAIL: one more paced run of each Node proxy of the run, with bench/servers/tail-probe.ts
   * loaded into it: what stalled its event loop over the measured window.
   */
  async function tailRuns (): Promise<TailRun[]> {
    mkdirSync(`${TMP}/tail`, { recursive: true })
    const out: TailRun[] = []
    for (const id of active.filter((s): s is TailScenario => (TAIL_SCENARIOS as readonly string[]).includes(s))) {
      const file = `${TMP}/tail/${id}.json`
      rmSync(file, { force: true })
      const probe: TailProbe = { nodeArgs: ['--import', './bench/servers/tail-probe.ts'], env: { WEIR_TAIL_PROBE_OUT: file } }
      const [child, url] = id === 'bare' || id === 'floor'
        ? await startProxy(id, probe).then(([c, port]) => [c, `http://127.0.0.1:${port}/`] as const)
        : [await startWeir(weirConfig, probe.nodeArgs, 'weir', { env: probe.env }), weirUrl] as const
      try {
        const mode = id === 'weir-anon' ? 'anon' : id === 'weir-cookie' ? 'cookie' : 'user-id'
        if (mode === 'cookie') cookie ??= await stableBucketCookie(weirUrl)
        const pid = child.proc.pid
        const paced = await pacedRun(url, mode, mode === 'cookie' ? cookie : undefined, pid, upstreamPids, () => { if (pid !== undefined) process.kill(pid, 'SIGUSR2') })
        const deadline = Date.now() + 5000
        while (!existsSync(file) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
        if (!existsSync(file)) throw new Error(`the tail probe in ${id} wrote nothing to ${file}:\n${child.stderr()}`)
        const run: TailRun = { id, label: LABELS[id], paced, probe: JSON.parse(readFileSync(file, 'utf8')) as TailProbeResult }
        out.push(run)
        log(formatTailRun(run))
      } finally {
        await stopChild(child)
      }
    }
    return out
  }

  let tailReport: TailRun[] | null = null
  if (tail) {
    log('\ntail probe (BENCH_TAIL): one paced run of each Node proxy with an event-loop delay histogram and every GC, over the measured window')
    tailReport = await tailRuns()
  }

  let profiles: ProfileReport | null = null
  if (profile) profiles = await profileRuns(stableUrl, weirConfig, upstreamPids)

  for (const upstream of upstreams) await stopChild(upstream)

  const rows = buildRows([...runs.values()])
  process.stdout.write('\n' + formatTable(rows, tools.saturating, settings.rate))
  const warnings = checks(rows, settings.rate)
  const steadyNote = roundsNote(rows)
  if (steadyNote !== null) log(steadyNote)
  for (const w of warnings) log(`WARNING: ${w}`)
  const directPaced = rows.find((r) => r.id === 'direct')?.paced
  if (directPaced != null) {
    log(`open-loop sender's own lateness (its timer ticks after the due time), direct: p50 ${directPaced.tickLagP50Ms} ms, p99 ${directPaced.tickLagP99Ms} ms; ` +
      'every paced latency includes it, +p50 vs direct takes direct\'s p50 off')
  }

  const targets = issueTargets(rows)
  if (targets.length > 0) log('\n' + formatTargets(targets))
  const saturatingRuns = new Map([...runs].map(([id, r]) => [id, r.saturating]))
  const recording = recordingCost(saturatingRuns)
  if (recording !== null) {
    log(`\nrequest metrics + rolling stats (weir-user) vs recordRequests: false (weir-norecord), ${recording.rounds} paired round(s):\n` +
      `  req/s ratio, median of rounds:        ${recording.reqPerSecRatio.toFixed(3)} (rounds ${recording.roundRatios.map((r) => r.toFixed(3)).join(' / ')})\n` +
      `  same, rounds with steal <= ${STEADY_STEAL_PCT} %:       ${recording.steadyReqPerSecRatio?.toFixed(3) ?? '-'} (rounds ${recording.steadyRounds.map((i) => i + 1).join(', ') || 'none'})\n` +
      `  req per proxy CPU-second ratio:       ${recording.cpuRatio?.toFixed(3) ?? '-'} (${recording.usPerReq.record} vs ${recording.usPerReq.norecord} µs CPU/req, medians)\n` +
      `  recording costs at most 5 % of throughput: ${(recording.steadyReqPerSecRatio ?? recording.reqPerSecRatio) >= 0.95 ? 'HOLDS' : 'MISSED'} ` +
      `by req/s${recording.steadyReqPerSecRatio === null ? '' : ' (steady rounds)'}, ` +
      `${recording.cpuRatio === null ? '-' : recording.cpuRatio >= 0.95 ? 'HOLDS' : 'MISSED'} by CPU`)
  }
  const accessLog = accessLogCost(saturatingRuns)
  if (accessLog !== null) {
    const rounds = (list: (number | null)[]): string => list.map((r) => fmt(r, 3)).join(' / ')
    log(`\naccessLog: on, to a file (weir-accesslog) vs off (weir-user), ${accessLog.rounds} paired round(s); weir-accesslog ÷ weir-user:\n` +
      `  req/s ratio, median of rounds:        ${accessLog.reqPerSecRatio.toFixed(3)} (rounds ${rounds(accessLog.roundRatios)})\n` +
      `  same, rounds with steal <= ${STEADY_STEAL_PCT} %:       ${fmt(accessLog.steadyReqPerSecRatio, 3)} (rounds ${accessLog.steadyRounds.map((i) => i + 1).join(', ') || 'none'})\n` +
      `  µs CPU/req ratio, median of rounds:   ${fmt(accessLog.cpuPerReqRatio, 3)} (rounds ${rounds(accessLog.roundCpuPerReqRatios)}; ` +
      `${accessLog.usPerReq.on} vs ${accessLog.usPerReq.off} µs CPU/req, medians; above 1: the access log costs CPU)`)
  }
  const vsBaseline = baselineComparison(saturatingRuns)
  if (vsBaseline !== null && baselineCode !== null) {
    const rounds = (list: (number | null)[]): string => list.map((r) => fmt(r, 3)).join(' / ')
    log(`\nweir-user (this checkout) vs weir-baseline (${baselineCode.path} at ${baselineCode.commit}), same config and load, ` +
      `${vsBaseline.rounds} paired round(s); weir-user ÷ weir-baseline:\n` +
      `  req/s ratio, median of rounds:        ${vsBaseline.reqPerSecRatio.toFixed(3)} (rounds ${rounds(vsBaseline.roundRatios)})\n` +
      `  same, rounds with steal <= ${STEADY_STEAL_PCT} %:       ${fmt(vsBaseline.steadyReqPerSecRatio, 3)} (rounds ${vsBaseline.steadyRounds.map((i) => i + 1).join(', ') || 'none'})\n` +
      `  µs CPU/req ratio, median of rounds:   ${fmt(vsBaseline.cpuPerReqRatio, 3)} (rounds ${rounds(vsBaseline.roundCpuPerReqRatios)}; ` +
      `${vsBaseline.usPerReq.user} vs ${vsBaseline.usPerReq.baseline} µs CPU/req, medians; below 1: weir-user spends less CPU per request)`)
  }
  const floorRow = rows.find((r) => r.id === 'floor')
  if (floorRow?.ratioVsBare != null) log(`undici floor vs bare plugin: ${floorRow.ratioVsBare.toFixed(2)}x`)
  if (profiles !== null) {
    log(`\nCPU profile of weir, user-id scenario (${profiles.weir.reqPerSec} req/s while profiling; ${profiles.weir.file}):`)
    log(formatProfile(profiles.weir.summary))
    log(`\nweir vs bare @fastify/http-proxy, per request (both profiled the same way; bare: ${profiles.bare.file}):`)
    log(formatComparison(profiles.comparison))
  }

  const results = {
    date: new Date().toISOString(),
    command: commandLine('npm run bench'),
    machine: machine(),
    code: codeVersion(),
    ...(baselineCode !== null ? { baseline: baselineCode } : {}),
    settings: { ...settings, scenarios: active, modes, loadgen, upstream: upstreamKind },
    tools,
    rows,
    warnings,
    targets,
    notes,
    ...(recording !== null ? { recordingCost: recording } : {}),
    ...(accessLog !== null ? { accessLogCost: accessLog } : {}),
    ...(vsBaseline !== null ? { baselineComparison: vsBaseline } : {}),
    ...(tailReport !== null ? { tail: tailReport } : {}),
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
  log('\nwrote bench/results/latest.json')
}

runBench('bench', main)
