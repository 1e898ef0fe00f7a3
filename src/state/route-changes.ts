// The changes an operator makes to a route's live state — weights, upstreams, shadow settings,
// a blue/green switch — each a pure function from the request body and the route's current state
// to the fields to write, judged by the same schema pieces and rules as the config file. A refusal
// is a WeirError that names the fields. The route writer applies them (route-writer.ts).

import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { RouteConfig } from '../config/model.ts'
import { normalizeRules, normalizeUpstreams } from '../config/normalize.ts'
import { schemaProblems } from '../config/problems.ts'
import { checkWeights } from '../config/rules.ts'
import { RulesSchema, ShadowSchema, UpstreamSchema, WeightsSchema, type RuleInput, type ShadowInput } from '../config/schema.ts'
import { WeirError, type Problem } from '../errors.ts'
import { isPlainObject } from '../is-plain-object.ts'
import { VERSIONS, type UpstreamName, type Version } from '../vocabulary.ts'
import { effectiveUpstreams, liveShadow, shadowProblems } from './live-routes.ts'
import type { ChangeResult } from './route-writer.ts'
import type { RouteState } from './store.ts'

/** PUT upstreams: the versions to change; null takes one away. */
export const UpstreamsBodySchema = Type.Object({
  stable: Type.Optional(UpstreamSchema),
  canary: Type.Optional(Type.Union([UpstreamSchema, Type.Null()])),
  green: Type.Optional(Type.Union([UpstreamSchema, Type.Null()])),
  shadow: Type.Optional(Type.Union([UpstreamSchema, Type.Null()])),
}, { additionalProperties: false, minProperties: 1, description: 'The versions to change: an origin, a list of origins, or null to take the version\'s upstream away.' })

/** Any subset of the route's shadow settings; an unknown field is refused. */
export const ShadowBodySchema = Type.Partial(ShadowSchema, { description: 'Any of the route\'s shadow settings (at least one); the others stay.' })
const ShadowIgnoreSchema = ShadowSchema.properties.ignore

/** POST switch: the colour that takes 100 %. */
export const SwitchBodySchema = Type.Object({
  to: Type.Union([Type.Literal('stable'), Type.Literal('green')], { errorMessage: 'must be "green" or "stable"' }),
}, { additionalProperties: false })

/** Refuses with every problem: the message lists them, `problems` names each field. */
export function problemsOrThrow (problems: readonly Problem[]): void {
  if (problems.length === 0) return
  const message = problems.map((p) => `${p.path}: ${p.reason}`).join('; ')
  throw new WeirError('WEIR_ERR_ADMIN_INVALID', message, { problems })
}

/** A write needs a body: `undefined` is an empty request. */
export function requireBody (body: unknown, path: string): void {
  if (body === undefined) problemsOrThrow([{ path, reason: 'is required: send a JSON object' }])
}

/** PUT weights: body `{stable, canary, green}` in percent (an omitted version is 0). */
export function weightsChange (body: unknown, route: RouteConfig, state: RouteState | undefined): ChangeResult {
  requireBody(body, 'weights')
  problemsOrThrow(schemaProblems(WeightsSchema, body, 'weights'))
  const upstreams = effectiveUpstreams(route, state)
  const { bp, problems } = checkWeights(body as Partial<Record<Version, unknown>>, (v) => upstreams[v] !== undefined, 'weights')
  problemsOrThrow(problems)
  return { weights: bp }
}

/**
 * PUT upstreams: body `{version: URL | [URL] | null}` for the versions to change; null takes a
 * version's upstream away (its weight must be 0; stable always keeps one).
 */
