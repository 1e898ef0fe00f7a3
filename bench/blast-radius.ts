// `npm run bench:blast`: the blast radius of a failing canary. weir takes a fixed request rate, a
// rollout puts the canary at 5 %, then the canary answers every request 500; measures how long
// the fast guard takes to revert it and how many client requests failed meanwhile, round by round.
// With `--replicas 3`, three replicas share one etcd (a fleet) and the load is spread over them.
// Results: bench/results/blast-latest.json (the settings, the summary and every round).

import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LOAD_CPU, pinned, portOpen, PROXY_CPU, ROOT, runBench, sleep, startChild, startCommand, startLoad, stopChild, waitForPort, type Child } from './children.ts'
import { ensureDebianPackage } from './debian.ts'
import { busyStealPct, cpuTicks, type Ticks } from './cpu-ticks.ts'
import { codeVersion, commandLine, machine } from './machine.ts'
import { median } from './median.ts'
import type { RateLoadResult } from './rate-load.ts'
import { setting } from './settings.ts'
import { table } from './table.ts'
import { writeWeirConfig } from './weir-config.ts'

const TMP = '/tmp/weir-bench-blast'

// Apart from bench/run.ts's, bench/shadow.ts's and bench/fleet.ts's ports, so none of them collide.
const PORTS = { weir: 18280, admin: 19921, stable: 18281, canary: 18282, etcd: 18389, etcdPeer: 18390 }
/** Replica i (from 0) listens on these. */
const replicaPorts = (i: number): { weir: number; admin: number } => ({ weir: i === 0 ? PORTS.weir : 18282 + i, admin: PORTS.admin + i })
const ETCD = '/usr/bin/etcd'
/** The issue's target: the canary reverted within this long of its first failure. */
const TARGET_MS = 1000

// ---- settings: flags win over env vars, env vars over defaults ----------------------------

const { values: flags } = parseArgs({
  options: {
    rate: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    rounds: { type: 'string' },
    percent: { type: 'string' },
    replicas: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})

if (flags.help === true) {
  process.stdout.write(`usage: npm run bench:blast [-- --rate N --duration S --connections N --rounds N --percent P --replicas N]
env: BENCH_RATE (1000 req/s), BENCH_DURATION (12 s of load per round), BENCH_CONNECTIONS (20),
     BENCH_ROUNDS (5, each with fresh processes), BENCH_PERCENT (5: the canary's step),
     BENCH_REPLICAS (1; more: a fleet on one etcd, the load spread evenly over the replicas),
     BENCH_ROLLOUT_AT (3: seconds into the load the rollout starts),
     BENCH_FLIP_AFTER (3: seconds after the rollout the canary starts failing)
`)
  process.exit(0)
}

const settings = {
  rate: setting(flags.rate, 'BENCH_RATE', 1000),
  duration: setting(flags.duration, 'BENCH_DURATION', 12),
  connections: setting(flags.connections, 'BENCH_CONNECTIONS', 20),
  rounds: Math.round(setting(flags.rounds, 'BENCH_ROUNDS', 5)),
  percent: setting(flags.percent, 'BENCH_PERCENT', 5),
  replicas: Math.round(setting(flags.replicas, 'BENCH_REPLICAS', 1)),
  rolloutAt: setting(undefined, 'BENCH_ROLLOUT_AT', 3),
  flipAfter: setting(undefined, 'BENCH_FLIP_AFTER', 3),
  userIds: 10_000,
}
if (settings.percent > 100) throw new Error('BENCH_PERCENT: at most 100')
if (settings.replicas < 1 || settings.replicas > 5) throw new Error('BENCH_REPLICAS: 1 to 5')
/** Seconds of load left after the flip: the revert has this long to happen. */
const afterFlip = settings.duration - settings.rolloutAt - settings.flipAfter
if (afterFlip < 2) throw new Error(`BENCH_DURATION (${settings.duration}) must leave at least 2 s of load after the flip (at ${settings.rolloutAt + settings.flipAfter} s)`)

/** The rollout every round starts: one step, and an interval long enough that only the fast guard acts. */
const POLICY = { steps: [settings.percent], interval: '30s', analysis: { minRequests: 20 } }

// weir's admin API is open to loopback callers only when it has no token: a token in the
// environment would be picked up by weir (the config falls back to it) and refuse our calls.
delete process.env.WEIR_ADMIN_TOKEN

// ---- /proc/stat: was the machine ours during the round? ------------------------------------

/** "busy/steal" % of each CPU between two readings. */
function cpuShares (a: Ticks[], b: Ticks[]): string[] {
  return b.map((after, i) => {
    const shares = busyStealPct(a[i], after)
    return shares === null ? '-' : `${shares[0]}/${shares[1]}`
  })
}

// ---- weir, the upstreams, the admin API -----------------------------------------------------

/** The guard's settings, from the first POST .../rollout's answer. */
let guard: { maxErrorRate: number; minRequests: number } | null = null

async function call<T> (port: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(5000),
  })
  return { status: res.status, json: await res.json() as T }
}

