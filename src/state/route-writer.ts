// The route write pipeline every change goes through, from the admin API, the controller or a
// rollout command: per-route queue, validation against the state in force, compare-and-set on the
// revision (retried on a lost race unless the caller pinned one), with the change's event. It
// throws domain errors (WeirError); only the admin API turns them into HTTP answers.

import type { Config, RouteConfig } from '../config/model.ts'
import { WeirError } from '../errors.ts'
import { isActiveRollout } from '../vocabulary.ts'
import type { EventInput } from './event-log.ts'
import { configuredValues, effectiveUpstreams, liveRules, liveShadow, percentOf, shadowSettingsView, weightsFit } from './live-routes.ts'
import type { RouteState, RouteUpdate, StateStore } from './store.ts'

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

/** What a change computes: the fields to write, and optionally the event's action and reason. */
export type ChangeResult = Pick<RouteUpdate, 'weights'> & Partial<RouteUpdate> & { action?: string; eventReason?: unknown }

/** Computes a change from the route's config and its current state; throws a WeirError to refuse it. */
export type Change = (route: RouteConfig, state: RouteState | undefined) => ChangeResult

/** A write that was made: the route's config and its state after the change. */
export interface Written {
  readonly route: RouteConfig
  readonly state: RouteState
}

export interface RouteWriterOptions {
  /** Writes each change with its event (the store's `recordEventsIn` names the log). */
  store: StateStore
  /** The config in force (replaced on reload). */
  config: () => Config
  /** What an event records of a rollout (a summary of the persisted value). */
  summarizeRollout: (rollout: unknown) => unknown
  /**
   * Resolves once the last durable change is in force in every data-path process (workers
   * acknowledge asynchronously); a write answers only after it. Never rejects.
   */
  inForce?: () => Promise<void>
  /** Told when a change was made but its event could not be logged (a state file's log; the change stands). */
  onEventLogError: (err: unknown, route: string) => void
}

/** Attempts of a write without If-Match that lost a race to another write (each retry re-validates). */
const MAX_ATTEMPTS = 5

export class RouteWriter {
  readonly #o: RouteWriterOptions
  /** Per route, the tail of its queue of writes: each validates and writes after the previous one. */
  readonly #queues = new Map<string, Promise<unknown>>()

  constructor (options: RouteWriterOptions) {
    this.#o = options
  }

  /** Every route of the config in force, in order. */
  routes (): readonly RouteConfig[] {
    return this.#o.config().routes
  }

  /** The route's config; WEIR_ERR_ADMIN_ROUTE_NOT_FOUND when no route has the name. */
  route (name: string): RouteConfig {
    const route = this.#o.config().routes.find((r) => r.name === name)
    if (route === undefined) throw new WeirError('WEIR_ERR_ADMIN_ROUTE_NOT_FOUND', `no route is named ${JSON.stringify(name)}`)
    return route
  }

  /**
   * Validates `change` against the current state and writes it with compare-and-set. Writes to
   * one route run one at a time, so each is validated against the state the previous one left. A
   * write that still lost a race (to a writer outside this process) is validated again on the
   * newer state and retried, unless the caller pinned a revision with If-Match.
   */
  write (name: string, action: string, options: WriteOptions, caller: Caller, change: Change): Promise<Written> {
    return this.#enqueue(name, () => this.#writeNow(name, action, options, caller, change, false)) as Promise<Written>
  }

  /**
   * The same write pinned to `revision`, for a writer that decided on that revision (the
   * controller): null, not an error, when the route changed since — the writer looks again.
   */
  writeAt (name: string, revision: number, action: string, caller: Caller, change: Change, fenced = false): Promise<Written | null> {
    return this.#enqueue(name, () => this.#writeNow(name, action, { ifMatch: revision, force: true }, caller, change, true, fenced))
  }

