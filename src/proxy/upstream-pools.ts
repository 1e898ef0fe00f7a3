// One undici Pool per upstream origin (and connect settings), shared by every route and table
// snapshot that uses it; a version with several URLs balances round-robin over their pools.

import { readFileSync } from 'node:fs'
import { Pool } from 'undici'

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
}

/** The upstreams of one version; `pick` is round-robin. */
export class UpstreamGroup {
  readonly targets: readonly UpstreamTarget[]
  private cursor = 0

  constructor (targets: readonly UpstreamTarget[]) {
    this.targets = targets
  }

  pick (): UpstreamTarget {
    const targets = this.targets
    // Single-target versions are the common case: skip the modulo.
    if (targets.length === 1) return targets[0] as UpstreamTarget
    const target = targets[this.cursor] as UpstreamTarget
    this.cursor = (this.cursor + 1) % targets.length
    return target
  }
}

/** Most connections one proxy opens to one origin (Envoy's circuit-breaker default). */
const MAX_CONNECTIONS_PER_ORIGIN = 1024

export class UpstreamPools {
  private readonly pools = new Map<string, UpstreamTarget>()

  group (origins: readonly string[], settings: PoolSettings): UpstreamGroup {
    return new UpstreamGroup(origins.map((origin) => this.target(origin, settings)))
  }

  private target (origin: string, settings: PoolSettings): UpstreamTarget {
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
