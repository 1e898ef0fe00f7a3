// The operations that change a route's live state: validate against the same schema pieces and
// rules as the config file, write with compare-and-set on the revision, log the event. The admin
// API and the built-in controller both go through here, so they are judged the same way.

import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { Config, RouteConfig } from '../config/load.ts'
import { normalizeUpstreams, schemaProblems } from '../config/load.ts'
import { VERSIONS, checkWeights, type Problem, type UpstreamName, type Version, type WeightsBp } from '../config/rules.ts'
import { RolloutPolicySchema, ShadowSchema, UpstreamSchema, WeightsSchema, type RolloutPolicy, type ShadowInput } from '../config/schema.ts'
import { planOf, resolvePolicy } from '../controller/policy.ts'
import { advance, CommandRefused, start, targetOf, type Command, type RolloutState, type Transition } from '../controller/step.ts'
import { readRollout, rolloutSummary, rolloutView, type RolloutSummary, type RolloutView } from '../controller/rollout-view.ts'
import { OperationalError, type ErrorCode } from '../errors.ts'
import type { EventLog } from '../state/event-log.ts'
import { configuredValues, effectiveUpstreams, isRolloutActive, liveShadow, shadowProblems, weightsFit } from '../state/live-routes.ts'
import { StateError, type RouteState, type RouteUpdate, type StateStore } from '../state/store.ts'

/** A refused operation: the code picks the status, `problems` name the fields. */
export class AdminError extends OperationalError<ErrorCode> {
  override readonly name = 'AdminError'
  readonly problems: readonly Problem[]

  constructor (code: ErrorCode, message: string, problems: readonly Problem[] = []) {
    super(code, message)
    this.problems = problems
  }
}

/** Who asks and under which request id; written into every event. */
export interface Caller {
  readonly actor: string
  readonly requestId?: string
}

export interface WriteOptions {
  /** The revision the caller last saw (If-Match); a different current revision → 412. */
  readonly ifMatch?: number | null
  /** Allows a manual change while a rollout drives the route. */
  readonly force?: boolean
}

/** A route as the admin API shows it (CONTRACT §7). */
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
  /** `config` until the first change through the API or controller, then `live`. */
  source: 'config' | 'live'
  updatedAt: string | null
}

const UpstreamsBodySchema = Type.Object({
  stable: Type.Optional(UpstreamSchema),
  canary: Type.Optional(Type.Union([UpstreamSchema, Type.Null()])),
  green: Type.Optional(Type.Union([UpstreamSchema, Type.Null()])),
  shadow: Type.Optional(Type.Union([UpstreamSchema, Type.Null()])),
}, { additionalProperties: false, minProperties: 1 })

/** Any subset of the route's shadow settings; an unknown field is refused. */
const ShadowBodySchema = Type.Partial(ShadowSchema)
const ShadowIgnoreSchema = ShadowSchema.properties.ignore

const SwitchBodySchema = Type.Object({
  to: Type.Union([Type.Literal('stable'), Type.Literal('green')], { errorMessage: 'must be "green" or "stable"' }),
}, { additionalProperties: false })

/** What a change computes: the fields to write, and optionally the event's action and reason. */
type ChangeResult = Pick<RouteUpdate, 'weights'> & Partial<RouteUpdate> & { action?: string; eventReason?: unknown }

/** Attempts of a write without If-Match that lost a race to another write (each retry re-validates). */
const MAX_ATTEMPTS = 5

export interface RouteServiceOptions {
  store: StateStore
  events: EventLog
  /** The config in force (replaced on reload). */
  config: () => Config
  /** Told when a change was made but its event could not be logged (the change stands). */
  onEventLogError: (err: unknown, route: string) => void
}

export class RouteService {
  readonly #store: StateStore
  readonly #events: EventLog
  readonly #config: () => Config
  readonly #onEventLogError: (err: unknown, route: string) => void
  /** Per route, the tail of its queue of writes: each validates and writes after the previous one. */
  readonly #queues = new Map<string, Promise<unknown>>()

  constructor (options: RouteServiceOptions) {
    this.#store = options.store
    this.#events = options.events
    this.#config = options.config
    this.#onEventLogError = options.onEventLogError
  }

  list (): RouteView[] {
    return this.#config().routes.map((route) => this.#view(route, this.#store.get(route.name)))
  }

  get (name: string): RouteView {
    return this.#view(this.#route(name), this.#store.get(name))
  }