interface RolloutBody {
  phase: string
  weights: Record<string, number>
  rollout: null | { startedAt: string; finishedAt: string | null; reason: string | null; policy: { guard: { maxErrorRate: number; minRequests: number } } }
}

interface WeirEvent { time: string; actor: string; action: string; route?: string; replica?: string; reason?: { check?: string; value?: number; threshold?: number; detail?: string } }

interface CanaryStats { ok: number; failed: number; flippedAt: number | null; firstFailedAt: number | null; lastFailedAt: number | null; failedAt: number[] }

// ---- one round ---------------------------------------------------------------------------------

interface Round {
  round: number
  /** The rollout's start (weir's clock) and the flip (the canary's), epoch ms. */
  startedAt: number
  flippedAt: number
  /** Requests the canary answered 200 at its step, before the flip, and per second. */
  canaryOk: number
  canaryRate: number
  /** From the flip command to the canary's first 500. */
  flipToFirstFailMs: number | null
  /** The rollout.failed event (null when the guard did not revert within the run). */
  event: WeirEvent | null
  /** The guard rule the event names: `in-a-row` or `error-rate` (the error rate is tested first, so it is named when both hold). */
  rule: string | null
  /** From the first 500 to the guard's decision (the rollout's finishedAt: the tick that tripped). */
  decideMs: number | null
  /** From the first 500 to the rollout.failed event (appended once the reverted weights are on disk and in force). */
  revertMs: number | null
  /** From the decision to the event: the state write. */
  writeMs: number | null
  /** From the first 500 to the guard's minRequests-th (20th) 500: when the in-a-row rule can hold at the earliest. */
  nthFailMs: number | null
  /** From the first 500 to this script seeing phase `failed` (polled every 50 ms). */
  seenMs: number | null
  /** From the event to the canary's last 500: how long the other replicas took to follow (a fleet). */
  lastFailAfterEventMs: number | null
  /** 500s the canary sent in all, and those sent after the decision and after the event (already on their way to it). */
  failed: number
  failedAfterDecision: number
  failedAfterEvent: number
  phaseAfter: string
  canaryWeightAfter: number | null
  load: RateLoadResult
  /** "busy/steal" % of CPU 0 (weir) and CPU 1 (upstreams + load) over the round. */
  cpu: string[]
}

/** The load generators' results as one client's: counts added, rates added, latencies at their worst. */
function combined (results: RateLoadResult[]): RateLoadResult {
  const sum = (f: (r: RateLoadResult) => number): number => results.reduce((a, r) => a + f(r), 0)
  const worst = (f: (r: RateLoadResult) => number): number => Math.max(...results.map(f))
  return {
    requests: sum((r) => r.requests),
    reqPerSec: Math.round(sum((r) => r.reqPerSec)),
    durationSec: worst((r) => r.durationSec),
    latencyP50: worst((r) => r.latencyP50),
    latencyP90: worst((r) => r.latencyP90),
    latencyP99: worst((r) => r.latencyP99),
    latencyP999: worst((r) => r.latencyP999),
    latencyMax: worst((r) => r.latencyMax),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    non2xx: sum((r) => r.non2xx),
    different: sum((r) => r.different),
    setCookie: sum((r) => r.setCookie),
    samples: results.flatMap((r) => r.samples).slice(0, 10),
    loadCpuMs: sum((r) => r.loadCpuMs),
  }
}

