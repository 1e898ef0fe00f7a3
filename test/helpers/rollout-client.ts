// Reading a route's rollout and the event log through the admin API, for rollout tests.

import type { AdminClient } from './admin.ts'
import { sleep } from './raw-http.ts'

export interface RolloutCheckBody { name: string; verdict: string; value: number | null; threshold: number | null; detail: string }

/** GET /api/v1/routes/:route/rollout, the fields the tests read. */
export interface RolloutBody {
  phase: string
  revision: number
  weights: Record<string, number>
  rollout: null | {
    step: number
    weight: number
    reason: string | null
    steps: number[]
    policy: { intervalMs: number; analysis: Record<string, number>; guard: Record<string, number> }
    failures: number
    lastCheck: null | { checks: RolloutCheckBody[] }
    history: { note: string }[]
  }
}

export interface EventBody {
  id: number
  time: string
  actor: string
  action: string
  reason?: { check?: string; value?: number; threshold?: number; detail?: string }
}

export function rolloutClient (admin: AdminClient, route = 'app') {
  const rollout = async (): Promise<RolloutBody> => (await admin.get(`/api/v1/routes/${route}/rollout`)).json<RolloutBody>()
  return {
    rollout,
    events: async (): Promise<EventBody[]> => (await admin.get('/api/v1/events')).json<{ events: EventBody[] }>().events,
    /**
     * The first event with this action, polled for up to `limitMs`: the event is appended just
     * after the state change it records, so it can trail a rollout view that already shows it.
     */
    async event (action: string, limitMs = 2000): Promise<EventBody | undefined> {
      const deadline = Date.now() + limitMs
      for (;;) {
        const found = (await (await admin.get('/api/v1/events')).json<{ events: EventBody[] }>().events).find((e) => e.action === action)
        if (found !== undefined || Date.now() > deadline) return found
        await sleep(20)
      }
    },
    /** Polls the rollout until its phase is no longer `phase`, or `limitMs` passed; returns the last view. */
    async leaves (phase: string, limitMs: number): Promise<RolloutBody> {
      const deadline = Date.now() + limitMs
      let last = await rollout()
      while (last.phase === phase && Date.now() < deadline) {
        await sleep(20)
        last = await rollout()
      }
      return last
    },
  }
}
