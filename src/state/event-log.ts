// The audit/event log: every state change (and every refused one) as one JSON line in an
// append-only file, with increasing ids, the newest kept in memory for `GET /api/v1/events`.

import { createReadStream } from 'node:fs'
import { mkdir, open, type FileHandle } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { WeirError } from '../errors.ts'

export interface WeirEvent {
  /** Increasing over the life of the file (continues after a restart). */
  readonly id: number
  /** ISO time. */
  readonly time: string
  /** Who: an admin token's name, `'controller'` or `'config'`. Never the token itself. */
  readonly actor: string
  readonly route?: string
  /** What: `'weights.set'`, `'rollback'`, `'rollout.start'`, `'rejected'`, ... */
  readonly action: string
  readonly old?: unknown
  readonly new?: unknown
  readonly reason?: unknown
  readonly requestId?: string
  /** In a fleet: the replica (`fleet.id`) that made the change. */
  readonly replica?: string
}

/** What a caller appends: the log assigns `id`, and `time` defaults to now. */
export type EventInput = Omit<WeirEvent, 'id' | 'time'> & { readonly time?: string }

export interface EventLogOptions {
  /** How many of the newest events `since` can serve (default 10 000). */
  maxInMemory?: number
  /**
   * fdatasync after each write batch (default true): an event is on disk before `append`
   * resolves, like the state change it records. Concurrent appends share one sync.
   */
  sync?: boolean
  /** Where recoverable problems found on open are reported (default: process.emitWarning). */
  warn?: (message: string) => void
}

export interface EventLog {
  readonly path: string
  /** The id of the newest event (0 when the log is empty). */
  readonly lastId: number
  /** Redacts, numbers and writes one event; resolves with it once it is written. */
  append (event: EventInput): Promise<WeirEvent>
  /**
   * Events with an id greater than `afterId`, oldest first. With `afterId`, `limit` keeps the
   * first ones (page forward by passing the last id seen); without it, the newest `limit`.
   * Only the newest `maxInMemory` events are served.
   */
  since (afterId?: number, limit?: number): WeirEvent[]
  /**
   * Only a log kept in the same store as the route state (etcd): prepares an event that the
   * state store writes in the same transaction as the change it records, so both or neither
   * are written (store.ts, `StoreWriteOptions.event`).
   */
  stage?: (event: EventInput) => StagedEvent
  /** Waits for pending appends, then closes the file. */
  close (): Promise<void>
}

/** An event to write in a state change's transaction (etcd-event-log.ts). */
export interface StagedEvent {
  /** The key to put, relative to the prefix the store and the log share (`events/…`). */
  readonly key: string
  readonly value: string
  /**
   * Called once the transaction is written, with its revision (the event's id): the log takes
   * the event in at once (its watch brings it again, and to the other replicas) and returns it.
   */
  committed (revision: number): WeirEvent
}

const SECRET_KEY = /token|authori[sz]ation|passw(?:or)?d|secret|api[-_]?key|credential|private[-_]?key|cookie-?value/i
const BEARER = /\b(Bearer|Basic)\s+[^\s"',;]+/gi
const URL_CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+(?::[^/\s@]*)?@/gi
const SECRET_PARAM = /([?&](?:[\w.-]*(?:token|secret|password|api[-_]?key|signature|sig))=)[^&\s#"']+/gi

/**
 * A copy of `value` safe to write to the log: object keys named like a secret (token,
 * authorization, password, secret, api key, credential) are dropped, and strings lose
 * `Bearer ...` credentials, `user:pass@` in URLs and secret-looking query parameters.
 */
export function redact (value: unknown): unknown {
  return redactValue(value, 0, new WeakSet())
}

function redactValue (value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactString(value)
  if (typeof value !== 'object' || value === null) return typeof value === 'bigint' ? value.toString() : value
  if (seen.has(value) || depth > 20) return '[omitted]'
  seen.add(value)
  try {
    if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen))
    if (value instanceof Error) {
      const code = (value as NodeJS.ErrnoException).code
      return code === undefined ? { message: redactString(value.message) } : { message: redactString(value.message), code }
    }
    const out: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(value)) {
      if (!SECRET_KEY.test(key)) out[key] = redactValue(v, depth + 1, seen)
    }
    return out
  } finally {
    seen.delete(value)
  }
}