async function measure (round: number): Promise<Round> {
  const dir = `${TMP}/round-${round + 1}`
  mkdirSync(dir, { recursive: true })
  const started: Child[] = []
  try {
    const stable = startChild('upstream stable', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.stable), 'stable'])
    started.push(stable)
    const canary = startChild('upstream canary', LOAD_CPU, ['bench/servers/flip-upstream.ts', String(PORTS.canary), 'canary'])
    started.push(canary)
    await waitForPort(stable, PORTS.stable)
    await waitForPort(canary, PORTS.canary)
    const fleet = settings.replicas > 1
    const etcdUrl = `http://127.0.0.1:${PORTS.etcd}`
    if (fleet) {
      const peer = `http://127.0.0.1:${PORTS.etcdPeer}`
      const etcd = startCommand('etcd', LOAD_CPU, ETCD, ['--name', 'blast', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `blast=${peer}`, '--log-level', 'error'])
      started.push(etcd)
      await waitForPort(etcd, PORTS.etcd)
    }
    for (let i = 0; i < settings.replicas; i++) {
      const ports = replicaPorts(i)
      const config = writeWeirConfig({
        writer: 'bench/blast-radius.ts',
        file: `${dir}/weir-${i + 1}.yaml`,
        stateFile: `${dir}/state-${i + 1}.json`,
        ports,
        route: 'app',
        upstreams: { stable: `http://127.0.0.1:${PORTS.stable}`, canary: `http://127.0.0.1:${PORTS.canary}` },
        weights: { stable: 100, canary: 0 },
        ...(fleet ? { etcd: { url: etcdUrl, prefix: `/weir-bench-blast-${round + 1}/`, fleetId: `replica-${i + 1}` } } : {}),
        validate: round === 0 && i === 0,
      })
      const weir = startChild(fleet ? `weir replica-${i + 1}` : 'weir', PROXY_CPU, ['bin/weir.js', 'serve', '--config', config])
      started.unshift(weir)
      await waitForPort(weir, ports.weir)
      await waitForPort(weir, ports.admin)
    }

    const cpuBefore = cpuTicks()
    // A load balancer in front of a fleet spreads the clients evenly: one generator per replica.
    const loads = Array.from({ length: settings.replicas }, (_, i) => startLoad('bench/rate-load.ts', {
      url: `http://127.0.0.1:${replicaPorts(i).weir}/`,
      connections: Math.ceil(settings.connections / settings.replicas),
      rate: settings.rate / settings.replicas,
      duration: settings.duration,
      userIds: settings.userIds,
    }))
    const loadResult = Promise.all(loads.map((l) => l.result)).then(combined)
    let loadDone = false
    void loadResult.then(() => { loadDone = true }, () => { loadDone = true })
    await Promise.race([Promise.all(loads.map((l) => l.started)), sleep(15_000)])
    const loadStart = Date.now()

    await sleep(settings.rolloutAt * 1000)
    const post = await call<RolloutBody>(PORTS.admin, 'POST', '/api/v1/routes/app/rollout', POLICY)
    if (post.status !== 201) throw new Error(`POST .../rollout answered ${post.status}: ${JSON.stringify(post.json)}`)
    if (post.json.weights.canary !== settings.percent) throw new Error(`the rollout put the canary at ${post.json.weights.canary} %, expected ${settings.percent} %`)
    const startedAt = Date.parse(post.json.rollout?.startedAt ?? '')
    // The guard's settings as weir resolved them (the policy leaves them at their defaults).
    guard = post.json.rollout?.policy.guard ?? null
    const nth = guard?.minRequests ?? 20

    await sleep(loadStart + (settings.rolloutAt + settings.flipAfter) * 1000 - Date.now())
    const flip = await call<{ flippedAt: number }>(PORTS.canary, 'POST', '/__flip')
    const flippedAt = flip.json.flippedAt

    // Bounded by the load: a guard that has not reverted by the end of the run did not make it.
    let seenAt: number | null = null
    let last: RolloutBody | null = null
    // loadDone is set by the load's completion callback, which runs while this loop awaits.
    // eslint-disable-next-line no-unmodified-loop-condition
    while (!loadDone) {
      last = (await call<RolloutBody>(PORTS.admin, 'GET', '/api/v1/routes/app/rollout')).json
      if (last.phase === 'failed') {
        seenAt = Date.now()
        break
      }
      await sleep(50)
    }
    const result = await loadResult
    const cpu = cpuShares(cpuBefore, cpuTicks())

    const stats = (await call<CanaryStats>(PORTS.canary, 'GET', '/__stats')).json
    last = (await call<RolloutBody>(PORTS.admin, 'GET', '/api/v1/routes/app/rollout')).json
    const events = (await call<{ events: WeirEvent[] }>(PORTS.admin, 'GET', '/api/v1/events')).json.events
    const event = events.find((e) => e.action === 'rollout.failed' && e.actor === 'controller') ?? null
    const eventAt = event === null ? null : Date.parse(event.time)
    const decidedAt = event === null || last.rollout?.finishedAt == null ? null : Date.parse(last.rollout.finishedAt)
    const first = stats.firstFailedAt
    const since = (t: number | null): number | null => (t === null || first === null ? null : t - first)
    const detail = event?.reason?.detail ?? ''
    return {
      round,
      startedAt,
      flippedAt,
      canaryOk: stats.ok,
      canaryRate: Math.round((stats.ok / Math.max(0.001, (flippedAt - startedAt) / 1000)) * 10) / 10,
      flipToFirstFailMs: first === null ? null : first - flippedAt,
      event,
      rule: event === null ? null : /in a row/.test(detail) ? 'in-a-row' : /error rate/.test(detail) ? 'error-rate' : (event.reason?.check ?? '?'),
      decideMs: since(decidedAt),
      revertMs: since(eventAt),
      writeMs: eventAt === null || decidedAt === null ? null : eventAt - decidedAt,
      nthFailMs: first === null || stats.failedAt.length < nth ? null : (stats.failedAt[nth - 1] as number) - first,
      seenMs: since(seenAt),
      lastFailAfterEventMs: eventAt === null || stats.lastFailedAt === null ? null : stats.lastFailedAt - eventAt,
      failed: stats.failed,
      failedAfterDecision: decidedAt === null ? 0 : stats.failedAt.filter((t) => t > decidedAt).length,
      failedAfterEvent: eventAt === null ? 0 : stats.failedAt.filter((t) => t > eventAt).length,
      phaseAfter: last.phase,
      canaryWeightAfter: last.weights.canary ?? null,
      load: result,
      cpu,
    }
  } finally {
    // weir first, so it does not count the upstreams going away as errors.
    for (const child of started) await stopChild(child)
  }
}

