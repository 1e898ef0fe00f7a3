// The state store on etcd (config `state.etcd`, docs/fleet.md): one key per route under the
// prefix, `<prefix>routes/<name>`, holding the same JSON a state file holds per route. Every
// replica keeps the whole map in memory (reads stay synchronous, the data path never waits),
// writes are etcd transactions that compare the key's mod_revision with the one this replica
// last saw and put the change's event with the change (etcd-event-log.ts), and a watch on the
// prefix feeds every replica's listeners with the others' writes.
// While etcd is away, reads serve the last state seen and writes fail with
// WEIR_ERR_STATE_UNAVAILABLE (nothing changed); when it is back the watch resumes and the map is
// read again whole.

import { readFileSync } from 'node:fs'
import {
  Etcd3, EtcdAuthenticationFailedError, EtcdInvalidAuthTokenError, EtcdPermissionDeniedError, EtcdRoleNotGrantedError,
  type IKeyValue, type Namespace, type Watcher,
} from 'etcd3'
import type { EtcdSettings } from '../config/model.ts'
import { WeirError } from '../errors.ts'
import type { EventInput, EventLog, StagedEvent } from './event-log.ts'
import {
  checkArgs, checkRouteState, deepFreeze, matches, nextState, normalizeUpdate,
  type CompareAndSetResult, type RemoveResult, type StoreWriteOptions, type RouteState, type RouteUpdate, type StateListener, type StateStore,
} from './store.ts'

export interface EtcdStateStore extends StateStore {
  readonly endpoints: readonly string[]
  /** The client, for the other fleet parts (leader election, membership) on the same connection. */
  readonly client: Namespace
  /** Whether the last request to etcd succeeded (the watch reconnects on its own). */
  readonly connected: boolean
  /** Where fenced writes find the key they require (set by the fleet, fleet/fleet.ts). */
  fence: () => string | null
  /** Told of each fenced write the fence refused (this replica no longer leads): the leader's decision was not written. */
  onFenceRefused: (route: string, why: string) => void
}

const ROUTES = 'routes/'

/** Connects, reads every route under the prefix and starts watching; throws WEIR_ERR_STATE_UNAVAILABLE when etcd does not answer. */
export async function openEtcdStore (settings: EtcdSettings): Promise<EtcdStateStore> {
  const client = new Etcd3({
    hosts: settings.endpoints,
    dialTimeout: settings.timeoutMs,
    // A deadline on every call but the watch stream, so a write never hangs on a store that is away.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.timeoutMs }),
    ...(settings.auth === undefined ? {} : { auth: settings.auth }),
    ...(settings.tls === undefined
      ? {}
      : {
          credentials: {
            rootCertificate: readFileSync(settings.tls.ca),
            ...(settings.tls.key === undefined ? {} : { privateKey: readFileSync(settings.tls.key) }),
            ...(settings.tls.cert === undefined ? {} : { certChain: readFileSync(settings.tls.cert) }),
          },
        }),
  })
  const store = new EtcdStore(client, settings)
  try {
    await store.resync()
    await store.startWatch()
  } catch (err) {
    client.close()
    throw err
  }
  return store
}

class EtcdStore implements EtcdStateStore {
  readonly endpoints: readonly string[]
  readonly client: Namespace
  readonly #root: Etcd3
  readonly #prefix: string
  readonly #routes: Namespace
  #states = new Map<string, RouteState>()
  /** mod_revision of each route's key as last seen: what a write compares against. */
  readonly #modRevisions = new Map<string, string>()
  readonly #listeners = new Set<StateListener>()
  /** Where each write's event goes, in the write's transaction (the fleet's log, etcd-event-log.ts). */
  #events: EventLog | null = null
  #queue: Promise<unknown> = Promise.resolve()
  #watcher: Watcher | null = null
  #closed = false
  #connected = true
  /** False from a watch disconnect until the watch is back: meanwhile the state is polled. */
  #watchLive = true
  #recovering = false

  constructor (client: Etcd3, settings: EtcdSettings) {
    this.#root = client
    this.#prefix = settings.prefix
    this.endpoints = settings.endpoints
    this.client = client.namespace(settings.prefix)
    this.#routes = this.client.namespace(ROUTES)
  }

  get connected (): boolean {
    return this.#connected
  }

  get (route: string): RouteState | undefined {
    return this.#states.get(route)
  }

  all (): ReadonlyMap<string, RouteState> {
    return this.#states
  }

  /** The key a fenced write requires (this replica's candidacy while it leads); null: fenced writes are refused. */
  fence: () => string | null = () => null