export function upstreamsChange (body: unknown, route: RouteConfig, state: RouteState | undefined): ChangeResult {
  requireBody(body, 'upstreams')
  problemsOrThrow(schemaProblems(UpstreamsBodySchema, body, 'upstreams'))
  const given = body as Partial<Record<UpstreamName, string | string[] | null>>
  const problems: Problem[] = []
  const replaced = normalizeUpstreams(
    Object.fromEntries(Object.entries(given).filter(([, v]) => v !== null)) as Partial<Record<UpstreamName, string | string[]>>,
    '', problems)
  problemsOrThrow(problems)
  const overrides: Partial<Record<UpstreamName, readonly string[]>> = { ...state?.upstreams }
  for (const [version, value] of Object.entries(given) as [UpstreamName, unknown][]) {
    overrides[version] = value === null ? [] : (replaced[version] as string[])
  }
  const weights = state?.weights ?? route.weights
  const after = effectiveUpstreams(route, { upstreams: overrides })
  problemsOrThrow(VERSIONS.filter((v) => weights[v] > 0 && after[v] === undefined)
    .map((v) => ({ path: `upstreams.${v}`, reason: `cannot be removed while ${v} has weight ${weights[v] / 100}; set its weight to 0 first` })))
  const { percent } = liveShadow(route, state).input
  if (percent > 0 && after.shadow === undefined) {
    problemsOrThrow([{ path: 'upstreams.shadow', reason: `cannot be removed while shadow.percent is ${percent}; set it to 0 first` }])
  }
  return { weights, upstreams: overrides }
}

/**
 * PUT shadow: body with any of the shadow settings; those given replace the ones in force, the
 * rest stay (`ignore` is replaced whole, its omitted lists empty).
 */
export function shadowChange (body: unknown, route: RouteConfig, state: RouteState | undefined): ChangeResult {
  requireBody(body, 'shadow')
  // `ignore` takes its own defaults before the check; the rest must not (they merge instead).
  const given = isPlainObject(body) && isPlainObject(body.ignore)
    ? { ...body, ignore: Value.Default(ShadowIgnoreSchema, Value.Clone(body.ignore)) }
    : body
  problemsOrThrow(schemaProblems(ShadowBodySchema, given, 'shadow'))
  const fields = given as Partial<ShadowInput>
  if (Object.keys(fields).length === 0) {
    problemsOrThrow([{ path: 'shadow', reason: `must set at least one of ${Object.keys(ShadowSchema.properties).join(', ')}` }])
  }
  const upstreams = effectiveUpstreams(route, state)
  const shadow: ShadowInput = { ...liveShadow(route, state, upstreams).input, ...fields }
  problemsOrThrow(shadowProblems(shadow, upstreams))
  return { weights: state?.weights ?? route.weights, shadow }
}

/** POST switch: `{to: "green" | "stable"}` takes 100 % at once (blue/green). */
export function switchChange (body: unknown, route: RouteConfig, state: RouteState | undefined): ChangeResult {
  if (body === undefined) problemsOrThrow([{ path: 'body.to', reason: 'is required: the version to switch to, as {"to": "green"} or {"to": "stable"}' }])
  problemsOrThrow(schemaProblems(SwitchBodySchema, body, 'body'))
  const to = (body as { to: 'stable' | 'green' }).to
  if (effectiveUpstreams(route, state)[to] === undefined) {
    throw new WeirError('WEIR_ERR_ADMIN_INVALID', `body.to: version ${to} has no upstream`, { problems: [{ path: 'body.to', reason: `version ${to} has no upstream` }] })
  }
  return { weights: { stable: 0, canary: 0, green: 0, [to]: 10_000 } }
}

/**
 * POST reset: the route serves its config file's weights, upstreams, shadow settings and rules again
 * (the live overrides are dropped; a rollout's record is kept, and an active one needs ?force).
 * No body, or an empty JSON object.
 */
export function resetChange (body: unknown, route: RouteConfig): ChangeResult {
  if (body !== undefined && !(isPlainObject(body) && Object.keys(body).length === 0)) {
    problemsOrThrow([{ path: 'body', reason: 'must be empty: reset takes no fields' }])
  }
  return { weights: { ...route.weights }, upstreams: {}, shadow: route.shadowInput, rules: route.rulesInput }
}

/**
 * PUT rules: body `[{match, version}]`, the config file's `rules` (an empty list: none), judged
 * by the same schema and checks, against the upstreams in force. Replaces the rules whole.
 */
export function rulesChange (body: unknown, route: RouteConfig, state: RouteState | undefined): ChangeResult {
  requireBody(body, 'rules')
  problemsOrThrow(schemaProblems(RulesSchema, body, 'rules'))
  const problems: Problem[] = []
  normalizeRules(body as RuleInput[], effectiveUpstreams(route, state), 'rules', problems)
  problemsOrThrow(problems)
  return { weights: state?.weights ?? route.weights, rules: body as RuleInput[] }
}