// ---- report -------------------------------------------------------------------------------------

const show = (n: number | null): string => (n === null ? '-' : String(Math.round(n * 10) / 10))

/** One figure of every round that has it. */
const figures = (rounds: readonly Round[], f: (r: Round) => number | null): number[] => rounds.flatMap((r) => { const v = f(r); return v === null ? [] : [v] })

/** What the results file keeps of the rounds: each figure, and across rounds median and max. */
function summarize (rounds: Round[]): Record<string, unknown> {
  const of = (f: (r: Round) => number | null): number[] => figures(rounds, f)
  const spread = (values: number[]): { median: number; max: number } | null =>
    values.length === 0 ? null : { median: Math.round((median(values) ?? 0) * 10) / 10, max: Math.max(...values) }
  const reverted = rounds.filter((r) => r.revertMs !== null)
  return {
    reverted: reverted.length,
    rounds: rounds.length,
    targetMs: TARGET_MS,
    holds: reverted.length === rounds.length && reverted.every((r) => (r.revertMs as number) <= TARGET_MS),
    revertMs: spread(of((r) => r.revertMs)),
    decideMs: spread(of((r) => r.decideMs)),
    writeMs: spread(of((r) => r.writeMs)),
    ...(settings.replicas > 1 ? { lastFailAfterEventMs: spread(of((r) => r.lastFailAfterEventMs)) } : {}),
    failed: spread(of((r) => r.failed)),
    clientNon2xx: spread(of((r) => r.load.non2xx)),
    clientErrors: rounds.reduce((a, r) => a + r.load.errors + r.load.timeouts, 0),
    canaryReqPerSec: spread(of((r) => r.canaryRate)),
    rules: [...new Set(rounds.map((r) => r.rule ?? 'none'))],
  }
}