  /** PUT weights: body `{stable, canary, green}` in percent (an omitted version is 0). */
  setWeights (name: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RouteView> {
    return this.#change(name, 'weights.set', options, caller, (route, state) => {
      requireBody(body, 'weights')
      problemsOrThrow(schemaProblems(WeightsSchema, body, 'weights'))
      const upstreams = effectiveUpstreams(route, state)
      const { bp, problems } = checkWeights(body as Partial<Record<Version, unknown>>, (v) => upstreams[v] !== undefined, 'weights')
      problemsOrThrow(problems)
      return { weights: bp }
    })
  }

  /**
   * PUT upstreams: body `{version: URL | [URL] | null}` for the versions to change; null takes a
   * version's upstream away (its weight must be 0; stable always keeps one).
   */
  setUpstreams (name: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RouteView> {
    return this.#change(name, 'upstreams.set', options, caller, (route, state) => {
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
    })
  }

  /**
   * PUT shadow: body with any of the shadow settings (`percent`, `maxInFlight`, `maxBodyBytes`,
   * `methods`, `timeout`, `compare`, `ignore`); those given replace the ones in force, the rest
   * stay (`ignore` is replaced whole, its omitted lists empty). Allowed while a rollout drives the
   * route: a rollout drives weights, not shadow.
   */
  setShadow (name: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RouteView> {
    return this.#change(name, 'shadow.set', { ...options, force: true }, caller, (route, state) => {
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
    })
  }

  /** POST switch: `{to: "green" | "stable"}` takes 100 % at once (blue/green). */
  switchTo (name: string, body: unknown, options: WriteOptions, caller: Caller): Promise<RouteView> {
    return this.#change(name, 'switch', options, caller, (route, state) => {
      requireBody(body, 'body')
      problemsOrThrow(schemaProblems(SwitchBodySchema, body, 'body'))
      const to = (body as { to: 'stable' | 'green' }).to
      if (effectiveUpstreams(route, state)[to] === undefined) {
        throw new AdminError('WEIR_ERR_ADMIN_INVALID', `body.to: version ${to} has no upstream`, [{ path: 'body.to', reason: `version ${to} has no upstream` }])
      }
      return { weights: { stable: 0, canary: 0, green: 0, [to]: 10_000 } }
    })
  }

  /** POST rollback: stable 100 % at once, and any rollout marked failed. Allowed during a rollout. */
  rollback (name: string, options: WriteOptions, caller: Caller, now = Date.now()): Promise<RouteView> {
    return this.#change(name, 'rollback', { ...options, force: true }, caller, (_route, state) => {
      const current = readRollout(state?.rollout)
      let rollout = state?.rollout ?? null
      if (current !== null && isRolloutActive(current)) {
        // The same end as an abort, in the rollback's own write (weights: stable 100 %).
        const aborted = advance(current, { kind: 'command', command: 'abort', now, actor: caller.actor }).state
        rollout = { ...aborted, reason: `rolled back by ${caller.actor}` }
      } else if (isRolloutActive(rollout)) {
        rollout = { ...(rollout as object), phase: 'failed', reason: `rolled back by ${caller.actor}` }
      }
      return { weights: { stable: 10_000, canary: 0, green: 0 }, rollout }
    })
  }

  /** GET rollout: the route's rollout in full (phase `idle` when none ever ran). */
  rollout (name: string): RolloutView {
    const route = this.#route(name)
    const state = this.#store.get(name)
    return rolloutView(route.name, readRollout(state?.rollout), percent(state?.weights ?? route.weights), state?.revision ?? 0)
  }

  /**
   * POST rollout: checks the policy (body over the route's configured policy, then defaults) and
   * the route (the version it moves has an upstream, the other one no weight), then writes the
   * rollout's first state, with the first step's weights when nothing has to be checked first.
   */
  startRollout (name: string, body: unknown, options: WriteOptions, caller: Caller, now: number, id: string): Promise<{ view: RolloutView; transition: Transition }> {
    let transition: Transition | undefined
    return this.#change(name, 'rollout.started', { ...options, force: true }, caller, (route, state) => {
      if (isRolloutActive(state?.rollout)) {
        throw new AdminError('WEIR_ERR_ADMIN_ROLLOUT_ACTIVE', 'a rollout already drives this route: abort it first')
      }
      const resolved = resolvePolicy(route.rollout, body, (value) => schemaProblems(RolloutPolicySchema, value, 'rollout'))
      problemsOrThrow(resolved.problems)
      const policy = resolved.policy as RolloutPolicy
      const upstreams = effectiveUpstreams(route, state)
      const weights = state?.weights ?? route.weights
      const target = targetOf(policy)
      const other = target === 'canary' ? 'green' : 'canary'
      const problems: Problem[] = []
      if (upstreams[target] === undefined) problems.push({ path: 'rollout.strategy', reason: `a ${policy.strategy} rollout needs upstreams.${target}: set it with PUT .../upstreams first` })
      if (weights[other] !== 0) problems.push({ path: 'rollout.strategy', reason: `a ${policy.strategy} rollout needs ${other} at weight 0 (it is ${weights[other] / 100})` })
      if (policy.strategy === 'bluegreen') {
        if (policy.smoke === undefined && !policy.webhooks.some((h) => h.type === 'pre-rollout')) {
          problems.push({ path: 'rollout.smoke', reason: 'a bluegreen rollout needs smoke.path or a pre-rollout webhook to check green before the switch' })
        }
        if (policy.smoke !== undefined && !policy.smoke.path.startsWith(route.pathPrefix)) {
          problems.push({ path: 'rollout.smoke.path', reason: `must start with the route's pathPrefix ${route.pathPrefix}` })
        }
      }
      problemsOrThrow(problems)
      transition = start(planOf(policy), weights, now, caller.actor, id)
      return this.#applied(route, state, transition)
    }).then((view) => ({ view: rolloutView(name, readRollout(transition?.state), view.weights, view.revision), transition: transition as Transition }))
  }

  /** The manual gates (pause, resume, promote, promote-full, abort), judged by the state machine. */
  commandRollout (name: string, command: Command, caller: Caller, now: number): Promise<{ view: RolloutView; transition: Transition }> {
    let transition: Transition | undefined
    return this.#change(name, `rollout.${command}`, { force: true }, caller, (route, state) => {
      const rollout = readRollout(state?.rollout)
      if (rollout === null) throw new AdminError('WEIR_ERR_ADMIN_ROLLOUT_STATE', 'no rollout has run on this route: start one with POST .../rollout')
      try {
        transition = advance(rollout, { kind: 'command', command, now, actor: caller.actor })
      } catch (err) {
        if (err instanceof CommandRefused) throw new AdminError('WEIR_ERR_ADMIN_ROLLOUT_STATE', `${command}: ${err.message}`)
        throw err
      }
      return this.#applied(route, state, transition)
    }).then((view) => ({ view: rolloutView(name, readRollout(transition?.state), view.weights, view.revision), transition: transition as Transition }))
  }

  /**
   * The controller's write of a transition it computed on the route at `revision`: refused with
   * 412 when anything changed the route since (the controller then looks again).
   */
  applyRollout (name: string, revision: number, transition: Transition, caller: Caller): Promise<RouteView> {
    return this.#change(name, transition.action, { ifMatch: revision, force: true }, caller, (route, state) => this.#applied(route, state, transition))
  }

  /** A transition as a route change: the new rollout state plus its weights or promotion. */
  #applied (route: RouteConfig, state: RouteState | undefined, transition: Transition): ChangeResult {
    const { effect } = transition
    const base = { rollout: transition.state as unknown, action: transition.action, eventReason: transition.reason }
    if (effect.kind === 'none') return { ...base, weights: state?.weights ?? route.weights }
    if (effect.kind === 'weights') return { ...base, weights: effect.weights }
    // Promotion: stable's upstreams become the promoted version's, in the same write as the weights.
    const from = effectiveUpstreams(route, state)[effect.from]
    if (from === undefined) throw new AdminError('WEIR_ERR_ADMIN_ROLLOUT_STATE', `${effect.from} has no upstream to promote`)
    return { ...base, weights: effect.weights, upstreams: { ...state?.upstreams, stable: from } }
  }

  #route (name: string): RouteConfig {
    const route = this.#config().routes.find((r) => r.name === name)
    if (route === undefined) throw new AdminError('WEIR_ERR_ADMIN_ROUTE_NOT_FOUND', `no route is named ${JSON.stringify(name)}`)
    return route
  }

  /**
   * Validates `compute`'s change against the current state and writes it with compare-and-set.
   * Writes to one route run one at a time, so each is validated against the state the previous
   * one left. A write that still lost a race (to a writer outside this service) is validated
   * again on the newer state and retried, unless the caller pinned a revision with If-Match.
   */
  #change (
    name: string, action: string, options: WriteOptions, caller: Caller,
    compute: (route: RouteConfig, state: RouteState | undefined) => ChangeResult,
  ): Promise<RouteView> {
    const previous = this.#queues.get(name) ?? Promise.resolve()
    const run = previous.then(() => this.#changeNow(name, action, options, caller, compute))
    const tail = run.catch(() => undefined)
    this.#queues.set(name, tail)
    void tail.then(() => { if (this.#queues.get(name) === tail) this.#queues.delete(name) })
    return run
  }

  async #changeNow (
    name: string, action: string, options: WriteOptions, caller: Caller,
    compute: (route: RouteConfig, state: RouteState | undefined) => ChangeResult,
  ): Promise<RouteView> {
    for (let attempt = 1; ; attempt++) {
      const route = this.#route(name)
      const state = this.#store.get(name)
      const revision = state?.revision ?? 0
      if (options.ifMatch != null && options.ifMatch !== revision) {
        throw new AdminError('WEIR_ERR_ADMIN_STALE_REVISION', `If-Match: the route is at revision ${revision}, not ${options.ifMatch}`)
      }
      if (options.force !== true && isRolloutActive(state?.rollout)) {
        throw new AdminError('WEIR_ERR_ADMIN_ROLLOUT_ACTIVE', 'a rollout drives this route: abort it or roll back, or add ?force=true to change it anyway')
      }
      const change = compute(route, state)
      const upstreams = change.upstreams ?? state?.upstreams
      // Every write carries the live shadow settings through, unless it is the one changing them.
      const shadow = change.shadow ?? state?.shadow
      const next: RouteUpdate = {
        weights: change.weights,
        configured: configuredValues(route),
        ...(upstreams === undefined ? {} : { upstreams }),
        ...(shadow === undefined ? {} : { shadow }),
        ...('rollout' in change ? { rollout: change.rollout } : state?.rollout === undefined ? {} : { rollout: state.rollout }),
      }
      const after = effectiveUpstreams(route, next)
      if (!weightsFit(next.weights, after)) {
        throw new AdminError('WEIR_ERR_ADMIN_INVALID', 'weights: a version with weight has no upstream', [{ path: 'weights', reason: 'a version with weight has no upstream' }])
      }
      if ((shadow ?? route.shadowInput).percent > 0 && after.shadow === undefined) {
        throw new AdminError('WEIR_ERR_ADMIN_INVALID', 'shadow.percent: the route has no shadow upstream', [{ path: 'shadow.percent', reason: 'the route has no shadow upstream' }])
      }
      let result
      try {
        result = await this.#store.compareAndSet(name, revision, next)
      } catch (err) {
        if (err instanceof StateError) throw new AdminError('WEIR_ERR_ADMIN_STATE_WRITE_FAILED', `nothing changed: ${err.message}`)
        throw err
      }
      if (!result.ok) {
        if (options.ifMatch != null || attempt >= MAX_ATTEMPTS) {
          throw new AdminError('WEIR_ERR_ADMIN_STALE_REVISION', `the route changed concurrently (now revision ${result.current?.revision ?? 0})`)
        }
        continue
      }
      try {
        await this.#events.append({
          actor: caller.actor,
          route: name,
          action: change.action ?? action,
          old: summary(state, route, action),
          new: summary(result.state, route, action),
          ...(change.eventReason == null ? {} : { reason: change.eventReason }),
          ...(caller.requestId === undefined ? {} : { requestId: caller.requestId }),
        })
      } catch (err) {
        // The change is durable and in force: answering with an error would misreport it.
        this.#onEventLogError(err, name)
      }
      return this.#view(route, result.state)
    }
  }

  #view (route: RouteConfig, state: RouteState | undefined): RouteView {
    const weights = state?.weights ?? route.weights
    return {
      name: route.name,
      upstreams: effectiveUpstreams(route, state),
      weights: percent(weights),
      revision: state?.revision ?? 0,
      rollout: rolloutSummary(readRollout(state?.rollout)),
      shadow: shadowView(liveShadow(route, state).input),
      source: state === undefined ? 'config' : 'live',
      updatedAt: state?.updatedAt ?? null,
    }
  }
}

