// How the config file and the live state combine into the routes that serve traffic.
//
// The file owns everything about a route (match, stickiness, timeouts, ...) and the initial
// weights, upstreams and shadow settings. Once the admin API or the controller changes a route,
// its live state (weights, upstream overrides, shadow settings, rollout) wins over the file for
// those fields, across restarts and reloads, until the file's own weights, upstreams or shadow
// settings for that route are edited: each state records the file's values it was written
// against (`configured`), and when the file no longer says the same, the file's edited field
// wins again (written to the state by actor `config`).

import { isDeepStrictEqual } from 'node:util'
import type { Config, MatchRule, RouteConfig, RuleCondition, ShadowConfig, WeightsBp } from '../config/model.ts'
import { normalizeRules, normalizeShadow } from '../config/normalize.ts'
import type { RuleInput, ShadowInput } from '../config/schema.ts'
import { WeirError, type Problem } from '../errors.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import { isActiveRollout, UPSTREAM_NAMES, VERSIONS, type UpstreamName, type Version } from '../vocabulary.ts'
import type { ConfiguredValues, RouteState, RouteUpdate, StateStore } from './store.ts'

/** The file's weights, upstreams, shadow settings and rules of a route, as recorded in states written against it. */
export function configuredValues (route: RouteConfig): Required<ConfiguredValues> {
  return { weights: { ...route.weights }, upstreams: { ...route.upstreams }, shadow: route.shadowInput, rules: route.rulesInput }
}

/**
 * Match rules in force, in both forms: the live ones when the state has them, else the file's.
 * A rule naming a version without an upstream stays listed and is skipped when routing
 * (routing/route-table.ts), as the file's are.
 */
