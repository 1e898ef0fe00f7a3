// The admin API's answers as the admin commands read them (docs/admin-api.md, "Shapes"): the
// server's own view types, plus the shapes it builds inline (stats, events, the rollout's extras).

import type { RouteView } from '../admin/views.ts'
import type { FailSafeView, RolloutView } from '../rollout/rollout-view.ts'

export type { RouteView }

/** GET .../rollout. */
export type RolloutAnswer = RolloutView & { leader?: string | null; failSafe?: FailSafeView | null }

export interface VersionStats {
  requests: number
  errors: number
  errorRate: number | null
  p50: number | null
  p90: number | null
  p99: number | null
}

/** GET .../stats?window=N. */
export interface StatsAnswer {
  window: number
  versions: Record<string, VersionStats>
}

export interface EventRecord {
  id: number
  time: string
  actor: string
  route?: string
  action: string
  old?: unknown
  new?: unknown
  reason?: { detail?: unknown; message?: unknown; error?: unknown; status?: unknown; check?: unknown } | null
  requestId?: string
}

/** GET /events. */
export interface EventsAnswer {
  events: EventRecord[]
  lastId: number
}
