// Per-route metric counters for the hot path. prom-client's `labels(...)` children still hash
// their labels on every inc, so the data path increments plain fields instead and each
// counter's collect() flushes them into prom-client when /metrics is scraped.

import { VERSIONS, type Version } from '../config/rules.ts'
import type { DecisionReason } from '../routing/pick-version.ts'
import type { Metrics } from './registry.ts'

/** A counter cell the data path bumps; `pending` moves into prom-client at scrape time. */
export class CounterCell {
  pending = 0
  inc (): void {
    this.pending++
  }
}

export interface RouteMetrics {
  readonly decisions: Readonly<Record<Version, Readonly<Record<DecisionReason, CounterCell>>>>
}

const REASONS: readonly DecisionReason[] = ['override', 'user', 'cookie', 'random']

/**
 * The cells of one route, created once per route name and reused across reloads (so nothing
 * leaks and counts never go back). Every series exists from the start, at 0.
 */
export function bindRouteMetrics (metrics: Metrics, route: string): RouteMetrics {
  const existing = metrics.routes.get(route)
  if (existing !== undefined) return existing
  const decisions = {} as Record<Version, Record<DecisionReason, CounterCell>>
  for (const version of VERSIONS) {
    const byReason = {} as Record<DecisionReason, CounterCell>
    for (const reason of REASONS) {
      byReason[reason] = new CounterCell()
      metrics.routingDecisions.inc({ route, version, reason }, 0)
    }
    decisions[version] = byReason
  }
  const bound = { decisions }
  metrics.routes.set(route, bound)
  return bound
}

/** Moves pending decision counts into prom-client (the counter's collect hook). */
export function flushDecisions (metrics: Metrics): void {
  for (const [route, { decisions }] of metrics.routes) {
    for (const version of VERSIONS) {
      for (const reason of REASONS) {
        const cell = decisions[version][reason]
        if (cell.pending > 0) {
          metrics.routingDecisions.inc({ route, version, reason }, cell.pending)
          cell.pending = 0
        }
      }
    }
  }
}
