// The health of each host of a version, as this process sees it: passive (outlier ejection, like
// Envoy's consecutive-5xx detector and nginx's max_fails) and active (health-checker.ts sets
// `checkHealthy`). One HostHealth per route × version × configured origin, kept across snapshots
// so a table swap neither forgets an ejection nor resets a failure run. Changes are told to the
// control plane (events, weir_upstream_host_healthy) through the listener; docs/proxying.md,
// "Hosts", has the rules.

import type { OutlierConfig } from '../config/model.ts'
import type { HostChange } from '../metrics/host-health-book.ts'
import type { UpstreamName } from '../vocabulary.ts'

export type HostListener = (change: HostChange) => void

export class HostHealth {
  readonly route: string
  readonly version: UpstreamName
  readonly host: string
  /** Failed attempts since the last success. */
  consecutiveFailures = 0
  /** Ejected by the outlier detector (until its timer returns it). */
  ejected = false
  /** How many times it was ejected lately: each ejection lasts base × this (decays while it behaves). */
  ejections = 0
  private returnedAt = 0
  private returnTimer: NodeJS.Timeout | null = null
  /** Set by the active checks (health-checker.ts); hosts start healthy. */
  checkHealthy = true
  checkPasses = 0
  checkFailures = 0
  /** Requests in flight to this host from this route and version (least-request reads it). */
  active = 0
  private readonly listener: HostListener

  constructor (route: string, version: UpstreamName, host: string, listener: HostListener) {
    this.route = route
    this.version = version
    this.host = host
    this.listener = listener
  }

  /** Takes requests: neither ejected nor failing its checks. */
  get available (): boolean {
    return !this.ejected && this.checkHealthy
  }

  /** Ejects the host for base × n (n: its recent ejections, decaying by one per base period of good behaviour), at most max. */
  eject (outlier: OutlierConfig, detail: string): void {
    const now = performance.now()
    if (this.returnedAt > 0) this.ejections = Math.max(0, this.ejections - Math.floor((now - this.returnedAt) / outlier.baseEjectionMs))
    this.ejections++
    const forMs = Math.min(outlier.baseEjectionMs * this.ejections, outlier.maxEjectionMs)
    this.ejected = true
    this.consecutiveFailures = 0
    this.returnTimer = setTimeout(() => this.return(), forMs)
    // An ejection never keeps the process alive.
    this.returnTimer.unref()
    this.tell('ejected', detail, forMs)
  }

  private return (detail = 'its ejection time is over'): void {
    this.returnTimer = null
    this.ejected = false
    this.returnedAt = performance.now()
    this.tell('returned', detail)
  }

  /** The active checks' verdict changed. */
  setCheckHealthy (healthy: boolean, detail: string): void {
    if (this.checkHealthy === healthy) return
    this.checkHealthy = healthy
    this.tell(healthy ? 'healthy' : 'unhealthy', detail)
  }

  /** Outlier detection was turned off: an ejected host takes requests again at once. */
  returnNow (): void {
    if (!this.ejected) return
    if (this.returnTimer !== null) clearTimeout(this.returnTimer)
    this.return('outlier detection was turned off')
  }

  /**
   * The host left the route's upstreams: no timer of its fires later, and if it was out, the
   * control plane hears that it no longer is (so the same URL, added back, starts healthy).
   */
  dispose (): void {
    if (this.returnTimer !== null) clearTimeout(this.returnTimer)
    this.returnTimer = null
    if (this.available) return
    this.ejected = false
    this.checkHealthy = true
    this.tell('removed', 'no longer among the route\'s upstreams')
  }

  private tell (cause: HostChange['cause'], detail: string, forMs?: number): void {
    const change: HostChange = {
      route: this.route,
      version: this.version,
      host: this.host,
      healthy: this.available,
      cause,
      detail,
      ...(forMs === undefined ? {} : { forMs }),
    }
    this.listener(change)
  }
}

/** Every HostHealth of a data path, by route × version × origin; `retain` drops those no table uses. */
export class HostHealthRegistry {
  private readonly hosts = new Map<string, HostHealth>()
  private readonly listener: HostListener

  constructor (listener: HostListener) {
    this.listener = listener
  }

  get (route: string, version: UpstreamName, origin: string): HostHealth {
    const key = `${route}\u0000${version}\u0000${origin}`
    let health = this.hosts.get(key)
    if (health === undefined) {
      health = new HostHealth(route, version, origin, this.listener)
      this.hosts.set(key, health)
    }
    return health
  }

  retain (inUse: ReadonlySet<HostHealth>): void {
    for (const [key, health] of this.hosts) {
      if (!inUse.has(health)) {
        health.dispose()
        this.hosts.delete(key)
      }
    }
  }
}
