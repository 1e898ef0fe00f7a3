// Fixed-rate load generator for bench/shadow.ts and bench/blast-radius.ts: one autocannon run at
// `overallRate`, every request with the next x-user-id of bench/load.ts's pool, every response
// checked against the one expected (status, body, header names) and its latency kept exactly
// (float ms, no coordinated-omission back-fill). Reads a RateLoadSpec as JSON from argv[2];
// prints "start", then one RateLoadResult as JSON on stdout.

import { createRequire } from 'node:module'
import { nextUserId, runLoadGenerator } from './load.ts'
import { percentile } from './median.ts'

export interface RateLoadSpec {
  url: string
  connections: number
  /** Requests per second over all connections. */
  rate: number
  /** Seconds. */
  duration: number
  userIds: number
  /** What every response must be: a different one is counted in `different` (first few kept in `samples`). */
  expect?: ExpectedResponse
}

export interface ExpectedResponse {
  status: number
  body: string
  /** Sorted, lower-case, without the volatile `date` and `keep-alive`. */
  headerNames: string[]
}

export interface RateLoadResult {
  requests: number
  reqPerSec: number
  durationSec: number
  latencyP50: number
  latencyP90: number
  latencyP99: number
  latencyP999: number
  latencyMax: number
  errors: number
  timeouts: number
  non2xx: number
  /** Responses not equal to `expect` (status, body or header names). */
  different: number
  /** Responses carrying a Set-Cookie (weir sends none on these requests). */
  setCookie: number
  samples: string[]
  loadCpuMs: number
}

interface AutocannonRequest {
  method?: string
  path?: string
  headers?: Record<string, string>
  setupRequest?: (req: AutocannonRequest) => AutocannonRequest
  onResponse?: (status: number, body: string, context: unknown, headers: Record<string, string | string[]>) => void
}

interface AutocannonResult {
  requests: { total: number }
  errors: number
  timeouts: number
  non2xx: number
  duration: number
}

interface AutocannonInstance {
  on: (event: 'response', listener: (client: unknown, status: number, bytes: number, responseTimeMs: number) => void) => void
}

type Autocannon = (opts: {
  url: string
  connections: number
  overallRate: number
  duration: number
  requests: AutocannonRequest[]
}, done: (err: Error | null, result: AutocannonResult) => void) => AutocannonInstance

const VOLATILE = new Set(['date', 'keep-alive', 'connection'])

/** The header names of a response as compared: sorted, lower-case, volatile ones left out. */
export function headerNamesOf (headers: Iterable<string>): string[] {
  return [...new Set([...headers].map((h) => h.toLowerCase()))].filter((h) => !VOLATILE.has(h)).sort()
}

export async function rateLoad (spec: RateLoadSpec): Promise<RateLoadResult> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon
  const setupRequest = nextUserId<AutocannonRequest>(spec.userIds)
  let different = 0
  let setCookie = 0
  const samples: string[] = []
  const expect = spec.expect
  const expectedNames = expect?.headerNames.join(',')
  const latencies: number[] = []
  const cpuBefore = process.cpuUsage()
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon({
      url: spec.url,
      connections: spec.connections,
      overallRate: spec.rate,
      duration: spec.duration,
      requests: [{
        method: 'GET',
        path: '/',
        setupRequest,
        onResponse: (status, body, _context, headers) => {
          if (headers['set-cookie'] !== undefined) setCookie++
          if (expect === undefined) return
          const names = headerNamesOf(Object.keys(headers)).join(',')
          if (status !== expect.status || body !== expect.body || names !== expectedNames) {
            different++
            if (samples.length < 5) samples.push(`${status} [${names}] ${body.slice(0, 80)}`)
          }
        },
      }],
    }, (err, res) => (err !== null && err !== undefined ? reject(err) : resolve(res)))
    instance.on('response', (_client, _status, _bytes, ms) => latencies.push(ms))
  })
  const cpu = process.cpuUsage(cpuBefore)
  const sorted = Float64Array.from(latencies).sort()
  return {
    requests: result.requests.total,
    reqPerSec: Math.round(result.requests.total / result.duration),
    durationSec: result.duration,
    latencyP50: percentile(sorted, 50),
    latencyP90: percentile(sorted, 90),
    latencyP99: percentile(sorted, 99),
    latencyP999: percentile(sorted, 99.9),
    latencyMax: percentile(sorted, 100),
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    different,
    setCookie,
    samples,
    loadCpuMs: Math.round((cpu.user + cpu.system) / 1000),
  }
}

if (import.meta.main) runLoadGenerator('rate-load', rateLoad)
