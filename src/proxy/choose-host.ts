// The first host of a request: one of its version's available hosts, or, when the version has
// none left (all ejected or failing their checks), one of stable's for a request that may fail
// over. That miss counts as the version's error, in its stats too, as a failover does
// (forward.ts), so the controller's guard sees a canary whose hosts are all down.

import type { IncomingMessage } from 'node:http'
import { announcedBody } from './announced-body.ts'
import type { Exchange } from './exchange.ts'
import { mayFailOver } from './failover.ts'
import type { UpstreamGroup } from './upstream-pools.ts'

/** The group the exchange's host is picked from: its version's, or stable's when the version has none. */
export function groupOf (exchange: Exchange): UpstreamGroup {
  const route = exchange.route
  return route.groups[exchange.version] ?? route.groups.stable
}

/** Sets `exchange.target` (and the version, when it fails over); false: no host at all (503). */
export function chooseHost (exchange: Exchange, raw: IncomingMessage, record: boolean): boolean {
  const route = exchange.route
  const picked = groupOf(exchange).pick()
  if (picked !== null) {
    exchange.target = picked
    return true
  }
  const version = exchange.version
  if (!mayFailOver(version, route.config.failover, raw.method as string, announcedBody(raw.headers) !== 'none')) return false
  const stable = route.groups.stable.pick()
  if (stable === null) return false
  const cells = route.metrics.versions[version]
  cells.upstreamErrors.unavailable.inc()
  if (record && exchange.decidedBy !== 'override') cells.window?.record(0, true)
  exchange.version = 'stable'
  exchange.target = stable
  return true
}
