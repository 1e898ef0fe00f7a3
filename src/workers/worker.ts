// A worker process (node:cluster's exec): runs the data path only, from the snapshots the primary
// sends (protocol.ts), and ships what it measured every 100 ms and whenever asked. It has no
// state store, admin API or controller. Signals are the primary's to handle: a worker ignores
// SIGINT and SIGHUP (a terminal's Ctrl-C reaches the whole process group), drains on SIGTERM
// sent to it alone, and drains and exits when the primary goes away.

import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createShippingRecorder } from '../metrics/readings.ts'
import { MISMATCH_SAMPLE_SIZE } from '../shadow/mismatch-log.ts'
import { createDataPath, type DataPath } from '../proxy/data-path.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import { READINGS_INTERVAL_MS, type FromWorker, type StartMessage, type ToWorker } from './protocol.ts'

const recorder = createShippingRecorder(MISMATCH_SAMPLE_SIZE)
let dataPath: DataPath | null = null
let drainTimeoutMs = 30_000
let draining: Promise<void> | null = null
const prepared = new Map<number, { commit (): Promise<void> }>()

function send (message: FromWorker, then?: () => void): void {
  if (process.connected) process.send?.(message, undefined, {}, () => then?.())
  else then?.()
}

function shadowInFlight (): Record<string, number> {
  const out: Record<string, number> = {}
  for (const route of dataPath?.runtime.current.table.routes ?? []) if (route.shadowGate.inFlight > 0) out[route.name] = route.shadowGate.inFlight
  return out
}

function ship (id: number | null): void {
  const routes = recorder.take()
  if (id === null && routes.length === 0) return
  send({ type: 'readings', id, routes, shadowInFlight: shadowInFlight() })
}

let started: StartMessage | null = null

async function start (message: StartMessage): Promise<void> {
  started = message
  drainTimeoutMs = message.drainTimeoutMs
  try {
    dataPath = await createDataPath(message.snapshot, {
      recorder,
      recordRequests: message.recordRequests,
      onHostChange: (change) => send({ type: 'host', change }),
    })
    await dataPath.app.ready()
    send({ type: 'built' })
  } catch (err) {
    fail(err)
  }
}

async function listen (snapshot: DataPathSnapshot): Promise<void> {
  try {
    const path = dataPath as DataPath
    const options = started as StartMessage
    await path.apply(snapshot)
    // Kernel balancing: each worker binds its own socket on the port (SO_REUSEPORT); otherwise
    // node:cluster's primary accepts and hands connections out round-robin.
    const kernel = options.balance === 'kernel'
    await path.app.listen({ host: options.host, port: options.port, ...(kernel ? { exclusive: true, reusePort: true } : {}) } as { host: string; port: number })
    const address = (path.app.server as Server).address() as AddressInfo
    setInterval(() => ship(null), READINGS_INTERVAL_MS).unref()
    send({ type: 'listening', port: address.port })
  } catch (err) {
    fail(err)
  }
}

function fail (err: unknown): void {
  send({ type: 'start-failed', message: (err as Error).message }, () => process.exit(1))
}

function drain (timeoutMs: number): Promise<void> {
  draining ??= (async () => {
    try {
      await dataPath?.close(timeoutMs)
    } finally {
      // Let the last readings leave before the channel closes with the process.
      send({ type: 'readings', id: null, routes: recorder.take(), shadowInFlight: {} }, () => process.exit(0))
    }
  })()
  return draining
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'start':
      void start(message)
      break
    case 'listen':
      void listen(message.snapshot)
      break
    case 'prepare':
      try {
        if (dataPath === null) throw new Error('the worker has not started')
        prepared.set(message.seq, dataPath.prepare(message.snapshot))
        send({ type: 'prepared', seq: message.seq, error: null })
      } catch (err) {
        send({ type: 'prepared', seq: message.seq, error: (err as Error).message })
      }
      break
    case 'commit': {
      const table = prepared.get(message.seq)
      prepared.clear()
      // The swap is synchronous (the start of commit); closing pools no route uses finishes later.
      const closing = table?.commit()
      send({ type: 'committed', seq: message.seq })
      void closing?.catch((err: unknown) => dataPath?.app.log.error({ err }, 'closing unused upstream pools failed'))
      break
    }
    case 'abort':
      prepared.delete(message.seq)
      break
    case 'flush':
      ship(message.id)
      break
    case 'drain':
      void drain(message.timeoutMs)
      break
  }
})

process.on('SIGINT', () => {})
process.on('SIGHUP', () => {})
process.on('SIGTERM', () => { void drain(drainTimeoutMs) })
process.on('disconnect', () => { void drain(drainTimeoutMs) })
process.on('uncaughtException', (err) => {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err)
  process.stderr.write(`weir worker ${process.pid}: uncaught ${message}\n`)
  send({ type: 'fatal', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, () => process.exit(1))
  setTimeout(() => process.exit(1), 1000).unref()
})
