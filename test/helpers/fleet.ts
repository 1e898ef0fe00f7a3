// Fleets for the tests: `size` real `weir serve` processes on one etcd prefix (each with its own
// ports and fleet id), and the probes the fleet tests share: which versions users get, who leads,
// the fleet's event log.

import type { Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminClient } from './admin.ts'
import type { TestEtcd } from './etcd.ts'
import { send } from './http.ts'
import { eventually as pollUntil, sleep } from './raw-http.ts'
import { startUpstreams, type Handler } from './upstream.ts'
import { serveWeir, tempDir, type Weir } from './weir-process.ts'

export interface Replica { id: string; url: string; adminUrl: string; weir: Weir }

let fleets = 0
/** A fresh etcd prefix per fleet, so fleets of one file never share state. */
export function fleetPrefix (): string {
  return `/weir-test-${process.pid}-${++fleets}/`
}

/** `size` real `weir serve` processes on one etcd prefix, each with its own ports and fleet id. */
export async function fleetOf (t: Test, etcd: TestEtcd, size = 3, route = '', canaryHandler: Handler | null = null, fleet = ''): Promise<Replica[]> {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  canary?.handle(canaryHandler)
  const prefix = fleetPrefix()
  const dir = tempDir()
  return await Promise.all(Array.from({ length: size }, async (_, i) => {
    const id = `replica-${i + 1}`
    const file = join(dir, `${id}.yaml`)
    writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
state: { file: ${join(dir, id, 'state.json')}, etcd: { endpoints: [${etcd.url}], prefix: ${prefix}, timeout: 1s } }
fleet: { id: ${id}${fleet} }
cookieSecret: fleet-test-secret-fleet
logLevel: info
workers: ${process.env.WEIR_TEST_WORKERS ?? 1}
routes:
  - name: app
    upstreams: { stable: ${stable?.url}, canary: ${canary?.url} }
    weights: { stable: 100, canary: 0 }
    stickiness: { userId: { header: x-user-id } }
${route}`)
    const { weir, url, adminUrl } = await serveWeir(t, file)
    return { id, url, adminUrl, weir }
  }))
}

/** The versions 8 probe users get from a replica, one request each. */
export async function probe (replica: Replica): Promise<string[]> {
  return await Promise.all(Array.from({ length: 8 }, async (_, i) => String((await send(replica.url + '/', { headers: { 'x-user-id': `probe-${i}` } })).headers['x-weir-version'])))
}

export interface FleetBody { self: string; leader: string | null; members: { id: string; admin: string }[] }
export interface EventRow { id: number; time: string; actor: string; action: string; replica?: string }

export async function eventsOf (replica: Replica): Promise<EventRow[]> {
  return (await adminClient(replica.adminUrl).get('/api/v1/events')).json<{ events: EventRow[] }>().events
}

/** raw-http.ts's `eventually`, with the limit first (as the fleet tests read best). */
export function eventually (limitMs: number, check: () => Promise<boolean>): Promise<boolean> {
  return pollUntil(check, limitMs)
}

export async function fleetView (replica: Replica): Promise<FleetBody> {
  return (await adminClient(replica.adminUrl).get('/api/v1/fleet')).json<FleetBody>()
}

/** Polls a replica's rollout view until its phase is none of `passing`; returns the phase then (or the last one seen). */
export async function settledPhase (replica: Replica, limitMs: number, passing: readonly string[] = ['progressing', 'promoting']): Promise<string> {
  const deadline = Date.now() + limitMs
  let phase = ''
  while (Date.now() < deadline) {
    phase = (await adminClient(replica.adminUrl).get('/api/v1/routes/app/rollout')).json<{ phase: string }>().phase
    if (!passing.includes(phase)) break
    await sleep(200)
  }
  return phase
}

/** Polls until every replica names the same leader; returns it. */
export async function agreedLeader (replicas: readonly Replica[], limitMs: number, not: string | null = null): Promise<string | null> {
  const deadline = Date.now() + limitMs
  let views: (FleetBody | null)[] = []
  while (Date.now() < deadline) {
    views = await Promise.all(replicas.map((r) => fleetView(r).catch(() => null)))
    const leaders = new Set(views.map((v) => v?.leader ?? null))
    const [only] = leaders
    if (leaders.size === 1 && only !== null && only !== undefined && only !== not && views.every((v) => v !== null && v.members.length === replicas.length)) return only
    await sleep(100)
  }
  process.stderr.write(`no agreed leader within ${limitMs} ms: ${JSON.stringify(views)}\n`)
  return null
}

/** A canary that answers 500 to 30 % of requests (every request whose counter ends in 0, 3 or 7). */
export function failing30 (): Handler {
  let n = 0
  return (_req, res) => {
    const failed = [0, 3, 7].includes(n++ % 10)
    res.statusCode = failed ? 500 : 200
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ version: 'canary', failed }))
  }
}

export interface RolloutBodyLite { phase: string; rollout: { reason: string | null; lastCheck: { checks: { name: string; verdict: string; detail: string }[] } | null } | null }
