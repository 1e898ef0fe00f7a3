// The live state of every route (weights, upstream overrides, shadow settings, rollout) behind
// one small interface: a synchronous in-memory read, a compare-and-set write, and a change feed.

import { Value } from '@sinclair/typebox/value'
import type { WeightsBp } from '../config/model.ts'
import { RulesSchema, ShadowSchema, type RuleInput, type ShadowInput } from '../config/schema.ts'
import { isPlainObject } from '../is-plain-object.ts'
import { WeirError } from '../errors.ts'
import type { EventInput, EventLog, WeirEvent } from './event-log.ts'
import { UPSTREAM_NAMES, VERSIONS, type UpstreamName } from '../vocabulary.ts'

/*
 * Design note: one interface, three back ends.
 *
 * - Single process: `FileStateStore` (file-store.ts) holds the state in memory and persists
 *   every change to one JSON file (atomic rename) before the write resolves.
 * - node:cluster: the primary owns the FileStateStore; each worker holds a replica that
 *   implements this same interface. Its `get`/`all` read the worker's snapshot, `compareAndSet`
 *   and `remove` are IPC requests the primary executes (so writes stay serialized in one place)
 *   and answers after the file is durable, and `watch` is fed by the primary's broadcast of each
 *   change, so every worker converges on the same revisions.
 * - Distributed (etcd): one key per route. `revision` maps to the key's mod_revision,
 *   `compareAndSet` to a Txn whose Compare is `mod_revision == expected` (`create_revision == 0`
 *   for "must not exist", no Compare for `null`) that also puts the change's event (one revision,
 *   both or neither), `remove` to a guarded delete, and `watch` to an etcd watch on the key
 *   prefix that also keeps the local snapshot current.
 *
 * `get` is synchronous on purpose: the data path picks a version per request and must never
 * await the control path. It reads an in-memory snapshot; the store pushes changes through
 * `watch`, where the route table is rebuilt once per change, not once per request.
 */

/** A route's live state. Objects handed out by a store are frozen; build a new one to change it. */
export interface RouteState {
  /** Bumped by every successful write of this route: 1 for a new route. */
  readonly revision: number
  readonly weights: Readonly<WeightsBp>
  /** Per-version upstream origins that replace the config file's (absent: use the config). */
  readonly upstreams?: Readonly<Partial<Record<UpstreamName, readonly string[]>>>
  /** The rollout driving this route (owned by the controller); `null` or absent when none. */
  readonly rollout?: unknown
  /**
   * The route's complete shadow settings (schema defaults applied) that replace the config
   * file's; absent when they were never changed through the API.
   */
  readonly shadow?: Readonly<ShadowInput>
  /** Match rules (the config file's form) that replace the file's; absent when never changed through the API. */
  readonly rules?: readonly RuleInput[]
  /**
   * The config file's weights, upstreams and shadow settings when this state was written. When
   * the file's values differ from these, the file was edited since, and its values win (see
   * live-routes.ts).
   */
  readonly configured?: Readonly<ConfiguredValues>
  /** ISO time of the last write. */
  readonly updatedAt: string
}

/** A route's weights, upstreams and shadow settings as the config file sets them. */
export interface ConfiguredValues {
  readonly weights: Readonly<WeightsBp>
  readonly upstreams: Readonly<Partial<Record<UpstreamName, readonly string[]>>>
  /** Absent in states written before shadow settings could be changed live. */
  readonly shadow?: Readonly<ShadowInput>
  /** Absent in states written before rules could be changed live. */
  readonly rules?: readonly RuleInput[]
}

/**
 * What a writer supplies. The fields named here replace the stored ones (omit `upstreams` to
 * drop overrides); fields of the stored route this version of weir does not know are kept.
 */
export type RouteUpdate = Omit<RouteState, 'revision' | 'updatedAt'>