function percent (bp: Readonly<WeightsBp>): Record<Version, number> {
  return { stable: bp.stable / 100, canary: bp.canary / 100, green: bp.green / 100 }
}

/** The settings in the documented order, detached from the (frozen) state. */
function shadowView (shadow: Readonly<ShadowInput>): ShadowInput {
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

/** What an event records of a route before and after a change (shadow settings only when they are what changed). */
function summary (state: RouteState | undefined, route: RouteConfig, action: string): Record<string, unknown> {
  return {
    revision: state?.revision ?? 0,
    weights: percent(state?.weights ?? route.weights),
    upstreams: effectiveUpstreams(route, state),
    ...(action === 'shadow.set' ? { shadow: shadowView(liveShadow(route, state).input) } : {}),
    ...(action.startsWith('rollout') || action === 'rollback' ? { rollout: rolloutSummary(readRollout(state?.rollout)) } : {}),
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function problemsOrThrow (problems: readonly Problem[]): void {
  if (problems.length === 0) return
  const message = problems.map((p) => `${p.path}: ${p.reason}`).join('; ')
  throw new AdminError('WEIR_ERR_ADMIN_INVALID', message, problems)
}

function requireBody (body: unknown, path: string): void {
  if (body === undefined) problemsOrThrow([{ path, reason: 'is required: send a JSON object' }])
}