function report (rounds: Round[]): void {
  process.stdout.write('\n' + table(
    ['round', 'canary req/s', 'canary 200s', 'flip→1st 500 ms', 'guard rule', `${guard?.minRequests ?? 20}th 500 ms`, 'decided ms', 'revert ms', 'write ms', 'seen ms',
      '500s sent', 'after decision', 'after event', 'last 500 after event ms', 'reverted by', 'client non-2xx', 'client errors', 'client req/s', 'p99 ms', 'phase / canary %', 'CPU0 / CPU1 busy/steal %'],
    rounds.map((r) => [
      String(r.round + 1), String(r.canaryRate), String(r.canaryOk), show(r.flipToFirstFailMs), r.rule ?? 'NOT REVERTED',
      show(r.nthFailMs), show(r.decideMs), show(r.revertMs), show(r.writeMs), show(r.seenMs),
      String(r.failed), String(r.failedAfterDecision), String(r.failedAfterEvent), show(r.lastFailAfterEventMs), r.event?.replica ?? '-',
      String(r.load.non2xx), String(r.load.errors + r.load.timeouts), String(r.load.reqPerSec), String(r.load.latencyP99),
      `${r.phaseAfter} / ${show(r.canaryWeightAfter)}`, r.cpu.slice(0, 2).join(' · '),
    ])))
  const reverted = rounds.filter((r) => r.revertMs !== null)
  const of = (f: (r: Round) => number | null): number[] => figures(rounds, f)
  const stat = (values: number[]): string => values.length === 0 ? '-' : `median ${show(median(values))}, max ${Math.max(...values)}`
  process.stdout.write('\n' +
    `revert time, first 500 → rollout.failed event (ms): ${stat(of((r) => r.revertMs))}\n` +
    `  of which first 500 → guard decision: ${stat(of((r) => r.decideMs))}; decision → event (state write): ${stat(of((r) => r.writeMs))}\n` +
    (settings.replicas > 1 ? `  event → the canary's last 500 (the other replicas following through etcd's watch): ${stat(of((r) => r.lastFailAfterEventMs))}\n` : '') +
    `failed requests, 500s the canary sent: ${stat(of((r) => r.failed))}; non-2xx the client saw: ${stat(of((r) => r.load.non2xx))}\n` +
    `canary at ${settings.percent} %: ${stat(of((r) => r.canaryRate))} req/s before the flip\n` +
    // The guard tests the error rate first: when both rules hold at the same tick, the event names the error rate.
    `guard rule named by the event: ${[...new Set(rounds.map((r) => r.rule ?? 'none'))].join(', ')}\n` +
    `client non-2xx = canary 500s in every round: ${rounds.every((r) => r.load.non2xx === r.failed) ? 'yes' : 'NO'}; ` +
    `client errors/timeouts: ${rounds.reduce((a, r) => a + r.load.errors + r.load.timeouts, 0)}\n`)
  const example = rounds.find((r) => r.event !== null)?.event
  if (example !== undefined && example !== null) process.stdout.write(`event (round ${(rounds.find((r) => r.event === example)?.round ?? 0) + 1}): ${JSON.stringify({ time: example.time, actor: example.actor, action: example.action, reason: example.reason })}\n`)
  const worst = reverted.length === 0 ? null : Math.max(...reverted.map((r) => r.revertMs as number))
  const holds = reverted.length === rounds.length && worst !== null && worst <= TARGET_MS
  process.stdout.write(`\n"a failing canary is reverted within ${TARGET_MS / 1000} s": ${holds ? 'HOLDS' : 'DOES NOT HOLD'} ` +
    `(${reverted.length} of ${rounds.length} rounds reverted${worst === null ? '' : `, slowest ${worst} ms`})\n`)
}

