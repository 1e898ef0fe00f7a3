// Saturating load with wrk (Debian's `wrk`: C, event loop per thread) for bench/run.ts: the same
// LoadSpec in and LoadResult out as bench/load.ts (autocannon), the per-request headers (the next
// x-user-id of the pool, the cookie) built by a generated Lua script's request().

import { writeFileSync } from 'node:fs'
import { startCommand, type Child } from './children.ts'
import { TICK_MS } from './cpu-ticks.ts'
import { makeUserIds, type LoadResult, type LoadSpec } from './load.ts'

export const WRK = '/usr/bin/wrk'

/** wrk threads: one, like autocannon's one process, and the load CPU also runs the upstreams. */
const THREADS = 1

/** A Lua string literal (ids and cookies are printable ASCII). */
const luaString = (s: string): string => `"${s.replace(/[\\"]/g, (c) => '\\' + c)}"`

/**
 * The script: request() builds every request with wrk.format and the next value of the header
 * (none for anonymous clients, but built the same way), so wrk does the same work per request
 * in every scenario; done() prints the result as one JSON line, with wrk's own CPU ticks read
 * from /proc/self/stat (all its threads; they have ended by then).
 */
function script (spec: LoadSpec): string {
  const header = spec.mode === 'user-id' ? 'x-user-id' : spec.mode === 'cookie' ? 'cookie' : null
  const values = spec.mode === 'user-id' ? makeUserIds(spec.userIds) : [spec.mode === 'cookie' ? spec.cookie ?? '' : '']
  for (const v of values) if (!/^[\x20-\x7e]*$/.test(v)) throw new Error(`wrk script: header value ${JSON.stringify(v)} is not printable ASCII`)
  return `-- Written by bench/wrk-load.ts (mode ${spec.mode}).
local values = {
${values.map((v) => `  ${luaString(v)},`).join('\n')}
}
local n = #values
local i = 0

request = function ()
  i = i % n + 1
  return wrk.format("GET", "/", { ${header === null ? '' : `[${luaString(header)}] = values[i]`} })
end

local function cpu_ticks ()
  local f = io.open("/proc/self/stat")
  if f == nil then return -1 end
  local stat = f:read("*a")
  f:close()
  local fields = {}
  for v in stat:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = v end
  -- utime and stime: fields 14 and 15 of the line, 12 and 13 after the command name.
  return tonumber(fields[12]) + tonumber(fields[13])
end

done = function (summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50Us":%d,"p90Us":%d,"p99Us":%d,"meanUs":%.1f,"cpuTicks":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, cpu_ticks()))
end
`
}

interface WrkDone {
  requests: number
  durationUs: number
  connect: number
  read: number
  write: number
  status: number
  timeout: number
  p50Us: number
  p90Us: number
  p99Us: number
  meanUs: number
  cpuTicks: number
}

/**
 * Runs wrk on `cpu` for spec.duration (whole seconds) after writing its script to `scriptFile`.
 * `on.start` runs at spawn (wrk connects, then measures), `on.result` when its JSON line arrives,
 * as startLoad does for the Node generators. wrk is a tracked child (killed by pid on the way
 * out) and SIGKILLed 45 s after its duration.
 */
export function runWrk (spec: LoadSpec, scriptFile: string, cpu: number, on: { start?: () => void; result?: () => void } = {}): Promise<LoadResult> {
  if (spec.pipelining !== 1) throw new Error('wrk has no pipelining: use BENCH_LOADGEN=autocannon with BENCH_PIPELINING > 1')
  writeFileSync(scriptFile, script(spec))
  const seconds = Math.max(1, Math.round(spec.duration))
  const child: Child = startCommand('wrk', cpu, WRK,
    [`-t${THREADS}`, `-c${Math.max(THREADS, spec.connections)}`, `-d${seconds}s`, '--timeout', '5s', '-s', scriptFile, spec.url], { stdout: 'pipe' })
  on.start?.()
  let out = ''
  let seenResult = false
  child.proc.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    if (!seenResult && /^\{.*\}$/m.test(out)) {
      seenResult = true
      on.result?.()
    }
  })
  const guard = setTimeout(() => {
    if (child.proc.pid !== undefined) process.kill(child.proc.pid, 'SIGKILL')
  }, (seconds + 45) * 1000)
  return new Promise((resolve, reject) => {
    child.proc.once('close', (code) => {
      clearTimeout(guard)
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk failed (exit ${code}):\n${out}\n${child.stderr()}`))
        return
      }
      const r = JSON.parse(line) as WrkDone
      const ms = (us: number): number => Math.round(us) / 1000
      const durationSec = r.durationUs / 1e6
      resolve({
        requests: r.requests,
        reqPerSec: durationSec > 0 ? r.requests / durationSec : 0,
        latencyP50: ms(r.p50Us),
        latencyP90: ms(r.p90Us),
        latencyP99: ms(r.p99Us),
        latencyMean: ms(r.meanUs),
        errors: r.connect + r.read + r.write,
        timeouts: r.timeout,
        // wrk counts answers with a status above 399; 3xx would pass (none is expected here).
        non2xx: r.status,
        durationSec,
        loadCpuMs: r.cpuTicks < 0 ? 0 : Math.round(r.cpuTicks * TICK_MS),
      })
    })
  })
}
