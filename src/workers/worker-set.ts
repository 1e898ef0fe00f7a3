// The primary's side of the worker processes (docs/workers.md): forks N workers (node:cluster),
// hands each the snapshot in force, applies every new snapshot on all of them before a write
// answers (two phases, so a table that cannot be built is applied on none), collects their
// readings into the primary's cells, replaces a worker that dies or stops answering, and stops
// weir on a crash loop instead of restarting forever.

import cluster, { type Worker } from 'node:cluster'
import { createServer, type AddressInfo } from 'node:net'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WeirError } from '../errors.ts'
import type { HostChange } from '../metrics/host-health-book.ts'
import { addReadings, type ReadingsSink } from '../metrics/readings.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import type { Balance, FromWorker, ReadingsMessage, ToWorker } from './protocol.ts'

/** The worker entry, beside this file (.ts in a checkout, .js in a build). */
const WORKER_ENTRY = fileURLToPath(new URL('./worker' + extname(fileURLToPath(import.meta.url)), import.meta.url))

/** Crashes within CRASH_WINDOW_MS that stop weir (systemd's StartLimitBurst / StartLimitIntervalSec idea). */
export const CRASH_LIMIT = 5
export const CRASH_WINDOW_MS = 30_000

export interface WorkerSetLog {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

export interface WorkerSetOptions {
  count: number
  balance: Balance
  drainTimeoutMs: number
  /** How long a worker may take to acknowledge a snapshot before it is killed and replaced. */
  ackTimeoutMs: number
  /** How long a worker may take to start (build its data path and listen). */
  startTimeoutMs: number
  recordRequests: boolean
  /**
   * Node flags of the worker processes; default: this process's (so `--max-old-space-size` and
   * the like apply to every worker). Tests pass [] so a test runner's loaders stay out.
   */
  execArgv?: string[]
  sink: ReadingsSink
  log: WorkerSetLog
  /** Told of every crash and replacement (the event log). Never awaited by the data path. */
  onEvent: (action: 'worker.crashed' | 'worker.unresponsive', reason: Record<string, unknown>) => void
  /** Told of each host change a worker's data path sees, and when a worker's view is gone with it. */
  hosts: { change (change: HostChange, worker: number): void; forget (worker: number): void }
  /** Workers crash in a loop: weir must stop (exit 1). */
  onCrashLoop: (error: WeirError) => void
}

export interface WorkerInfo {
  readonly worker: number
  readonly pid: number | null
  readonly state: SlotState
  /** Responses this slot's workers sent since weir started (a replacement continues the count). */
  readonly requests: number
  readonly restarts: number
  readonly startedAt: string | null
}

type SlotState = 'starting' | 'running' | 'draining' | 'stopped'

interface Slot {
  readonly number: number
  worker: Worker | null
  state: SlotState
  requests: number
  restarts: number
  startedAt: string | null
  shadowInFlight: Record<string, number>
  /** Killed on purpose (it did not acknowledge in time): its exit is not a crash. */
  killedOnPurpose: boolean
}

interface Waiter {
  readonly worker: Worker
  readonly resolve: (message: FromWorker | null) => void
  readonly match: (message: FromWorker) => boolean
}

export class WorkerSet {
  readonly #o: WorkerSetOptions
  readonly #slots: Slot[]
  #snapshot: DataPathSnapshot
  #seq = 0
  #flushId = 0
  #host = '127.0.0.1'
  /** The port asked for (0: ephemeral) and the one listened on. */
  #askedPort = 0
  #port = 0
  #stopping = false
  /** Until every worker listened once, an exit fails the start instead of being replaced. */
  #started = false
  #crashes: number[] = []
  /** Applies run one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve()
  readonly #waiters = new Set<Waiter>()
  readonly #exits = new Map<Worker, Promise<void>>()

  constructor (snapshot: DataPathSnapshot, options: WorkerSetOptions) {
    this.#o = options
    this.#snapshot = snapshot
    this.#slots = Array.from({ length: options.count }, (_, i) => ({
      number: i + 1, worker: null, state: 'stopped', requests: 0, restarts: 0, startedAt: null, shadowInFlight: {}, killedOnPurpose: false,
    }))
  }

  /** Starts every worker on `host:port`; resolves with the port they listen on once all of them do. */
  async start (host: string, port: number): Promise<number> {
    this.#host = host
    // node:cluster shares one handle per address and port, so every set in a process asking for
    // port 0 would share one listener: an ephemeral port is picked here, once, instead.
    this.#askedPort = port === 0 && this.#o.balance === 'primary' ? await freePort(host) : port
    // The first worker resolves an ephemeral port; with kernel balancing the others bind that
    // port, with primary balancing they ask node:cluster for the same (shared) handle.
    // Every worker builds its data path at once; the first then listens, resolving an ephemeral
    // port; with kernel balancing the others bind that port, with primary balancing they ask
    // node:cluster for the same (shared) handle.
    const [first, ...rest] = this.#slots as [Slot, ...Slot[]]
    try {
      const built = this.#slots.map((slot) => this.#build(slot))
      await Promise.all(built)
      this.#port = await this.#listen(first)
      await Promise.all(rest.map((slot) => this.#listen(slot)))
      this.#started = true
    } catch (err) {
      await this.destroy()
      throw err
    }
    return this.#port
  }

  get port (): number {
    return this.#port
  }

  /** Puts `snapshot` in force on every worker: resolves when each applied it or was replaced. */
  apply (snapshot: DataPathSnapshot): Promise<void> {
    return this.#serially(() => this.#apply(snapshot))
  }

  /**
   * Checks that every worker can build `snapshot`'s table, without applying it; throws
   * WEIR_ERR_WORKER_APPLY when one cannot (a reload checks before it changes anything).
   */
  check (snapshot: DataPathSnapshot): Promise<void> {
    return this.#serially(async () => {
      const seq = ++this.#seq
      await this.#prepare(seq, snapshot)
      for (const slot of this.#listening()) this.#send(slot, { type: 'abort', seq })
    })
  }

  /** Runs `task` after every apply or check before it has settled. */
  #serially (task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task)
    this.#queue = run.catch(() => undefined)
    return run
  }