export interface StoreWriteOptions {
  /**
   * The write is a fleet leader's decision; a store shared by a fleet writes it only while this
   * replica still holds the leadership (else the result is not ok, as for a stale revision). A
   * store of one replica ignores it.
   */
  readonly fenced?: boolean
  /**
   * The event that records the change, made from the state written. It goes to the event log
   * given to `recordEventsIn`, committed with the change: on etcd in the same transaction (both
   * or neither are written), with a state file appended right after the file is durable.
   */
  readonly event?: (state: RouteState) => EventInput
}

export type CompareAndSetResult =
  | {
    readonly ok: true
    readonly state: RouteState
    /** The change's event as written (with its id), when the write asked for one and it was written. */
    readonly event?: WeirEvent
    /** Why the change's event could not be written (a state file's log only: the change stands). */
    readonly eventError?: unknown
  }
  | { readonly ok: false; readonly current: RouteState | undefined }

export type RemoveResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly current: RouteState | undefined }

/** Called after each successful change; `state` is undefined when the route was removed. */
export type StateListener = (route: string, state: RouteState | undefined) => void

export interface StateStore {
  /** The route's current state, from memory. */
  get (route: string): RouteState | undefined
  /** Every route; an immutable snapshot (a later write produces a new map). */
  all (): ReadonlyMap<string, RouteState>
  /**
   * Writes `next` when the route's revision is `expectedRevision` (`0`: the route must not
   * exist; `null`: no check). Resolves once the change is durable; concurrent calls are
   * serialized, so of N calls expecting the same revision exactly one succeeds.
   */
  compareAndSet (route: string, expectedRevision: number | null, next: RouteUpdate, options?: StoreWriteOptions): Promise<CompareAndSetResult>
  /** Deletes the route (same `expectedRevision` rules); removing an absent route with `null` is ok. */
  remove (route: string, expectedRevision?: number | null): Promise<RemoveResult>
  /** The log each write's `event` goes to (set once at start, before such a write). */
  recordEventsIn (events: EventLog): void
  /** Subscribes to changes; returns the unsubscribe function. */
  watch (listener: StateListener): () => void
  /** Waits for pending writes, then refuses new ones. */
  close (): Promise<void>
}

/** Fields of a route this version of weir understands; any other field is carried through writes. */
export const KNOWN_ROUTE_FIELDS: ReadonlySet<string> = new Set(['revision', 'weights', 'upstreams', 'rollout', 'shadow', 'rules', 'configured', 'updatedAt'])

/**
 * Checks the shape of a stored route (`stored`: with revision and updatedAt), appending one
 * problem per wrong field to `problems`. Shared by loading and writing, so a store never
 * writes what it would refuse to read back.
 */
export function checkRouteState (value: unknown, path: string, stored: boolean, problems: string[]): void {
  if (!isPlainObject(value)) {
    problems.push(`${path} must be an object`)
    return
  }
  if (stored) {
    const rev = value.revision
    if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 1) problems.push(`${path}.revision must be an integer >= 1`)
    if (typeof value.updatedAt !== 'string' || Number.isNaN(Date.parse(value.updatedAt))) problems.push(`${path}.updatedAt must be an ISO date`)
  }
  const weights = value.weights
  if (!isPlainObject(weights)) {
    problems.push(`${path}.weights must be an object {stable, canary, green} in basis points`)
  } else {
    let sum = 0
    let valid = true
    for (const v of VERSIONS) {
      const w = weights[v]
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 10_000) {
        problems.push(`${path}.weights.${v} must be an integer between 0 and 10000 (basis points)`)
        valid = false
      } else {
        sum += w
      }
    }
    for (const key of Object.keys(weights)) {
      if (!(VERSIONS as readonly string[]).includes(key)) problems.push(`${path}.weights.${key} is not a version`)
    }
    if (valid && sum !== 10_000) problems.push(`${path}.weights must sum to 10000 basis points (they sum to ${sum})`)
  }
  const configured = value.configured
  if (configured !== undefined && (!isPlainObject(configured) || !isPlainObject(configured.weights) || !isPlainObject(configured.upstreams))) {
    problems.push(`${path}.configured must be an object {weights, upstreams}`)
  } else if (isPlainObject(configured)) {
    if (configured.shadow !== undefined) checkShadow(configured.shadow, `${path}.configured.shadow`, problems)
    if (configured.rules !== undefined) checkRules(configured.rules, `${path}.configured.rules`, problems)
  }
  if (value.shadow !== undefined) checkShadow(value.shadow, `${path}.shadow`, problems)
  if (value.rules !== undefined) checkRules(value.rules, `${path}.rules`, problems)
  const upstreams = value.upstreams
  if (upstreams !== undefined) {
    if (!isPlainObject(upstreams)) {
      problems.push(`${path}.upstreams must be an object`)
    } else {
      for (const [name, list] of Object.entries(upstreams)) {
        if (!(UPSTREAM_NAMES as readonly string[]).includes(name)) problems.push(`${path}.upstreams.${name} is not a version (stable, canary, green, shadow)`)
        else if (!Array.isArray(list) || list.some((u) => typeof u !== 'string' || u === '')) {
          problems.push(`${path}.upstreams.${name} must be a list of URLs`)
        }
      }
    }
  }
}

