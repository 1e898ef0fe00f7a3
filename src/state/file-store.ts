// The single-process StateStore: the state lives in memory and in one JSON file that is
// replaced atomically (temp file, fsync, rename, fsync of the directory) before a write resolves.

import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { WeirError } from '../errors.ts'
import type { EventLog } from './event-log.ts'
import {
  checkArgs, checkRouteState, deepFreeze, matches, nextState, normalizeUpdate,
  type CompareAndSetResult, type RemoveResult, type StoreWriteOptions, type RouteState, type RouteUpdate, type StateListener, type StateStore,
} from './store.ts'

/** The on-disk format version this code reads and writes. */
export const STATE_FORMAT_VERSION = 1

export interface FileStateStore extends StateStore {
  /** Absolute path of the state file. */
  readonly path: string
}

type Routes = ReadonlyMap<string, RouteState>

/**
 * Opens (or starts) the state file at `file`. A missing file is an empty state; a file that
 * cannot be read or is not a valid state rejects with a WeirError instead of being reset.
 *
 * One process owns a state file: temp files left by a crashed writer are removed here, which
 * would break a second live writer (cluster workers write through the primary, see store.ts).
 */
export async function openFileStore (file: string): Promise<FileStateStore> {
  const path = resolve(file)
  const { routes, extra } = await load(path)
  const dir = dirname(path)
  try {
    await access(dir, constants.W_OK)
  } catch (err) {
    throw new WeirError('WEIR_ERR_STATE_WRITE_FAILED',
      `state directory ${dir} is not writable (${errCode(err)}): weir could not persist any change. Fix its permissions or choose another state file.`, { cause: err, file: path })
  }
  await removeTempFiles(dir, basename(path))
  return new FileStore(path, routes, extra)
}

class FileStore implements FileStateStore {
  readonly path: string
  #routes: Routes
  /** Top-level fields of the file this version does not know; written back unchanged. */
  readonly #extra: Record<string, unknown>
  readonly #listeners = new Set<StateListener>()
  /** Where each write's event is appended once the state file holds the change (event-log.ts). */
  #events: EventLog | null = null
  /** Tail of the write chain: every change runs after the previous one settled. */
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false
  /** Set when a write failed after replacing the file: memory and disk may differ. */
  #broken: WeirError | undefined

  constructor (path: string, routes: Routes, extra: Record<string, unknown>) {
    this.path = path
    this.#routes = routes
    this.#extra = extra
  }

  get (route: string): RouteState | undefined {
    return this.#routes.get(route)
  }

  all (): ReadonlyMap<string, RouteState> {
    return this.#routes
  }

  recordEventsIn (events: EventLog): void {
    this.#events = events
  }

