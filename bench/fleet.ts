// `npm run bench:fleet`: how long a write on one replica takes to be in force on the others.
// Three `weir serve` replicas (CPU 0) share one etcd (Debian's etcd-server, CPU 1, installed if
// missing); 100 times, a weight change flips the route between stable and canary on replica A,
// and from the moment A answers, replicas B and C are probed over keep-alive connections until
// they serve the new version. Reported: the time from A's reply to the last replica, p50 / p99 /
// max. Results: bench/results/fleet-latest.json.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureDebianPackage } from './debian.ts'
import { LOAD_CPU, PROXY_CPU, ROOT, runBench, sleep, startChild, startCommand, stopChild, waitForPort, type Child } from './children.ts'
import { codeVersion, commandLine, machine } from './machine.ts'
import { percentile } from './median.ts'
import { setting } from './settings.ts'

const WRITES = setting(undefined, 'BENCH_WRITES', 100)
const ETCD = '/usr/bin/etcd'
const PORTS = { etcd: 18379, etcdPeer: 18380, stable: 18081, canary: 18082, proxy: [18180, 18181, 18182], admin: [19911, 19912, 19913] }

const agent = new Agent({ keepAlive: true, maxSockets: 4 })

function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number; version: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, version: String(res.headers['x-weir-version']) }))
    })
    req.on('error', reject)
    req.end()
  })
}

function putWeights (adminPort: number, canary: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ stable: 100 - canary, canary })
    const req = request({ host: '127.0.0.1', port: adminPort, path: '/api/v1/routes/app/weights', method: 'PUT', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function main (): Promise<void> {
  const installed = ensureDebianPackage(ETCD, ['etcd-server'], (line) => process.stdout.write(line + '\n'))
  if (!installed.ok) throw new Error(`etcd is needed: ${installed.why}`)
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-fleet-'))
  const etcdUrl = `http://127.0.0.1:${PORTS.etcd}`
  const peer = `http://127.0.0.1:${PORTS.etcdPeer}`
  const children: Child[] = [
    startCommand('etcd', LOAD_CPU, ETCD, ['--name', 'bench', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `bench=${peer}`, '--log-level', 'error']),
    startChild('stable', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.stable), 'stable']),
    startChild('canary', LOAD_CPU, ['bench/servers/upstream.ts', String(PORTS.canary), 'canary']),
  ]
  await waitForPort(children[0] as Child, PORTS.etcd)
  const prefix = `/weir-bench-${process.pid}/`
  for (let i = 0; i < 3; i++) {
    const file = join(dir, `replica-${i + 1}.yaml`)
    writeFileSync(file, `# Written by bench/fleet.ts.
listen: { host: 127.0.0.1, port: ${PORTS.proxy[i]} }
admin: { host: 127.0.0.1, port: ${PORTS.admin[i]} }
state: { file: ${join(dir, `state-${i}.json`)}, etcd: { endpoints: [${etcdUrl}], prefix: ${prefix} } }
fleet: { id: replica-${i + 1} }
cookieSecret: bench-secret-bench-secret
logLevel: warn
workers: 1
routes:
  - name: app
    upstreams: { stable: http://127.0.0.1:${PORTS.stable}, canary: http://127.0.0.1:${PORTS.canary} }
    weights: { stable: 100, canary: 0 }
`)
    const weir = startChild(`replica-${i + 1}`, PROXY_CPU, ['bin/weir.js', 'serve', '--config', file])
    children.push(weir)
    await waitForPort(weir, PORTS.proxy[i] as number)
  }
  await sleep(1000)
  const spreads: number[] = []
  const writeMs: number[] = []
  let canary = 0
  for (let n = 0; n < WRITES; n++) {
    canary = canary === 0 ? 100 : 0
    const expected = canary === 100 ? 'canary' : 'stable'
    const began = performance.now()
    const status = await putWeights(PORTS.admin[0] as number, canary)
    const answered = performance.now()
    if (status !== 200) throw new Error(`write ${n} answered ${status}`)
    writeMs.push(answered - began)
    let last = answered
    for (const port of PORTS.proxy.slice(1)) {
      for (;;) {
        const reply = await get(`http://127.0.0.1:${port}/`, { 'x-user-id': 'probe' })
        if (reply.version === expected) break
        if (performance.now() - answered > 5000) throw new Error(`replica on ${port} did not follow write ${n} within 5 s`)
      }
      last = Math.max(last, performance.now())
    }
    spreads.push(last - answered)
    await sleep(20)
  }
  agent.destroy()
  for (const child of children.reverse()) await stopChild(child)
  const sorted = Float64Array.from(spreads).sort()
  const writes = Float64Array.from(writeMs).sort()
  const round = (x: number): number => Math.round(x * 10) / 10
  const summary = {
    writes: WRITES,
    propagationMs: { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] as number) },
    writeReplyMs: { p50: round(percentile(writes, 50)), p99: round(percentile(writes, 99)) },
  }
  process.stdout.write(`weir fleet bench: ${WRITES} weight writes on replica A, 3 replicas, 1 etcd\n` +
    `  from A's reply to the last replica serving the change: p50 ${summary.propagationMs.p50} ms, p99 ${summary.propagationMs.p99} ms, max ${summary.propagationMs.max} ms\n` +
    `  the write's own reply time: p50 ${summary.writeReplyMs.p50} ms, p99 ${summary.writeReplyMs.p99} ms\n`)
  mkdirSync(`${ROOT}bench/results`, { recursive: true })
  writeFileSync(`${ROOT}bench/results/fleet-latest.json`, JSON.stringify({ command: commandLine('npm run bench:fleet'), machine: machine(), code: codeVersion(), summary, propagationMs: spreads.map(round) }, null, 2) + '\n')
  process.stdout.write('wrote bench/results/fleet-latest.json\n')
}

runBench('bench:fleet', main)