  #enqueue (name: string, run: () => Promise<Written | null>): Promise<Written | null> {
    const previous = this.#queues.get(name) ?? Promise.resolve()
    const result = previous.then(run)
    const tail = result.catch(() => undefined)
    this.#queues.set(name, tail)
    void tail.then(() => { if (this.#queues.get(name) === tail) this.#queues.delete(name) })
    return result
  }

  async #writeNow (name: string, action: string, options: WriteOptions, caller: Caller, change: Change, staleIsNull: boolean, fenced = false): Promise<Written | null> {
    for (let attempt = 1; ; attempt++) {
      const route = this.route(name)
      const state = this.#o.store.get(name)
      const revision = state?.revision ?? 0
      if (options.ifMatch != null && options.ifMatch !== revision) {
        if (staleIsNull) return null
        throw new WeirError('WEIR_ERR_ADMIN_STALE_REVISION', `If-Match: the route is at revision ${revision}, not ${options.ifMatch}`)
      }
      if (options.force !== true && isActiveRollout(state?.rollout)) {
        throw new WeirError('WEIR_ERR_ADMIN_ROLLOUT_ACTIVE', 'a rollout drives this route: abort it or roll back, or add ?force=true to change it anyway')
      }
      const computed = change(route, state)
      const upstreams = computed.upstreams ?? state?.upstreams
      // Every write carries the live shadow settings through, unless it is the one changing them.
      const shadow = computed.shadow ?? state?.shadow
      const rules = computed.rules ?? state?.rules
      const next: RouteUpdate = {
        weights: computed.weights,
        configured: configuredValues(route),
        ...(upstreams === undefined ? {} : { upstreams }),
        ...(shadow === undefined ? {} : { shadow }),
        ...(rules === undefined ? {} : { rules }),
        ...('rollout' in computed ? { rollout: computed.rollout } : state?.rollout === undefined ? {} : { rollout: state.rollout }),
      }
      const after = effectiveUpstreams(route, next)
      if (!weightsFit(next.weights, after)) {
        throw new WeirError('WEIR_ERR_ADMIN_INVALID', 'weights: a version with weight has no upstream', { problems: [{ path: 'weights', reason: 'a version with weight has no upstream' }] })
      }
      if ((shadow ?? route.shadowInput).percent > 0 && after.shadow === undefined) {
        throw new WeirError('WEIR_ERR_ADMIN_INVALID', 'shadow.percent: the route has no shadow upstream', { problems: [{ path: 'shadow.percent', reason: 'the route has no shadow upstream' }] })
      }
      // The event is committed with the change by the store (on etcd in one transaction).
      const event = (written: RouteState): EventInput => ({
        actor: caller.actor,
        route: name,
        action: computed.action ?? action,
        old: this.#summary(state, route, action),
        new: this.#summary(written, route, action),
        ...(computed.eventReason == null ? {} : { reason: computed.eventReason }),
        ...(caller.requestId === undefined ? {} : { requestId: caller.requestId }),
      })
      let result
      try {
        result = await this.#o.store.compareAndSet(name, revision, next, fenced ? { fenced: true, event } : { event })
      } catch (err) {
        if (err instanceof WeirError) {
          // A store that is away (etcd) is not a write that failed (a full disk): its own code, so a
          // client can tell "retry when the store is back" from "the disk needs an operator".
          const code = err.code === 'WEIR_ERR_STATE_UNAVAILABLE' ? 'WEIR_ERR_STATE_UNAVAILABLE' : 'WEIR_ERR_ADMIN_STATE_WRITE_FAILED'
          throw new WeirError(code, `nothing changed: ${err.message}`, { cause: err })
        }
        throw err
      }
      if (!result.ok) {
        if (options.ifMatch != null && staleIsNull) return null
        if (options.ifMatch != null || attempt >= MAX_ATTEMPTS) {
          throw new WeirError('WEIR_ERR_ADMIN_STALE_REVISION', `the route changed concurrently (now revision ${result.current?.revision ?? 0})`)
        }
        continue
      }
      // The change is durable (a state file's event append failed after it): answering with an error would misreport it.
      if (result.eventError !== undefined) this.#o.onEventLogError(result.eventError, name)
      await this.#o.inForce?.()
      return { route, state: result.state }
    }
  }

  /** What an event records of a route before and after a change (shadow settings and rules only when they are what changed). */
  #summary (state: RouteState | undefined, route: RouteConfig, action: string): Record<string, unknown> {
    return {
      revision: state?.revision ?? 0,
      weights: percentOf(state?.weights ?? route.weights),
      upstreams: effectiveUpstreams(route, state),
      ...(action === 'shadow.set' ? { shadow: shadowSettingsView(liveShadow(route, state).input) } : {}),
      ...(action === 'rules.set' || action === 'reset' ? { rules: liveRules(route, state).input } : {}),
      ...(action.startsWith('rollout') || action === 'rollback' ? { rollout: this.#o.summarizeRollout(state?.rollout) } : {}),
    }
  }
}