// ---- main -------------------------------------------------------------------------------------

async function main (): Promise<void> {
  rmSync(TMP, { recursive: true, force: true })
  mkdirSync(TMP, { recursive: true })
  const ports: Record<string, number> = { stable: PORTS.stable, canary: PORTS.canary }
  for (let i = 0; i < settings.replicas; i++) Object.assign(ports, { [`weir ${i + 1}`]: replicaPorts(i).weir, [`admin ${i + 1}`]: replicaPorts(i).admin })
  if (settings.replicas > 1) {
    Object.assign(ports, { etcd: PORTS.etcd, 'etcd peer': PORTS.etcdPeer })
    const installed = ensureDebianPackage(ETCD, ['etcd-server'], (line) => process.stdout.write(line + '\n'))
    if (!installed.ok) throw new Error(`etcd is needed for --replicas ${settings.replicas}: ${installed.why}`)
  }
  for (const [name, port] of Object.entries(ports)) {
    if (await portOpen(port)) throw new Error(`port ${port} (${name}) is already in use: stop whatever listens there`)
  }
  const m = machine()
  const code = codeVersion()
  process.stdout.write(`weir blast-radius bench: ${settings.replicas === 1 ? 'one weir' : `${settings.replicas} replicas on one etcd, the load spread evenly over them`}, ` +
    `${settings.rate} req/s over ${settings.connections} connections for ${settings.duration} s per round, ` +
    `rollout ${JSON.stringify(POLICY)} at ${settings.rolloutAt} s, canary fails every request from ${settings.rolloutAt + settings.flipAfter} s; ` +
    `${settings.rounds} round(s), about ${Math.ceil((settings.rounds * (settings.duration + 5)) / 60)} min; ` +
    (pinned ? `weir on CPU ${PROXY_CPU}, upstreams + autocannon on CPU ${LOAD_CPU}` : 'taskset not found: not pinned') +
    `\nmachine: ${m.nproc} CPUs, ${m.cpuModel}, node ${m.node}, commit ${code.commit}${code.modified.length === 0 ? '' : ' (src/ modified)'}\n`)

  const rounds: Round[] = []
  for (let round = 0; round < settings.rounds; round++) {
    const r = await measure(round)
    rounds.push(r)
    process.stdout.write(`  round ${round + 1}/${settings.rounds}: ${r.rule === null ? 'NOT reverted' : `reverted by the guard (${r.rule})`}` +
      `  revert ${show(r.revertMs)} ms (decided ${show(r.decideMs)} ms, write ${show(r.writeMs)} ms)  500s ${r.failed} (client non-2xx ${r.load.non2xx})` +
      `  canary ${r.canaryRate} req/s, ${r.canaryOk} ok before the flip  client ${r.load.reqPerSec} req/s\n`)
  }
  report(rounds)
  mkdirSync(`${ROOT}bench/results`, { recursive: true })
  writeFileSync(`${ROOT}bench/results/blast-latest.json`, JSON.stringify({
    command: commandLine('npm run bench:blast'),
    machine: m,
    code,
    settings: { ...settings, policy: POLICY, guard },
    summary: summarize(rounds),
    // The load's sample answers are left out: they are for the console's eyes.
    rounds: rounds.map((r) => ({ ...r, load: { ...r.load, samples: undefined } })),
  }, null, 2) + '\n')
  process.stdout.write('wrote bench/results/blast-latest.json\n')
}

runBench('bench:blast', main)