  /** Asks every worker for its readings now and waits for them (at most ackTimeoutMs). */
  async flush (): Promise<void> {
    const id = ++this.#flushId
    await Promise.all(this.#listening().map((slot) => this.#ask(slot, { type: 'flush', id }, (m) => m.type === 'readings' && m.id === id, this.#o.ackTimeoutMs)))
  }

  /** Shadow copies in flight over every worker (as last reported), by route. */
  shadowInFlight (route: string): number {
    return this.#slots.reduce((sum, slot) => sum + (slot.shadowInFlight[route] ?? 0), 0)
  }

  info (): WorkerInfo[] {
    return this.#slots.map((slot) => ({
      worker: slot.number,
      pid: slot.worker?.process.pid ?? null,
      state: slot.state,
      requests: slot.requests,
      restarts: slot.restarts,
      startedAt: slot.startedAt,
    }))
  }

  /** Every worker stops accepting and finishes its in-flight requests; resolves when all exited. */
  async drain (): Promise<void> {
    this.#stopping = true
    const exits: Promise<void>[] = []
    for (const slot of this.#slots) {
      const worker = slot.worker
      if (worker === null) continue
      slot.state = 'draining'
      this.#send(slot, { type: 'drain', timeoutMs: this.#o.drainTimeoutMs })
      exits.push(this.#exitOf(worker))
    }
    // A worker that neither finishes nor exits after its own drain timeout is killed.
    const force = setTimeout(() => { for (const slot of this.#slots) slot.worker?.process.kill('SIGKILL') }, this.#o.drainTimeoutMs + 5000)
    try {
      await Promise.all(exits)
    } finally {
      clearTimeout(force)
    }
  }

  /** Kills every worker at once (a failed start, a crash loop). */
  async destroy (): Promise<void> {
    this.#stopping = true
    const exits: Promise<void>[] = []
    for (const slot of this.#slots) {
      if (slot.worker === null) continue
      exits.push(this.#exitOf(slot.worker))
      slot.worker.process.kill('SIGKILL')
    }
    await Promise.all(exits)
  }

  async #apply (snapshot: DataPathSnapshot): Promise<void> {
    const seq = ++this.#seq
    await this.#prepare(seq, snapshot)
    // From here the snapshot is the one in force: a worker started from now on gets it.
    this.#snapshot = snapshot
    await Promise.all(this.#listening().map((slot) => this.#ask(slot, { type: 'commit', seq }, (m) => m.type === 'committed' && m.seq === seq, this.#o.ackTimeoutMs, true)))
  }

  /** Phase one on every listening worker; on a refusal, aborts it everywhere and throws. */
  async #prepare (seq: number, snapshot: DataPathSnapshot): Promise<void> {
    const slots = this.#listening()
    const share = this.#perWorker(snapshot)
    const answers = await Promise.all(slots.map((slot) => this.#ask(slot, { type: 'prepare', seq, snapshot: share }, (m) => m.type === 'prepared' && m.seq === seq, this.#o.ackTimeoutMs, true)))
    const refused = answers.find((m) => m !== null && m.type === 'prepared' && m.error !== null)
    if (refused !== undefined) {
      for (const slot of slots) this.#send(slot, { type: 'abort', seq })
      throw new WeirError('WEIR_ERR_WORKER_APPLY', `a worker could not apply the new snapshot (${(refused as { error: string }).error}); no worker changed`)
    }
  }

  /**
   * The snapshot as one worker serves it: a route's shadow `maxInFlight` bounds copies over all
   * of weir, so each worker gets its share (at least 1).
   */
  #perWorker (snapshot: DataPathSnapshot): DataPathSnapshot {
    const count = this.#o.count
    if (!snapshot.routes.some((r) => r.shadow.maxInFlight > 1)) return snapshot
    return {
      ...snapshot,
      routes: snapshot.routes.map((r) => ({ ...r, shadow: { ...r.shadow, maxInFlight: Math.max(1, Math.floor(r.shadow.maxInFlight / count)) } })),
    }
  }

  /** Workers that were told to listen: the ones a snapshot must reach before a write answers. */
  #listening (): Slot[] {
    return this.#slots.filter((slot) => slot.worker !== null && slot.state === 'running')
  }

  /**
   * Sends `message` and resolves with the answer `match` picks, or null when the worker exits
   * first or `timeoutMs` passes. With `killOnTimeout`, a worker that does not answer in time is
   * killed (and replaced) before this resolves: it cannot serve from an old snapshot any more.
   */
  async #ask (slot: Slot, message: ToWorker, match: (m: FromWorker) => boolean, timeoutMs: number, killOnTimeout = false): Promise<FromWorker | null> {
    const worker = slot.worker
    if (worker === null) return null
    const exited = this.#exitOf(worker)
    let timer: NodeJS.Timeout | undefined
    let waiter: Waiter | undefined
    const answered = new Promise<FromWorker | null>((resolve) => {
      waiter = { worker, resolve, match }
      this.#waiters.add(waiter)
    })
    this.#send(slot, message)
    const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs) })
    const result = await Promise.race([answered, exited.then(() => null), timedOut])
    clearTimeout(timer)
    if (waiter !== undefined) this.#waiters.delete(waiter)
    if (result !== 'timeout') return result
    if (killOnTimeout && slot.worker === worker) {
      this.#o.log.error({ worker: slot.number, pid: worker.process.pid }, `worker ${slot.number} did not acknowledge a ${message.type} within ${timeoutMs} ms: restarting it`)
      this.#o.onEvent('worker.unresponsive', { worker: slot.number, pid: worker.process.pid, message: message.type, timeoutMs })
      slot.killedOnPurpose = true
      worker.process.kill('SIGKILL')
      await exited
    }
    return null
  }

  #send (slot: Slot, message: ToWorker): void {
    const worker = slot.worker
    if (worker === null || !worker.isConnected()) return
    try {
      worker.send(message)
    } catch {
      // The channel closed under us: the exit handler replaces the worker.
    }
  }

  #exitOf (worker: Worker): Promise<void> {
    return this.#exits.get(worker) ?? Promise.resolve()
  }

  /** Forks the slot's worker and waits until it listens; resolves with its port. */
  async #startSlot (slot: Slot): Promise<number> {
    await this.#build(slot)
    return await this.#listen(slot)
  }

  /** Forks the slot's worker and waits until its data path is built. */
  async #build (slot: Slot): Promise<void> {
    const execArgv = this.#o.execArgv
    cluster.setupPrimary({ exec: WORKER_ENTRY, args: [], serialization: 'advanced', execArgv: execArgv ?? process.execArgv })
    // Explicit flags replace the inherited NODE_OPTIONS as well.
    const worker = cluster.fork({ WEIR_WORKER: String(slot.number), ...(execArgv === undefined ? {} : { NODE_OPTIONS: '' }) })
    slot.worker = worker
    slot.state = 'starting'
    slot.killedOnPurpose = false
    slot.shadowInFlight = {}
    let cause: string | null = null
    this.#exits.set(worker, new Promise<void>((resolve) => {
      worker.once('exit', (code, signal) => {
        this.#exits.delete(worker)
        resolve()
        this.#exited(slot, worker, code, signal, cause)
      })
    }))
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'fatal') cause = message.message
      if (message.type === 'readings') this.#readings(slot, message)
      if (message.type === 'host') this.#o.hosts.change(message.change, slot.number)
      for (const waiter of this.#waiters) {
        if (waiter.worker === worker && waiter.match(message)) {
          this.#waiters.delete(waiter)
          waiter.resolve(message)
        }
      }
    })
    // Without a listener, an IPC error on a dying worker would be thrown as uncaught.
    worker.on('error', (err) => this.#o.log.warn({ err, worker: slot.number }, 'worker channel error'))
    const start: ToWorker = {
      type: 'start',
      slot: slot.number,
      snapshot: this.#perWorker(this.#snapshot),
      host: this.#host,
      port: this.#o.balance === 'kernel' && this.#port !== 0 ? this.#port : this.#askedPort,
      balance: this.#o.balance,
      recordRequests: this.#o.recordRequests,
      drainTimeoutMs: this.#o.drainTimeoutMs,
    }
    const failed = (message: FromWorker): boolean => message.type === 'start-failed'
    const built = await this.#ask(slot, start, (m) => m.type === 'built' || failed(m), this.#o.startTimeoutMs)
    if (built === null || built.type !== 'built') throw this.#startError(slot, worker, built)
  }

  /** Tells a built worker to listen, on the snapshot in force now; resolves with its port. */
  async #listen (slot: Slot): Promise<number> {
    const worker = slot.worker
    if (worker === null) throw new WeirError('WEIR_ERR_WORKER_START', `worker ${slot.number} exited before it could listen`)
    const failed = (message: FromWorker): boolean => message.type === 'start-failed'
    // The snapshot in force now may be newer than the one the worker was built from. From here
    // the worker takes part in every apply (its messages are delivered in order).
    slot.state = 'running'
    const listening = await this.#ask(slot, { type: 'listen', snapshot: this.#perWorker(this.#snapshot) }, (m) => m.type === 'listening' || failed(m), this.#o.startTimeoutMs)
    if (listening === null || listening.type !== 'listening') throw this.#startError(slot, worker, listening)
    slot.startedAt = new Date().toISOString()
    return listening.port
  }

  #startError (slot: Slot, worker: Worker, answer: FromWorker | null): WeirError {
    slot.killedOnPurpose = true
    worker.process.kill('SIGKILL')
    const why = answer !== null && answer.type === 'start-failed' ? answer.message : `no answer within ${this.#o.startTimeoutMs} ms`
    return new WeirError('WEIR_ERR_WORKER_START', `worker ${slot.number} could not start: ${why}`)
  }

  #readings (slot: Slot, message: ReadingsMessage): void {
    slot.requests += addReadings(this.#o.sink, message.routes)
    slot.shadowInFlight = { ...message.shadowInFlight }
  }

  #exited (slot: Slot, worker: Worker, code: number | null, signal: string | null, cause: string | null): void {
    if (slot.worker !== worker) return
    slot.worker = null
    slot.shadowInFlight = {}
    this.#o.hosts.forget(slot.number)
    if (this.#stopping || !this.#started) {
      slot.state = 'stopped'
      return
    }
    const onPurpose = slot.killedOnPurpose
    const pid = worker.process.pid
    const how = signal !== null ? `signal ${signal}` : `code ${String(code)}`
    if (!onPurpose) {
      this.#o.log.error({ worker: slot.number, pid, code, signal, cause }, `worker ${slot.number} (pid ${String(pid)}) exited unexpectedly (${how})${cause === null ? '' : `: ${cause}`}; replacing it`)
      this.#o.onEvent('worker.crashed', { worker: slot.number, pid, code, signal, ...(cause === null ? {} : { cause }) })
    }
    const now = performance.now()
    this.#crashes = this.#crashes.filter((at) => now - at < CRASH_WINDOW_MS)
    this.#crashes.push(now)
    if (this.#crashes.length >= CRASH_LIMIT) {
      this.#stopping = true
      slot.state = 'stopped'
      this.#o.onCrashLoop(new WeirError('WEIR_ERR_WORKER_CRASH_LOOP',
        `${CRASH_LIMIT} worker exits within ${CRASH_WINDOW_MS / 1000} s (the last: worker ${slot.number}, ${how}${cause === null ? '' : `, ${cause}`}): stopping instead of restarting them`))
      return
    }
    slot.restarts++
    slot.state = 'starting'
    this.#startSlot(slot).catch((err: unknown) => {
      // The replacement failed to start: its exit (it was killed) is counted like a crash.
      this.#o.log.error({ err, worker: slot.number }, `worker ${slot.number} could not be replaced`)
    })
  }
}

/** A port free on `host` now (the kernel's pick), for workers to share. */
function freePort (host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = probe.address() as AddressInfo
      probe.close(() => resolve(port))
    })
  })
}