function redactString (s: string): string {
  return s
    .replace(BEARER, '$1 [redacted]')
    .replace(URL_CREDENTIALS, '$1[redacted]@')
    .replace(SECRET_PARAM, '$1[redacted]')
}

interface Pending { readonly line: string; readonly event: WeirEvent; resolve (e: WeirEvent): void; reject (err: unknown): void }

/** Opens (creating it and its directory as needed) the event log at `file`. */
export async function openEventLog (file: string, options: EventLogOptions = {}): Promise<EventLog> {
  const path = resolve(file)
  const maxInMemory = Math.max(1, options.maxInMemory ?? 10_000)
  const sync = options.sync ?? true
  const warn = options.warn ?? ((message: string) => process.emitWarning(message, { code: 'WEIR_EVENT_LOG' }))

  await mkdir(dirname(path), { recursive: true })
  let handle: FileHandle
  try {
    // 'a+': appends always land at the end (O_APPEND); reading and truncating are needed on open.
    handle = await open(path, 'a+', 0o600)
  } catch (err) {
    throw unreadable(path, err)
  }
  let scan: Scan
  try {
    scan = await scanLog(path, maxInMemory, warn)
    if (scan.repair === 'newline') {
      await handle.appendFile('\n')
      scan.size += 1
    } else if (scan.repair === 'truncate') {
      await handle.truncate(scan.size)
    }
  } catch (err) {
    await handle.close()
    throw unreadable(path, err)
  }

  const memory = scan.events
  let lastId = scan.lastId
  /** Bytes of complete lines in the file: where a failed partial write is cut back to. */
  let size = scan.size
  let queue: Pending[] = []
  let flushing: Promise<void> | undefined
  let closed = false
  let failed: WeirError | undefined

  const remember = (event: WeirEvent): void => {
    memory.push(event)
    // Trim in batches: a shift per event would move the whole array each time.
    if (memory.length >= 2 * maxInMemory) memory.splice(0, memory.length - maxInMemory)
  }

  const flush = async (): Promise<void> => {
    for (;;) {
      if (queue.length === 0) {
        // Cleared in the same tick as the empty-queue check: a later append starts a new flush.
        flushing = undefined
        return
      }
      const batch = queue
      queue = []
      const data = batch.map((p) => p.line).join('')
      const bytes = Buffer.byteLength(data)
      try {
        if (failed !== undefined) throw failed
        await handle.appendFile(data, 'utf8')
        if (sync) await handle.datasync()
        size += bytes
      } catch (err) {
        if (failed === undefined) {
          // Cut a partial write back so the next line does not glue onto half a line.
          const cut = await handle.truncate(size).then(() => true, () => false)
          const error = new WeirError('WEIR_ERR_EVENTLOG_WRITE_FAILED',
            `could not write to the event log ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
          if (!cut) failed = error
          for (const p of batch) p.reject(error)
        } else {
          for (const p of batch) p.reject(failed)
        }
        continue
      }
      for (const p of batch) {
        remember(p.event)
        p.resolve(p.event)
      }
    }
  }

  const log: EventLog = {
    path,
    get lastId () { return lastId },

    append (input: EventInput): Promise<WeirEvent> {
      if (closed) return Promise.reject(new WeirError('WEIR_ERR_EVENTLOG_CLOSED', `the event log ${path} is closed`))
      if (failed !== undefined) return Promise.reject(failed)
      if (typeof input.actor !== 'string' || input.actor === '' || typeof input.action !== 'string' || input.action === '') {
        return Promise.reject(new TypeError('an event needs a non-empty actor and action'))
      }
      const event = buildEvent(++lastId, input)
      const line = JSON.stringify(event) + '\n'
      return new Promise<WeirEvent>((resolve, reject) => {
        queue.push({ line, event, resolve, reject })
        // Appends arriving while a batch is being written go out together in the next batch.
        flushing ??= flush()
      })
    },

    since: (afterId, limit) => eventsSince(memory, maxInMemory, afterId, limit),

    async close (): Promise<void> {
      if (closed) return
      closed = true
      await flushing
      await handle.close()
    },
  }
  return log
}

/** `EventLog.since` over events held in id order (the newest `maxInMemory` of them served). */
export function eventsSince (memory: readonly WeirEvent[], maxInMemory: number, afterId?: number, limit?: number): WeirEvent[] {
  const start = Math.max(0, memory.length - maxInMemory)
  const max = limit === undefined ? Infinity : Math.max(0, Math.floor(limit))
  if (afterId === undefined) {
    return memory.slice(Math.max(start, memory.length - max))
  }
  // Ids increase along the array: binary search for the first one above afterId.
  let lo = start
  let hi = memory.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((memory[mid] as WeirEvent).id <= afterId) lo = mid + 1
    else hi = mid
  }
  return memory.slice(lo, max === Infinity ? undefined : lo + max)
}

/** An event as appended: id and time, the caller's fields, secrets redacted. */
export function buildEvent (id: number, input: EventInput): WeirEvent {
  const event: Record<string, unknown> = { id, time: input.time ?? new Date().toISOString(), actor: input.actor }
  if (input.route !== undefined) event.route = input.route
  event.action = input.action
  if (input.old !== undefined) event.old = redact(input.old)
  if (input.new !== undefined) event.new = redact(input.new)
  if (input.reason !== undefined) event.reason = redact(input.reason)
  if (input.requestId !== undefined) event.requestId = input.requestId
  if (input.replica !== undefined) event.replica = input.replica
  return event as unknown as WeirEvent
}

interface Scan {
  events: WeirEvent[]
  lastId: number
  /** Byte length of the file's complete, kept content. */
  size: number
  repair: 'none' | 'newline' | 'truncate'
}

/** Streams the file once: keeps the newest events, finds the last id, and checks the tail. */
async function scanLog (path: string, maxInMemory: number, warn: (message: string) => void): Promise<Scan> {
  const events: WeirEvent[] = []
  let lastId = 0
  let offset = 0
  let lineNo = 0
  let invalid = 0
  let firstInvalid = 0
  let rest: Buffer = Buffer.alloc(0)

  const take = (text: string): boolean => {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return false
    }
    const id = (parsed as { id?: unknown } | null)?.id
    if (typeof parsed !== 'object' || parsed === null || typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return false
    if (id > lastId) lastId = id
    events.push(parsed as WeirEvent)
    if (events.length >= 2 * maxInMemory) events.splice(0, events.length - maxInMemory)
    return true
  }

  for await (const chunk of createReadStream(path)) {
    const buf = rest.length === 0 ? chunk as Buffer : Buffer.concat([rest, chunk as Buffer])
    let start = 0
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      lineNo++
      const text = buf.toString('utf8', start, nl)
      if (text.trim() !== '' && !take(text)) {
        if (invalid++ === 0) firstInvalid = lineNo
      }
      offset += nl + 1 - start
      start = nl + 1
    }
    rest = buf.subarray(start)
  }
  if (invalid > 0) warn(`event log ${path}: skipped ${invalid} unreadable line(s), the first at line ${firstInvalid}`)

  let repair: Scan['repair'] = 'none'
  if (rest.length > 0) {
    // A crash in the middle of a write: that append never resolved, so nobody was told it happened.
    if (take(rest.toString('utf8'))) {
      repair = 'newline'
      offset += rest.length
    } else {
      repair = 'truncate'
      warn(`event log ${path}: dropped an incomplete last line (${rest.length} bytes), left by a crash during a write`)
    }
  }
  // Ids in a hand-edited or merged file may be out of order; since() relies on increasing ids.
  if (events.some((e, i) => i > 0 && e.id <= (events[i - 1] as WeirEvent).id)) events.sort((a, b) => a.id - b.id)
  return { events: events.length > maxInMemory ? events.slice(-maxInMemory) : events, lastId, size: offset, repair }
}

function unreadable (path: string, err: unknown): WeirError {
  return new WeirError('WEIR_ERR_EVENTLOG_UNREADABLE',
    `cannot open the event log ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). ` +
    'Fix its permissions, or move it aside to start a new log.', { cause: err })
}