export function liveRules (route: RouteConfig, state: Pick<RouteState, 'rules'> | undefined): { input: readonly RuleInput[]; config: MatchRule[] } {
  const live = state?.rules
  if (live === undefined) return { input: route.rulesInput, config: route.rules }
  // Checked when written: the only problem left can be a version that lost its upstream since.
  const everyVersion = { stable: [''], canary: [''], green: [''] }
  return { input: live, config: normalizeRules(live, everyVersion, 'rules', []) }
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

/** What is wrong with shadow settings on these upstreams (the config file's rules); empty when they fit. */
export function shadowProblems (shadow: Readonly<ShadowInput>, upstreams: Partial<Record<UpstreamName, string[]>>, path = 'shadow'): Problem[] {
  const problems: Problem[] = []
  normalizeShadow(shadow, upstreams, path, problems)
  return problems
}

/**
 * Shadow settings in force, in both forms: the live ones, unless they do not fit the route's
 * upstreams (then the file's, which reconcileWithConfig also writes back with a warning).
 */
export function liveShadow (
  route: RouteConfig, state: Pick<RouteState, 'shadow' | 'upstreams'> | undefined,
  upstreams: Partial<Record<UpstreamName, string[]>> = effectiveUpstreams(route, state)
): { input: ShadowInput; config: ShadowConfig } {
  const live = state?.shadow
  if (live !== undefined) {
    const problems: Problem[] = []
    const config = normalizeShadow(live, upstreams, 'shadow', problems)
    if (problems.length === 0) return { input: live, config }
  }
  return { input: route.shadowInput, config: route.shadow }
}

/** The route as it serves traffic: the file's route with the live weights, upstreams and shadow settings applied. */
export function liveRoute (route: RouteConfig, state: RouteState | undefined): RouteConfig {
  if (state === undefined) return route
  const upstreams = effectiveUpstreams(route, state)
  const shadow = liveShadow(route, state, upstreams)
  const rules = liveRules(route, state)
  return { ...route, weights: { ...state.weights }, upstreams, shadow: shadow.config, shadowInput: shadow.input, rules: rules.config, rulesInput: [...rules.input] }
}

/** The config with every route's live state applied. */
export function liveConfig (config: Config, states: ReadonlyMap<string, RouteState>): Config {
  return { ...config, routes: config.routes.map((route) => liveRoute(route, states.get(route.name))) }
}

/**
 * What the data path runs on: every route as it serves traffic, and the settings it reads.
 * `heldWeights`: routes this replica serves with other weights than the store's for now (the fast
 * guard's revert while it cannot be written: controller/controller.ts). `tlsRevision`: the
 * reloads so far, so a data path re-reads the listener's certificate on a reload only.
 */
export function liveSnapshot (config: Config, states: ReadonlyMap<string, RouteState>, secrets: { cookieSecret: string; smokeToken: string },
  heldWeights: ReadonlyMap<string, Readonly<WeightsBp>> = new Map(), tlsRevision = 0): DataPathSnapshot {
  const serving = (route: RouteConfig): RouteConfig => {
    const state = states.get(route.name)
    const live = liveRoute(route, state)
    const held = heldWeights.get(route.name)
    if (held !== undefined) return { ...live, weights: { ...held } }
    const match = rolloutMatch(state?.rollout)
    // A rollout's match-rule step: before the route's own rules, matching requests go to the canary.
    return match === null || live.upstreams.canary === undefined ? live : { ...live, rules: [{ conditions: match, version: 'canary' }, ...live.rules] }
  }
  return Object.freeze({
    routes: Object.freeze(config.routes.map(serving)),
    versionHeader: config.versionHeader,
    trustedProxies: config.trustedProxyList,
    logLevel: config.logLevel,
    maxHeaders: config.maxHeaders,
    tracing: config.tracing,
    accessLogSample: config.accessLogSample,
    cookieSecret: secrets.cookieSecret,
    smokeToken: secrets.smokeToken,
    server: {
      tls: config.listen.tls && { ...config.listen.tls, revision: tlsRevision },
      maxHeaderBytes: config.maxHeaderBytes,
      clientHeadersTimeoutMs: config.clientHeadersTimeoutMs,
      clientIdleTimeoutMs: config.clientIdleTimeoutMs,
    },
  })
}

/** The conditions of an active rollout's match-rule step (rollout/step.ts RolloutState.match), or null. */
export function rolloutMatch (rollout: unknown): RuleCondition[] | null {
  if (!isActiveRollout(rollout)) return null
  const match = (rollout as { match?: unknown }).match
  return Array.isArray(match) && match.length > 0 ? match as RuleCondition[] : null
}

/** Basis points to the percent the API and events show. */
export function percentOf (bp: Readonly<WeightsBp>): Record<Version, number> {
  return { stable: bp.stable / 100, canary: bp.canary / 100, green: bp.green / 100 }
}

/** Shadow settings in the documented order, detached from the (frozen) state. */
export function shadowSettingsView (shadow: Readonly<ShadowInput>): ShadowInput {
  return {
    percent: shadow.percent,
    maxInFlight: shadow.maxInFlight,
    maxBodyBytes: shadow.maxBodyBytes,
    methods: [...shadow.methods],
    timeout: shadow.timeout,
    compare: shadow.compare,
    ignore: { headers: [...shadow.ignore.headers], json: [...shadow.ignore.json] },
  }
}

/**
 * Brings the live state in line with a config file at start and on reload: for each route with
 * state whose file values were edited since that state was written, the edited field (weights,
 * upstreams, shadow settings, or several) is taken from the file, with a `config.applied` event
 * (the store commits it with the change: recordEventsIn first). Returns warnings worth logging.
 */
export async function reconcileWithConfig (config: Config, store: StateStore, options: { reportOverrides?: boolean } = {}): Promise<string[]> {
  const warnings: string[] = []
  const names = new Set(config.routes.map((r) => r.name))
  for (const name of store.all().keys()) {
    if (!names.has(name)) warnings.push(`route ${name} has live state but is not in the config: its state is kept, unused, in case it comes back`)
  }
  for (const route of config.routes) {
    const state = store.get(route.name)
    if (state === undefined) continue
    const file = configuredValues(route)
    const configured = state.configured
    // A state without `configured` predates this rule: it keeps winning until the next write.
    const weightsEdited = configured !== undefined && !isDeepStrictEqual(configured.weights, file.weights)
    const upstreamsEdited = configured !== undefined && !isDeepStrictEqual(configured.upstreams, file.upstreams)
    // Likewise a state written before shadow settings were recorded: it has no live shadow to drop.
    const shadowEdited = configured?.shadow !== undefined && !isDeepStrictEqual(configured.shadow, file.shadow)
    // And one written before rules were recorded has no live rules to drop.
    const rulesEdited = configured?.rules !== undefined && !isDeepStrictEqual(configured.rules, file.rules)
    if (isActiveRollout(state.rollout)) {
      if (options.reportOverrides === true) {
        const note = overrideNote(route, state)
        if (note !== null) warnings.push(note)
      }
      if (weightsEdited || upstreamsEdited) {
        warnings.push(`route ${route.name}: the config file's weights or upstreams changed while a rollout drives the route; the rollout's state is kept`)
      }
      // A rollout drives weights, not shadow or rules: edited ones apply all the same.
      if (shadowEdited || rulesEdited) await applyShadowOnly(route, state, file, { shadow: shadowEdited, rules: rulesEdited }, store, warnings)
      continue
    }
    let upstreams = upstreamsEdited ? undefined : state.upstreams
    let weights = weightsEdited ? file.weights : state.weights
    let shadow = shadowEdited ? undefined : state.shadow
    const rules = rulesEdited ? undefined : state.rules
    const upstreamsNow = effectiveUpstreams(route, upstreams === undefined ? undefined : { upstreams })
    const weightsOk = weightsFit(weights, upstreamsNow)
    const shadowOk = shadow === undefined || shadowProblems(shadow, upstreamsNow).length === 0
    // Only a live removal of the shadow upstream ({shadow: null}, allowed at percent 0) leaves the
    // file's shadow settings without one.
    const fileShadowStranded = (shadow === undefined || !shadowOk) && file.shadow.percent > 0 && upstreamsNow.shadow === undefined
    if (!weightsEdited && !upstreamsEdited && !shadowEdited && !rulesEdited && weightsOk && shadowOk && !fileShadowStranded) {
      // Said at start: a route that serves something else than its file says is no surprise.
      const note = options.reportOverrides === true ? overrideNote(route, state) : null
      if (note !== null) warnings.push(note)
      continue
    }
    if (!weightsOk) {
      warnings.push(`route ${route.name}: the live weights ${JSON.stringify(state.weights)} need an upstream the config no longer has; using the config file's weights`)
      weights = file.weights
    }
    if (!shadowOk) {
      warnings.push(`route ${route.name}: the live shadow settings (percent ${shadow?.percent}) need a shadow upstream the config no longer has; using the config file's shadow settings`)
      shadow = undefined
    }
    if (fileShadowStranded && upstreams !== undefined) {
      const { shadow: _removed, ...rest } = upstreams
      upstreams = rest
      warnings.push(`route ${route.name}: the config file's shadow settings (percent ${file.shadow.percent}) need its shadow upstream; the live removal of upstreams.shadow is dropped`)
    }
    const next: RouteUpdate = {
      weights,
      configured: file,
      ...(upstreams === undefined ? {} : { upstreams }),
      ...(shadow === undefined ? {} : { shadow }),
      ...(rules === undefined ? {} : { rules }),
      ...(state.rollout === undefined ? {} : { rollout: state.rollout }),
    }
    const edited = [weightsEdited && 'weights', upstreamsEdited && 'upstreams', shadowEdited && 'shadow settings', rulesEdited && 'rules'].filter((x) => x !== false).join(' and ')
    const why = edited !== ''
      ? `the config file's ${edited} changed since the live state was written`
      : weightsOk ? 'the live shadow settings no longer fit the upstreams' : 'the live weights no longer fit the upstreams'
    const result = await store.compareAndSet(route.name, state.revision, next, {
      event: () => ({
        actor: 'config',
        route: route.name,
        action: 'config.applied',
        old: { weights: state.weights, upstreams: state.upstreams ?? null, shadow: state.shadow ?? null, rules: state.rules ?? null },
        new: { weights, upstreams: upstreams ?? null, shadow: shadow ?? null, rules: rules ?? null },
        reason: why,
      }),
    })
    if (!result.ok) throw new WeirError('WEIR_ERR_STATE_CONFLICT', `route ${route.name} changed while the config was being applied; try again`)
    if (result.eventError !== undefined) throw result.eventError
    warnings.push(`route ${route.name}: ${why}; the file's values now apply (revision ${result.state.revision})`)
  }
  return warnings
}

/**
 * While a rollout drives the route, only the file's edited shadow settings and rules are
 * applied: the recorded file weights and upstreams stay as they were, so their edit is still
 * seen later.
 */
async function applyShadowOnly (
  route: RouteConfig, state: RouteState, file: Required<ConfiguredValues>, edited: { shadow: boolean; rules: boolean },
  store: StateStore, warnings: string[]
): Promise<void> {
  const { revision: _revision, updatedAt: _updatedAt, shadow, rules, configured, ...rest } = state
  const next: RouteUpdate = {
    ...rest,
    ...(edited.shadow || shadow === undefined ? {} : { shadow }),
    ...(edited.rules || rules === undefined ? {} : { rules }),
    configured: {
      weights: configured?.weights ?? file.weights,
      upstreams: configured?.upstreams ?? file.upstreams,
      shadow: edited.shadow ? file.shadow : configured?.shadow ?? file.shadow,
      rules: edited.rules ? file.rules : configured?.rules ?? file.rules,
    },
  }
  const what = [edited.shadow && 'shadow settings', edited.rules && 'rules'].filter((x) => x !== false).join(' and ')
  const why = `the config file's ${what} changed since the live state was written`
  const result = await store.compareAndSet(route.name, state.revision, next, {
    event: () => ({
      actor: 'config',
      route: route.name,
      action: 'config.applied',
      old: { ...(edited.shadow ? { shadow: state.shadow ?? null } : {}), ...(edited.rules ? { rules: state.rules ?? null } : {}) },
      new: { ...(edited.shadow ? { shadow: null } : {}), ...(edited.rules ? { rules: null } : {}) },
      reason: why,
    }),
  })
  if (!result.ok) throw new WeirError('WEIR_ERR_STATE_CONFLICT', `route ${route.name} changed while the config was being applied; try again`)
  if (result.eventError !== undefined) throw result.eventError
  warnings.push(`route ${route.name}: ${why}; the file's ${what} now apply (revision ${result.state.revision}), the rollout continues`)
}

/**
 * What a route's live state serves that its config file does not say (weights, upstreams,
 * shadow settings), and how to go back to the file; null when they agree.
 */
export function overrideNote (route: RouteConfig, state: RouteState): string | null {
  const differences: string[] = []
  const weights = (w: Readonly<WeightsBp>): string => VERSIONS.map((v) => `${v} ${w[v] / 100} %`).join(' / ')
  if (!isDeepStrictEqual({ ...state.weights }, { ...route.weights })) differences.push(`weights ${weights(state.weights)} (the file: ${weights(route.weights)})`)
  const live = effectiveUpstreams(route, state)
  const file = effectiveUpstreams(route, undefined)
  for (const name of UPSTREAM_NAMES) {
    if (isDeepStrictEqual(live[name], file[name])) continue
    differences.push(`upstreams.${name} ${live[name]?.join(', ') ?? 'none'} (the file: ${file[name]?.join(', ') ?? 'none'})`)
  }
  const shadow = liveShadow(route, state, live).input
  if (!isDeepStrictEqual(shadow, route.shadowInput)) differences.push(`shadow settings (percent ${shadow.percent}; the file: percent ${route.shadowInput.percent})`)
  const rules = liveRules(route, state).input
  if (!isDeepStrictEqual(rules, route.rulesInput)) differences.push(`rules (${rules.length}; the file: ${route.rulesInput.length})`)
  if (differences.length === 0) return null
  const rollout = state.rollout as { phase?: unknown } | null | undefined
  const driver = isActiveRollout(rollout) ? `a rollout (${String(rollout?.phase)}) drives it, ` : ''
  return `route ${route.name}: its live state (revision ${state.revision}, written ${state.updatedAt}) overrides the config file: ${driver}${differences.join('; ')}. ` +
    `The file's values apply again once you edit them in the file, or now: weir reset ${route.name} (POST /api/v1/routes/${route.name}/reset)`
}