  compareAndSet (route: string, expectedRevision: number | null, next: RouteUpdate, options: StoreWriteOptions = {}): Promise<CompareAndSetResult> {
    let update: Record<string, unknown>
    try {
      checkArgs(route, expectedRevision)
      update = normalizeUpdate(route, next)
      if (options.event !== undefined && this.#events === null) throw new TypeError('a write with an event needs recordEventsIn first')
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue(async () => {
      const current = this.#routes.get(route)
      if (!matches(current, expectedRevision)) return { ok: false, current }
      const state = nextState(current, update)
      const frozen = deepFreeze(state) as unknown as RouteState
      const routes = new Map(this.#routes)
      routes.set(route, frozen)
      await this.#commit(routes, route, frozen)
      if (options.event === undefined) return { ok: true, state: frozen }
      // Not one transaction: the state file, then the event log, each fsynced in turn. One process
      // writes both, in this queue, so events are in the order of the changes; only a crash or a
      // failed append between the two leaves a change without its event (the caller is told).
      try {
        return { ok: true, state: frozen, event: await (this.#events as EventLog).append(options.event(frozen)) }
      } catch (err) {
        return { ok: true, state: frozen, eventError: err }
      }
    })
  }

  remove (route: string, expectedRevision: number | null = null): Promise<RemoveResult> {
    try {
      checkArgs(route, expectedRevision)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue(async () => {
      const current = this.#routes.get(route)
      if (!matches(current, expectedRevision)) return { ok: false, current }
      if (current === undefined) return { ok: true }
      const routes = new Map(this.#routes)
      routes.delete(route)
      await this.#commit(routes, route, undefined)
      return { ok: true }
    })
  }

  watch (listener: StateListener): () => void {
    // A wrapper per subscription, so subscribing the same function twice needs two unsubscribes.
    const entry: StateListener = (route, state) => listener(route, state)
    this.#listeners.add(entry)
    return () => { this.#listeners.delete(entry) }
  }

  async close (): Promise<void> {
    this.#closed = true
    await this.#queue
    this.#listeners.clear()
  }

  #enqueue<T> (task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new WeirError('WEIR_ERR_STATE_CLOSED', `the state store ${this.path} is closed`, { file: this.path }))
    const run = this.#queue.then(() => {
      if (this.#broken !== undefined) throw this.#broken
      return task()
    })
    this.#queue = run.catch(() => undefined)
    return run
  }

  /** Persists `routes`, then publishes them: memory never shows a change that is not durable. */
  async #commit (routes: Routes, route: string, state: RouteState | undefined): Promise<void> {
    const body = JSON.stringify({ version: STATE_FORMAT_VERSION, ...this.#extra, routes: Object.fromEntries(routes) }, null, 2) + '\n'
    try {
      await writeFileAtomic(this.path, body)
    } catch (err) {
      const replaced = (err as { replaced?: boolean }).replaced === true
      const failure = new WeirError('WEIR_ERR_STATE_WRITE_FAILED',
        `could not persist the state of route ${route} to ${this.path} (${errCode(err)})` +
        (replaced ? '; the file may already hold it, so this store refuses further writes: restart weir to reload the state' : '; nothing changed'), { cause: err, file: this.path })
      if (replaced) this.#broken = failure
      throw failure
    }
    this.#routes = routes
    for (const listener of this.#listeners) {
      try {
        listener(route, state)
      } catch (err) {
        // A faulty listener must neither undo a durable write nor starve the others: report it.
        queueMicrotask(() => { throw err })
      }
    }
  }
}

/**
 * Replaces `path` with `data` so that a crash at any moment leaves either the old or the new
 * file: a uniquely named temp file in the same directory is written and fsynced, renamed over
 * the target, and the directory is fsynced so the rename itself survives a power loss.
 * An error thrown after the rename carries `replaced: true`.
 */
export async function writeFileAtomic (path: string, data: string): Promise<void> {
  const dir = dirname(path)
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const handle = await open(temp, 'wx', 0o600)
    try {
      await handle.writeFile(data, 'utf8')
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => undefined)
    throw err
  }
  try {
    await syncDirectory(dir)
  } catch (err) {
    throw Object.assign(err as Error, { replaced: true })
  }
}

async function syncDirectory (dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; NTFS journals the rename itself.
  if (process.platform === 'win32') return
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

async function removeTempFiles (dir: string, base: string): Promise<void> {
  const prefix = `.${base}.`
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) await unlink(join(dir, name)).catch(() => undefined)
  }
}

async function load (path: string): Promise<{ routes: Routes; extra: Record<string, unknown> }> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (errCode(err) === 'ENOENT') {
      try {
        await mkdir(dirname(path), { recursive: true })
      } catch (mkdirErr) {
        throw new WeirError('WEIR_ERR_STATE_WRITE_FAILED',
          `cannot create the state directory ${dirname(path)} (${errCode(mkdirErr)}): create it or choose another state file.`, { cause: mkdirErr, file: path })
      }
      return { routes: new Map(), extra: {} }
    }
    throw new WeirError('WEIR_ERR_STATE_UNREADABLE',
      `cannot read state file ${path} (${errCode(err)}). Fix its permissions so weir can read and write it; ` +
      `or move it aside (mv ${sh(path)} ${sh(path + '.bad')}) to start from the config file's weights, or restore a backup.`, { cause: err, file: path })
  }
  const corrupt = (what: string, cause?: unknown): WeirError => new WeirError('WEIR_ERR_STATE_CORRUPT',
    `state file ${path} is corrupt: ${what}. weir will not start from a damaged state: ` +
    `move it aside (mv ${sh(path)} ${sh(path + '.bad')}) to start from the config file's weights, or restore a backup.`, { cause, file: path })
  if (text.trim() === '') throw corrupt('it is empty')
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw corrupt(`it is not valid JSON (${(err as Error).message})`, err)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw corrupt('it is not a JSON object { "version": 1, "routes": {...} }')
  const { version, routes, ...extra } = doc as Record<string, unknown>
  if (version !== STATE_FORMAT_VERSION) {
    if (typeof version === 'number' && Number.isInteger(version) && version > STATE_FORMAT_VERSION) {
      throw new WeirError('WEIR_ERR_STATE_VERSION',
        `state file ${path} has format version ${version}, this weir reads version ${STATE_FORMAT_VERSION} (was it written by a newer weir?). ` +
        `Run a weir that reads it, or move it aside (mv ${sh(path)} ${sh(path + '.bad')}) to start from the config file's weights.`, { file: path })
    }
    throw corrupt(`"version" must be ${STATE_FORMAT_VERSION} (found ${JSON.stringify(version) ?? 'nothing'})`)
  }
  if (typeof routes !== 'object' || routes === null || Array.isArray(routes)) throw corrupt('"routes" must be an object of route name → state')
  const problems: string[] = []
  const map = new Map<string, RouteState>()
  for (const [name, value] of Object.entries(routes)) {
    const before = problems.length
    checkRouteState(value, `routes.${name}`, true, problems)
    if (problems.length === before) map.set(name, deepFreeze(value) as RouteState)
  }
  if (problems.length > 0) throw corrupt(problems.join('; '))
  return { routes: map, extra }
}

function errCode (err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' ? code : String((err as Error | undefined)?.message ?? err)
}

/** Quotes a path for the copy-pasteable `mv` hint. */
function sh (path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`
}
