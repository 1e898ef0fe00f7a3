// One undici Pool per upstream origin (and connect settings), shared by every route and table
// snapshot that uses it; a version with several URLs balances over their pools (round-robin or
// least-request), skipping the hosts host-health.ts has taken out.

import { readFileSync } from 'node:fs'
import { Pool } from 'undici'
import type { BalanceMode, OutlierConfig } from '../config/model.ts'
import type { UpstreamName } from '../vocabulary.ts'
import type { HostHealth } from './host-health.ts'

export interface PoolSettings {
  connectMs: number
  rejectUnauthorized: boolean
  /** Path of a PEM CA bundle for https upstreams. */
  ca: string | undefined
}

export interface UpstreamTarget {
  readonly origin: string
  /** host[:port] of the origin, sent as Host when a route does not pass the client's. */
  readonly host: string
  readonly pool: Pool
  /** This host's health in its route and version (shared across snapshots). */
  readonly health: HostHealth
}

/** What a group needs to know of its route to balance and eject. */
export interface GroupPolicy {
  readonly version: UpstreamName
  readonly balance: BalanceMode
  readonly outlier: OutlierConfig | false
}

/**
 * The upstreams of one version. `pick` skips hosts that are ejected or fail their checks and
 * answers null when none is left; round-robin takes the others in turn, least-request the less
 * busy of two at random (the "power of two choices", Envoy's LEAST_REQUEST).
 */
export class UpstreamGroup {
  readonly targets: readonly UpstreamTarget[]
  readonly policy: GroupPolicy
  private cursor = 0

  constructor (targets: readonly UpstreamTarget[], policy: GroupPolicy) {
    this.targets = targets
    this.policy = policy
  }

  /** A host for the next attempt, other than `not` (a retry's failed host); null when none is available. */
  pick (not: UpstreamTarget | null = null): UpstreamTarget | null {
    const targets = this.targets
    const n = targets.length
    // Single-target versions are the common case: no cursor, no random.
    if (n === 1) {
      const only = targets[0] as UpstreamTarget
      return only.health.available && only !== not ? only : null
    }
    if (this.policy.balance === 'least-request') {
      const a = targets[Math.floor(Math.random() * n)] as UpstreamTarget
      let b = targets[Math.floor(Math.random() * (n - 1))] as UpstreamTarget
      if (b === a) b = targets[n - 1] as UpstreamTarget
      const aOk = a.health.available && a !== not
      const bOk = b.health.available && b !== not
      if (aOk && bOk) return b.health.active < a.health.active ? b : a
      if (aOk) return a
      if (bOk) return b
      // Both drawn hosts are out: take the first available one after a.
    }
    // A retry looks from the cursor without moving it: otherwise the next request's turn would
    // skip the host the retry took, and land on the failing one again.
    let at = this.cursor
    for (let i = 0; i < n; i++) {
      const target = targets[at] as UpstreamTarget
      at = at + 1 === n ? 0 : at + 1
      if (target.health.available && target !== not) {
        if (not === null) this.cursor = at
        return target
      }
    }
    return null
  }

  /** An attempt on `target` got a response below 500: its failure run ends. */
  succeeded (target: UpstreamTarget): void {
    target.health.consecutiveFailures = 0
  }

  /**
   * An attempt on `target` failed (no response, or a 5xx). Enough in a row eject it, unless that
   * would put more of the version's hosts out than maxEjectedPercent allows (one always may be),
   * or leave stable without a host.
   */
  failed (target: UpstreamTarget, detail: string): void {
    const health = target.health
    const outlier = this.policy.outlier
    if (outlier === false || health.ejected) return
    if (++health.consecutiveFailures < outlier.consecutiveFailures) return
    let out = 0
    let available = 0
    for (const t of this.targets) {
      if (t.health.ejected) out++
      if (t.health.available) available++
    }
    const mayBeOut = outlier.maxEjectedPercent === 0 ? 0 : Math.max(1, Math.floor(this.targets.length * outlier.maxEjectedPercent / 100))
    if (out + 1 > mayBeOut) return
    if (this.policy.version === 'stable' && health.available && available <= 1) return
    health.eject(outlier, `${outlier.consecutiveFailures} failed attempts in a row (the last: ${detail})`)
  }
}

/** One origin's pool, shared by every group that lists the origin with the same connect settings. */
type PooledOrigin = Omit<UpstreamTarget, 'health'>

/** Most connections one proxy opens to one origin (Envoy's circuit-breaker default). */
const MAX_CONNECTIONS_PER_ORIGIN = 1024

export class UpstreamPools {
  private readonly pools = new Map<string, PooledOrigin>()

  /** The group of one route's version: shared pools, the route × version's own host health. */
  group (origins: readonly string[], settings: PoolSettings, policy: GroupPolicy, health: (origin: string) => HostHealth): UpstreamGroup {
    return new UpstreamGroup(origins.map((origin) => ({ ...this.target(origin, settings), health: health(origin) })), policy)
  }

  private target (origin: string, settings: PoolSettings): PooledOrigin {
    const key = `${origin}|${settings.connectMs}|${settings.rejectUnauthorized}|${settings.ca ?? ''}`
    let target = this.pools.get(key)
    if (target === undefined) {
      const pool = new Pool(origin, {
        connections: MAX_CONNECTIONS_PER_ORIGIN,
        pipelining: 1,
        connect: {
          timeout: settings.connectMs,
          rejectUnauthorized: settings.rejectUnauthorized,
          ...(settings.ca !== undefined ? { ca: readFileSync(settings.ca) } : {}),
        },
      })
      target = { origin, host: new URL(origin).host, pool }
      this.pools.set(key, target)
    }
    return target
  }

  /** Closes (gracefully: queued requests finish) every pool no group in `inUse` refers to. */
  async retainOnly (inUse: Iterable<UpstreamGroup>): Promise<void> {
    const keep = new Set<Pool>()
    for (const group of inUse) for (const t of group.targets) keep.add(t.pool)
    const closing: Promise<void>[] = []
    for (const [key, target] of this.pools) {
      if (!keep.has(target.pool)) {
        this.pools.delete(key)
        closing.push(target.pool.close())
      }
    }
    await Promise.all(closing)
  }

  async close (): Promise<void> {
    await this.retainOnly([])
  }

  /** Ends every upstream request at once (after the drain timeout). */
  async destroy (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(all.map((t) => t.pool.destroy()))
  }
}
