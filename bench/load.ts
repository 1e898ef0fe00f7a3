// Load generator for bench/run.ts: one autocannon run (programmatic API, so every request can
// carry its own x-user-id) in its own process so it can be pinned to a CPU. Reads a LoadSpec
// as JSON from argv[2], prints "start", then one LoadResult as JSON on stdout. Also the user-id
// pool and the child side of that protocol, shared with bench/rate-load.ts.

import { createRequire } from 'node:module'

export interface LoadSpec {
  url: string
  connections: number
  pipelining: number
  /** Seconds. */
  duration: number
  /** `x-user-id` from a cycled pool of `userIds` ids, a fixed Cookie header, or neither (an anonymous client). */
  mode: 'user-id' | 'cookie' | 'anon'
  userIds: number
  cookie?: string
}

export interface LoadResult {
  requests: number
  reqPerSec: number
  latencyP50: number
  latencyP90: number
  latencyP99: number
  latencyMean: number
  errors: number
  timeouts: number
  non2xx: number
  durationSec: number
  /** CPU time the load generator itself used during the run. */
  loadCpuMs: number
}

interface AutocannonRequest {
  method?: string
  path?: string
  headers?: Record<string, string>
  setupRequest?: (req: AutocannonRequest) => AutocannonRequest
}

interface AutocannonResult {
  requests: { average: number; total: number }
  latency: { p50: number; p90: number; p99: number; mean: number }
  errors: number
  timeouts: number
  non2xx: number
  duration: number
}

type Autocannon = (opts: {
  url: string
  connections: number
  pipelining: number
  duration: number
  requests: AutocannonRequest[]
}, done: (err: Error | null, result: AutocannonResult) => void) => unknown

/** Ids as a real application would send them: opaque, of varying length, not sequential. */
export function makeUserIds (count: number): string[] {
  const ids: string[] = new Array(count)
  let x = 0x9e3779b9
  for (let i = 0; i < count; i++) {
    // xorshift32: deterministic, so every run sends the same ids.
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    ids[i] = 'u-' + (x >>> 0).toString(36) + '-' + i.toString(36)
  }
  return ids
}

/** A setupRequest that gives every request the next id of a pool of `count` (cycled). */
export function nextUserId<R extends { headers?: Record<string, string> }> (count: number): (req: R) => R {
  const ids = makeUserIds(count)
  let next = 0
  return (req) => {
    const id = ids[next] as string
    next = next + 1 === ids.length ? 0 : next + 1
    return { ...req, headers: { 'x-user-id': id } }
  }
}

/**
 * The child side of the load generators' protocol (bench/children.ts startLoad): reads the spec
 * from argv[2], prints "start" right before the run (or, for a generator that warms up in the
 * same run, when `run` calls `start`), then the result as one JSON line; exits 3 if the run does
 * not end within 30 s of its warm-up + duration, 1 if it fails.
 */
export function runLoadGenerator<S extends { duration: number; warmup?: number }> (name: string,
  run: (spec: S, start: () => void) => Promise<unknown>, startsItself = false): void {
  const spec = JSON.parse(process.argv[2] ?? '{}') as S
  // A hard stop in case autocannon never calls back (it should end after `duration`).
  const guard = setTimeout(() => {
    process.stderr.write(`${name}: did not finish in time\n`)
    process.exit(3)
  }, (spec.duration + (spec.warmup ?? 0) + 30) * 1000)
  guard.unref()
  // Tells the bench the measured load is starting, so it can sample CPU counters over it alone.
  let started = false
  const start = (): void => {
    if (started) return
    started = true
    process.stdout.write('start\n')
  }
  if (!startsItself) start()
  run(spec, start).then((result) => {
    start()
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  }, (err: unknown) => {
    process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}

function requestsFor (spec: LoadSpec): AutocannonRequest[] {
  // Every mode rebuilds each request (setupRequest), so the load generator does the same work
  // per request in every scenario.
  if (spec.mode !== 'user-id') {
    const headers: Record<string, string> = spec.mode === 'cookie' ? { cookie: spec.cookie ?? '' } : {}
    return [{ method: 'GET', path: '/', setupRequest: (req) => ({ ...req, headers }) }]
  }
  return [{ method: 'GET', path: '/', setupRequest: nextUserId(spec.userIds) }]
}

function cpuMs (usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000
}

export async function load (spec: LoadSpec): Promise<LoadResult> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon
  const cpuBefore = process.cpuUsage()
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon({
      url: spec.url,
      connections: spec.connections,
      pipelining: spec.pipelining,
      duration: spec.duration,
      requests: requestsFor(spec),
    }, (err, res) => (err !== null && err !== undefined ? reject(err) : resolve(res)))
  })
  return {
    requests: result.requests.total,
    reqPerSec: result.requests.average,
    latencyP50: result.latency.p50,
    latencyP90: result.latency.p90,
    latencyP99: result.latency.p99,
    latencyMean: result.latency.mean,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    durationSec: result.duration,
    loadCpuMs: Math.round(cpuMs(process.cpuUsage(cpuBefore))),
  }
}

if (import.meta.main) runLoadGenerator('load', load)
