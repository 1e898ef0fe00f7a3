// How the config file and the live state combine into the routes that serve traffic.
//
// The file owns everything about a route (match, stickiness, timeouts, ...) and the initial
// weights and upstreams. Once the admin API or the controller changes a route, its live state
// (weights, upstream overrides, rollout) wins over the file for those fields, across restarts
// and reloads, until the file's own weights or upstreams for that route are edited: each state
// records the file's values it was written against (`configured`), and when the file no longer
// says the same, the file's edited field wins again (written to the state by actor `config`).

import { isDeepStrictEqual } from 'node:util'
import type { Config, RouteConfig } from '../config/load.ts'
import { VERSIONS, type UpstreamName, type WeightsBp } from '../config/rules.ts'
import type { EventLog } from './event-log.ts'
import type { ConfiguredValues, RouteState, RouteUpdate, StateStore } from './store.ts'

const UPSTREAM_NAMES: readonly UpstreamName[] = [...VERSIONS, 'shadow']

/** Phases in which a rollout drives the route's weights (manual writes need ?force=true). */
const ACTIVE_PHASES: ReadonlySet<string> = new Set(['progressing', 'paused', 'promoting', 'smoke', 'watching'])

export function isRolloutActive (rollout: unknown): boolean {
  return typeof rollout === 'object' && rollout !== null && ACTIVE_PHASES.has(String((rollout as { phase?: unknown }).phase))
}

/** The file's weights and upstreams of a route, as recorded in states written against it. */
export function configuredValues (route: RouteConfig): ConfiguredValues {
  return { weights: { ...route.weights }, upstreams: { ...route.upstreams } }
}

/** Upstreams in force: a state override per version (an empty list: no upstream), else the file's. */
export function effectiveUpstreams (route: RouteConfig, state: Pick<RouteState, 'upstreams'> | undefined): Partial<Record<UpstreamName, string[]>> {
  const out: Partial<Record<UpstreamName, string[]>> = {}
  for (const name of UPSTREAM_NAMES) {
    const list = state?.upstreams?.[name] ?? route.upstreams[name]
    if (list !== undefined && list.length > 0) out[name] = [...list]
  }
  return out
}

/** Weights of versions without an upstream must be 0; stable always needs one. */
export function weightsFit (weights: Readonly<WeightsBp>, upstreams: Partial<Record<UpstreamName, string[]>>): boolean {
  return upstreams.stable !== undefined && VERSIONS.every((v) => weights[v] === 0 || upstreams[v] !== undefined)
}

/** The route as it serves traffic: the file's route with the live weights and upstreams applied. */
export function liveRoute (route: RouteConfig, state: RouteState | undefined): RouteConfig {
  if (state === undefined) return route
  return { ...route, weights: { ...state.weights }, upstreams: effectiveUpstreams(route, state) }
}

/** The config with every route's live state applied. */
export function liveConfig (config: Config, states: ReadonlyMap<string, RouteState>): Config {
  return { ...config, routes: config.routes.map((route) => liveRoute(route, states.get(route.name))) }
}

/**
 * Brings the live state in line with a config file at start and on reload: for each route with
 * state whose file values were edited since that state was written, the edited field (weights,
 * upstreams, or both) is taken from the file. Returns warnings worth logging.
 */
export async function reconcileWithConfig (config: Config, store: StateStore, events: EventLog): Promise<string[]> {
  const warnings: string[] = []
  const names = new Set(config.routes.map((r) => r.name))
  for (const name of store.all().keys()) {
    if (!names.has(name)) warnings.push(`route ${name} has live state but is not in the config: its state is kept, unused, in case it comes back`)
  }
  for (const route of config.routes) {
    const state = store.get(route.name)
    if (state === undefined) continue
    const file = configuredValues(route)
    // A state without `configured` predates this rule: it keeps winning until the next write.
    const weightsEdited = state.configured !== undefined && !isDeepStrictEqual(state.configured.weights, file.weights)
    const upstreamsEdited = state.configured !== undefined && !isDeepStrictEqual(state.configured.upstreams, file.upstreams)
    const upstreams = upstreamsEdited ? undefined : state.upstreams
    let weights = weightsEdited ? file.weights : state.weights
    if (!weightsEdited && !upstreamsEdited && weightsFit(weights, effectiveUpstreams(route, state))) continue
    if (isRolloutActive(state.rollout)) {
      warnings.push(`route ${route.name}: the config file's weights or upstreams changed while a rollout drives the route; the rollout's state is kept`)
      continue
    }
    const next: RouteUpdate = {
      weights,
      configured: file,
      ...(upstreams === undefined ? {} : { upstreams }),
      ...(state.rollout === undefined ? {} : { rollout: state.rollout }),
    }
    if (!weightsFit(weights, effectiveUpstreams(route, next))) {
      warnings.push(`route ${route.name}: the live weights ${JSON.stringify(state.weights)} need an upstream the config no longer has; using the config file's weights`)
      weights = file.weights
    }
    const edited = [weightsEdited && 'weights', upstreamsEdited && 'upstreams'].filter((x) => x !== false).join(' and ')
    const why = edited === '' ? 'the live weights no longer fit the upstreams' : `the config file's ${edited} changed since the live state was written`
    const result = await store.compareAndSet(route.name, state.revision, { ...next, weights })
    if (!result.ok) throw new Error(`route ${route.name} changed while the config was being applied; try again`)
    await events.append({
      actor: 'config',
      route: route.name,
      action: 'config.applied',
      old: { weights: state.weights, upstreams: state.upstreams ?? null },
      new: { weights, upstreams: upstreams ?? null },
      reason: why,
    })
    warnings.push(`route ${route.name}: ${why}; the file's values now apply (revision ${result.state.revision})`)
  }
  return warnings
}
