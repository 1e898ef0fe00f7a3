// How the admin API shows a route (docs/admin-api.md, "Shapes"): upstreams, weights in percent,
// revision, the rollout's summary, the shadow settings in force, and where the values come from.

import type { RouteConfig } from '../config/model.ts'
import type { RuleInput, ShadowInput } from '../config/schema.ts'
import { readRollout, rolloutSummary, type RolloutSummary } from '../rollout/rollout-view.ts'
import { effectiveUpstreams, liveRules, liveShadow, percentOf, shadowSettingsView } from '../state/live-routes.ts'
import type { RouteState } from '../state/store.ts'
import type { UpstreamName, Version } from '../vocabulary.ts'

export interface RouteView {
  name: string
  upstreams: Partial<Record<UpstreamName, string[]>>
  /** Percent. */
  weights: Record<Version, number>
  /** 0 while the route runs on the config file's values alone. */
  revision: number
  /** The rollout driving the route, or the last one that ran; null when none ever did. */
  rollout: RolloutSummary | null
  /** The shadow settings in force, complete, in the config file's form. */
  shadow: ShadowInput
  /** The match rules in force (live, else the file's), in the config file's form. */
  rules: RuleInput[]
  /** `config` until the first change through the API or controller, then `live`. */
  source: 'config' | 'live'
  updatedAt: string | null
}

export function routeView (route: RouteConfig, state: RouteState | undefined): RouteView {
  return {
    name: route.name,
    upstreams: effectiveUpstreams(route, state),
    weights: percentOf(state?.weights ?? route.weights),
    revision: state?.revision ?? 0,
    rollout: rolloutSummary(readRollout(state?.rollout)),
    shadow: shadowSettingsView(liveShadow(route, state).input),
    rules: structuredClone([...liveRules(route, state).input]),
    source: state === undefined ? 'config' : 'live',
    updatedAt: state?.updatedAt ?? null,
  }
}
