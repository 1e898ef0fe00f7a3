// The fleet's event log in etcd (docs/fleet.md): one key per event under `<prefix>events/`, its
// id the etcd revision that wrote it (increasing over the fleet's life, not consecutive), so
// every replica's `GET /api/v1/events` reads the same events in the same order. The event of a
// route change is written by the state store in the change's own transaction (`stage`), so the
// change and its event share that revision and stand or fail together. Each replica
// holds the newest `maxInMemory` in memory, fed by a watch; the oldest beyond `retain` are
// deleted from etcd as new ones come (retention by count). While the watch is away (etcd down,
// a reconnect with back-off) the events after the last one it delivered are read every 500 ms,
// so every replica's log catches up as soon as etcd answers.

import { randomBytes } from 'node:crypto'
import type { Namespace, Watcher } from 'etcd3'
import { WeirError } from '../errors.ts'
import { buildEvent, eventsSince, type EventInput, type EventLog, type StagedEvent, type WeirEvent } from './event-log.ts'

export interface EtcdEventLogOptions {
  /** Events served by `since` (default 10 000). */
  maxInMemory?: number
  /** Events kept in etcd (default 10 000); older ones are deleted. */
  retain?: number
  /** Appends of this replica between two retention passes (default 100). */
  trimEvery?: number
  /** For error messages: the etcd endpoints. */
  endpoints: readonly string[]
}

/** Where the events lie under the fleet's prefix. */
const EVENTS = 'events/'

/** Appends between two retention passes of one replica, by default. */
const TRIM_EVERY = 100

export async function openEtcdEventLog (client: Namespace, options: EtcdEventLogOptions & { replica: string }): Promise<EventLog> {
  const events = client.namespace(EVENTS)
  const maxInMemory = Math.max(1, options.maxInMemory ?? 10_000)
  const retain = Math.max(1, options.retain ?? 10_000)
  const trimEvery = Math.max(1, options.trimEvery ?? TRIM_EVERY)
  const where = `etcd (${options.endpoints.join(', ')})`
  const memory: WeirEvent[] = []
  let closed = false
  let appended = 0

  const parse = (value: string, id: number): WeirEvent | null => {
    try {
      const body = JSON.parse(value) as Record<string, unknown>
      if (typeof body.actor !== 'string' || typeof body.action !== 'string' || typeof body.time !== 'string') return null
      return { ...body, id } as unknown as WeirEvent
    } catch {
      return null
    }
  }

  /** Keeps `memory` in id order without duplicates (an own append also comes back through the watch). */
  const remember = (event: WeirEvent): void => {
    const last = memory.at(-1)
    if (last === undefined || event.id > last.id) {
      memory.push(event)
    } else {
      let lo = 0
      let hi = memory.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if ((memory[mid] as WeirEvent).id < event.id) lo = mid + 1
        else hi = mid
      }
      if (memory[lo]?.id === event.id) return
      memory.splice(lo, 0, event)
    }
    if (memory.length >= 2 * maxInMemory) memory.splice(0, memory.length - maxInMemory)
  }

  let initial
  try {
    initial = await events.getAll().sort('Mod', 'Descend').limit(maxInMemory).exec()
  } catch (err) {
    throw new WeirError('WEIR_ERR_EVENTLOG_UNREADABLE', `the event log in ${where} cannot be read: ${(err as Error).message}`, { cause: err })
  }
  for (const kv of [...initial.kvs].reverse()) {
    const event = parse(kv.value.toString(), Number(kv.mod_revision))
    if (event !== null) remember(event)
  }
  /** Every event up to this etcd revision is in memory (an own append does not move it: others' may lie below it). */
  let seenThrough = Number(initial.header.revision)
  const watcher: Watcher = await events.watch().prefix('').create()
  watcher.on('put', (kv) => {
    const event = parse(kv.value.toString(), Number(kv.mod_revision))
    if (event !== null) remember(event)
    seenThrough = Math.max(seenThrough, Number(kv.mod_revision))
  })

  /** Reads the events written after `seenThrough`. */
  const catchUp = async (): Promise<void> => {
    const missed = await events.getAll().minModRevision(seenThrough + 1).exec()
    for (const kv of missed.kvs) {
      const event = parse(kv.value.toString(), Number(kv.mod_revision))
      if (event !== null) remember(event)
    }
    seenThrough = Math.max(seenThrough, Number(missed.header.revision))
  }
  let watchLive = true
  let recovering = false
  const recover = (): void => {
    if (recovering || closed) return
    recovering = true
    const attempt = (): void => {
      if (closed || watchLive) {
        recovering = false
        return
      }
      catchUp().catch(() => undefined).finally(() => setTimeout(attempt, 500).unref())
    }
    setTimeout(attempt, 500).unref()
  }
  watcher.on('disconnected', () => {
    watchLive = false
    recover()
  })
  watcher.on('connected', () => {
    watchLive = true
    catchUp().catch(() => undefined)
  })

  const trim = async (): Promise<void> => {
    const count = Number((await events.getAll().count()) ?? 0)
    if (count <= retain) return
    const oldest = await events.getAll().sort('Mod', 'Ascend').limit(count - retain).keys()
    await Promise.all(oldest.map((key) => events.delete().key(key).exec()))
  }

  /** An event's key and value, and what makes it the log's once etcd has written it (at `revision`, its id). */
  const stage = (input: EventInput): StagedEvent => {
    if (closed) throw new WeirError('WEIR_ERR_EVENTLOG_CLOSED', `the event log in ${where} is closed`)
    if (typeof input.actor !== 'string' || input.actor === '' || typeof input.action !== 'string' || input.action === '') {
      throw new TypeError('an event needs a non-empty actor and action')
    }
    // Each event says which replica made the change: the log is the whole fleet's.
    const draft = buildEvent(0, { ...input, replica: options.replica }) as unknown as Record<string, unknown>
    delete draft.id
    // Time-ordered, unique key; the order that counts is etcd's revision, the event's id.
    const key = `${EVENTS}${Date.now().toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`
    return {
      key,
      value: JSON.stringify(draft),
      committed (revision: number): WeirEvent {
        const event = { ...draft, id: revision } as unknown as WeirEvent
        remember(event)
        if (++appended % trimEvery === 0) void trim().catch(() => undefined)
        return event
      },
    }
  }

  return {
    path: `${where} ${EVENTS}`,
    get lastId () { return memory.at(-1)?.id ?? 0 },

    stage,

    /** An event that records no state change (a refused write, a host ejected): a put of its own. */
    async append (input: EventInput): Promise<WeirEvent> {
      const staged = stage(input)
      let revision: number
      try {
        const put = await client.put(staged.key).value(staged.value).exec()
        revision = Number(put.header.revision)
      } catch (err) {
        throw new WeirError('WEIR_ERR_EVENTLOG_WRITE_FAILED', `could not write to the event log in ${where}: ${(err as Error).message}`, { cause: err })
      }
      return staged.committed(revision)
    },

    since: (afterId, limit) => eventsSince(memory, maxInMemory, afterId, limit),

    async close () {
      if (closed) return
      closed = true
      await watcher.cancel().catch(() => undefined)
    },
  }
}