  onFenceRefused: (route: string, why: string) => void = () => {}

  recordEventsIn (events: EventLog): void {
    if (events.stage === undefined) throw new TypeError('the etcd state store writes each change\'s event in its transaction: it needs the event log in etcd')
    this.#events = events
  }

  compareAndSet (route: string, expectedRevision: number | null, next: RouteUpdate, options: StoreWriteOptions = {}): Promise<CompareAndSetResult> {
    let update: Record<string, unknown>
    try {
      checkArgs(route, expectedRevision)
      update = normalizeUpdate(route, next)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue(async () => {
      const current = this.#states.get(route)
      if (!matches(current, expectedRevision)) return { ok: false, current }
      const state = nextState(current, update)
      const frozen = deepFreeze(state) as unknown as RouteState
      const body = JSON.stringify(state)
      const known = this.#modRevisions.get(route)
      const key = this.#prefix + ROUTES + route
      const fence = options.fenced === true ? this.fence() : null
      if (options.fenced === true && fence === null) {
        this.onFenceRefused(route, 'this replica does not lead (any more)')
        return { ok: false, current }
      }
      const event = options.event === undefined ? null : this.#stage(options.event(frozen))
      // Keys are absolute here: the fence (the election's key) lies outside the routes' namespace.
      // One transaction compares the route's revision (and the fence) and puts the route and its
      // event: both are written at one etcd revision, the event's id, or neither is.
      const txn = known === undefined ? this.#root.if(key, 'Create', '==', 0) : this.#root.if(key, 'Mod', '==', known)
      if (fence !== null) txn.and(fence, 'Create', '>', 0)
      const puts = [this.#root.put(key).value(body)]
      if (event !== null) puts.push(this.#root.put(this.#prefix + event.key).value(event.value))
      const result = await this.#call(`write route ${route}`, () => txn.then(...puts).commit())
      if (!result.succeeded) {
        // The route changed, or the fence is gone: etcd does not say which compare failed.
        if (fence !== null && (await this.#call(`read the fence ${fence}`, () => this.#root.get(fence).exists()).catch(() => true)) === false) {
          this.onFenceRefused(route, `its election key ${fence} is gone (its lease expired: another replica may lead)`)
        }
        // Another replica wrote first: read what it wrote, so the caller validates against it.
        await this.#refresh(route)
        return { ok: false, current: this.#states.get(route) }
      }
      const revision = String(result.header.revision)
      // In the log before the listeners hear of the change: whoever reads the change finds its event.
      const written = event?.committed(Number(revision))
      this.#apply(route, frozen, revision)
      return written === undefined ? { ok: true, state: frozen } : { ok: true, state: frozen, event: written }
    })
  }

  remove (route: string, expectedRevision: number | null = null): Promise<RemoveResult> {
    try {
      checkArgs(route, expectedRevision)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue(async () => {
      const current = this.#states.get(route)
      if (!matches(current, expectedRevision)) return { ok: false, current }
      if (current === undefined) return { ok: true }
      const known = this.#modRevisions.get(route) as string
      const result = await this.#call(`remove route ${route}`, () => this.#routes.if(route, 'Mod', '==', known).then(this.#routes.delete().key(route)).commit())
      if (!result.succeeded) {
        await this.#refresh(route)
        return { ok: false, current: this.#states.get(route) }
      }
      this.#apply(route, undefined, '')
      return { ok: true }
    })
  }

  watch (listener: StateListener): () => void {
    const entry: StateListener = (route, state) => listener(route, state)
    this.#listeners.add(entry)
    return () => { this.#listeners.delete(entry) }
  }

  async close (): Promise<void> {
    this.#closed = true
    await this.#queue.catch(() => undefined)
    this.#listeners.clear()
    await this.#watcher?.cancel().catch(() => undefined)
    this.#root.close()
  }

  /** Reads every route again and tells the listeners of each difference (at open, and after the store was away). */
  async resync (): Promise<void> {
    const response = await this.#call('read the routes', () => this.#routes.getAll().exec())
    const seen = new Set<string>()
    for (const kv of response.kvs) {
      const route = kv.key.toString()
      seen.add(route)
      this.#take(route, kv)
    }
    for (const route of [...this.#states.keys()]) if (!seen.has(route)) this.#apply(route, undefined, '')
  }

  async startWatch (): Promise<void> {
    const watcher = await this.#routes.watch().prefix('').create()
    this.#watcher = watcher
    watcher.on('put', (kv) => this.#take(kv.key.toString(), kv))
    watcher.on('delete', (kv) => {
      const route = kv.key.toString()
      if (this.#states.has(route)) this.#apply(route, undefined, '')
    })
    watcher.on('disconnected', () => {
      this.#watchLive = false
      this.#recover()
    })
    watcher.on('connected', () => {
      this.#watchLive = true
      // Back after an outage: what changed meanwhile may have been compacted away; read it all.
      this.resync().catch(() => undefined)
    })
    // A watcher that etcd cancels for good (no permission, a compacted revision) is recreated.
    watcher.on('error', () => {
      if (this.#closed) return
      this.#watchLive = false
      this.#recover()
      setTimeout(() => { void this.startWatch().then(() => this.resync()).catch(() => undefined) }, 1000).unref()
    })
  }

  /**
   * While etcd or the watch is away: the state is read whole every 500 ms, so a replica follows
   * the store as soon as etcd answers again, even before its watch is back (the client's watch
   * reconnects with a growing back-off).
   */
  #recover (): void {
    if (this.#recovering || this.#closed) return
    this.#recovering = true
    const attempt = (): void => {
      if (this.#closed || (this.#connected && this.#watchLive)) {
        this.#recovering = false
        return
      }
      this.resync().catch(() => undefined).finally(() => setTimeout(attempt, 500).unref())
    }
    setTimeout(attempt, 500).unref()
  }

  /** A key as read or watched: kept when it is newer than what this replica holds. */
  #take (route: string, kv: IKeyValue): void {
    const mod = String(kv.mod_revision)
    const known = this.#modRevisions.get(route)
    if (known !== undefined && BigInt(known) >= BigInt(mod)) return
    let parsed: unknown
    const problems: string[] = []
    try {
      parsed = JSON.parse(kv.value.toString())
      checkRouteState(parsed, `routes.${route}`, true, problems)
    } catch (err) {
      problems.push(`not JSON (${(err as Error).message})`)
    }
    if (problems.length > 0) {
      // A value weir cannot read (written by hand, or by a newer weir) is not served; the route keeps what it had.
      process.emitWarning(`weir: etcd key for route ${route} is not a valid route state (${problems.join('; ')}); ignored`)
      this.#modRevisions.set(route, mod)
      return
    }
    this.#apply(route, deepFreeze(parsed) as RouteState, mod)
  }

  #apply (route: string, state: RouteState | undefined, modRevision: string): void {
    const states = new Map(this.#states)
    if (state === undefined) {
      states.delete(route)
      this.#modRevisions.delete(route)
    } else {
      states.set(route, state)
      if (modRevision !== '') this.#modRevisions.set(route, modRevision)
    }
    this.#states = states
    for (const listener of this.#listeners) {
      try {
        listener(route, state)
      } catch (err) {
        queueMicrotask(() => { throw err })
      }
    }
  }

  async #refresh (route: string): Promise<void> {
    const response = await this.#call(`read route ${route}`, () => this.#routes.get(route).exec())
    const kv = response.kvs[0]
    if (kv === undefined) {
      if (this.#states.has(route)) this.#apply(route, undefined, '')
      return
    }
    this.#take(route, kv)
  }

  /**
   * Runs one request to etcd; a failure becomes WEIR_ERR_STATE_UNAVAILABLE naming the store and
   * saying whether etcd was not reached or answered no (credentials, permissions).
   */
  async #call<T> (what: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run()
      // What changed while etcd was away is read by #recover (or the watch's reconnect).
      this.#connected = true
      return result
    } catch (err) {
      this.#connected = false
      this.#recover()
      const verb = isRefusal(err) ? 'refused' : 'did not answer'
      throw new WeirError('WEIR_ERR_STATE_UNAVAILABLE', `etcd (${this.endpoints.join(', ')}) ${verb} to ${what}: ${(err as Error).message}`, { cause: err })
    }
  }

  #stage (input: EventInput): StagedEvent {
    if (this.#events?.stage === undefined) throw new TypeError('a write with an event needs recordEventsIn first')
    return this.#events.stage(input)
  }

  #enqueue<T> (task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new WeirError('WEIR_ERR_STATE_CLOSED', `the etcd state store (${this.endpoints.join(', ')}) is closed`))
    const run = this.#queue.then(task)
    this.#queue = run.catch(() => undefined)
    return run
  }
}

/** etcd answered, and said no: the credentials or the user's permissions, not the network. */
function isRefusal (err: unknown): boolean {
  return err instanceof EtcdAuthenticationFailedError || err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdPermissionDeniedError || err instanceof EtcdRoleNotGrantedError
}