/** Stored shadow settings are complete (every field, defaults applied), as the config schema describes them. */
function checkShadow (value: unknown, path: string, problems: string[]): void {
  const error = Value.Errors(ShadowSchema, value).First()
  if (error !== undefined) problems.push(`${path}${error.path.replaceAll('/', '.')} is not a valid shadow setting: ${error.message.toLowerCase()}`)
}

/** Stored rules are a list of the config file's rules. */
function checkRules (value: unknown, path: string, problems: string[]): void {
  const error = Value.Errors(RulesSchema, value).First()
  if (error !== undefined) problems.push(`${path}${error.path.replaceAll('/', '.')} is not a valid list of match rules: ${error.message.toLowerCase()}`)
}

// ---- shared by the stores ----------------------------------------------------------------------

/** Refuses a write's arguments before anything is queued. */
export function checkArgs (route: string, expectedRevision: number | null): void {
  if (typeof route !== 'string' || route === '') throw new WeirError('WEIR_ERR_STATE_INVALID', 'the route name must be a non-empty string')
  if (expectedRevision !== null && (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0)) {
    throw new WeirError('WEIR_ERR_STATE_INVALID', `the expected revision of route ${route} must be null or an integer >= 0`)
  }
}

/** A detached, JSON-clean copy of a writer's update (so memory holds exactly what the file holds). */
export function normalizeUpdate (route: string, next: RouteUpdate): Record<string, unknown> {
  let copy: unknown
  try {
    copy = JSON.parse(JSON.stringify(next))
  } catch (err) {
    throw new WeirError('WEIR_ERR_STATE_INVALID', `the new state of route ${route} is not JSON-serializable (${(err as Error).message})`, { cause: err })
  }
  const problems: string[] = []
  checkRouteState(copy, `routes.${route}`, false, problems)
  if (problems.length > 0) throw new WeirError('WEIR_ERR_STATE_INVALID', `the new state of route ${route} is invalid: ${problems.join('; ')}`)
  // The store owns these two; a writer that spreads a stored state passes them along.
  const { revision: _revision, updatedAt: _updatedAt, ...rest } = copy as Record<string, unknown>
  return rest
}

/**
 * The state a successful write stores: the next revision, the writer's fields, the fields of the
 * stored route this version of weir does not know (a newer weir's, an operator's), and the time.
 */
export function nextState (current: RouteState | undefined, update: Record<string, unknown>): Record<string, unknown> {
  const state: Record<string, unknown> = { revision: (current?.revision ?? 0) + 1, ...update }
  if (current !== undefined) {
    for (const [key, value] of Object.entries(current)) {
      if (!KNOWN_ROUTE_FIELDS.has(key) && !(key in state)) state[key] = value
    }
  }
  state.updatedAt = new Date().toISOString()
  return state
}

export function matches (current: RouteState | undefined, expected: number | null): boolean {
  if (expected === null) return true
  if (expected === 0) return current === undefined
  return current?.revision === expected
}

export function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
