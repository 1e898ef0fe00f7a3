// The control plane's view of host health: the data path processes tell it each change
// (proxy/host-health.ts); weir_upstream_host_healthy reads it. A host counts as healthy only while
// no process has it out, so a worker that ejected it shows as 0 even if the others still send to it.

import type { UpstreamName } from '../vocabulary.ts'

/** What changed about a host, for the event log and the health gauge. */
export interface HostChange {
  readonly route: string
  readonly version: UpstreamName
  /** The upstream URL as configured (an origin: no path, no credentials). */
  readonly host: string
  readonly healthy: boolean
  /** ejected / returned (passive), unhealthy / healthy (active checks), removed (it left the config while out). */
  readonly cause: 'ejected' | 'returned' | 'unhealthy' | 'healthy' | 'removed'
  readonly detail: string
  /** How long an ejection lasts. */
  readonly forMs?: number
}

export class HostHealthBook {
  /** route × version × host → the processes (worker slots; 0: this one) that have it out. */
  private readonly out = new Map<string, Set<number>>()

  /** Takes one process's change; answers whether the host's fleet-of-processes health changed. */
  apply (change: HostChange, source: number): boolean {
    const key = keyOf(change.route, change.version, change.host)
    const before = this.out.has(key)
    let sources = this.out.get(key)
    if (change.healthy) {
      sources?.delete(source)
      if (sources?.size === 0) this.out.delete(key)
    } else {
      if (sources === undefined) {
        sources = new Set()
        this.out.set(key, sources)
      }
      sources.add(source)
    }
    return before !== this.out.has(key)
  }

  /** A process is gone (a worker exited): what it had out no longer is. */
  forget (source: number): void {
    for (const [key, sources] of this.out) {
      sources.delete(source)
      if (sources.size === 0) this.out.delete(key)
    }
  }

  healthy (route: string, version: UpstreamName, host: string): boolean {
    return !this.out.has(keyOf(route, version, host))
  }
}

function keyOf (route: string, version: string, host: string): string {
  return `${route}\u0000${version}\u0000${host}`
}
