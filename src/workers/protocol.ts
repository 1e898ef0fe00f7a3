// The messages between the primary and its worker processes (docs/workers.md), over node:cluster's
// IPC channel with structured-clone serialization. The primary owns the control plane; a worker
// runs the data path from the snapshots it is sent and ships back what it measured.

import type { HostChange } from '../metrics/host-health-book.ts'
import type { RouteReadings } from '../metrics/readings.ts'
import type { DataPathSnapshot } from '../snapshot.ts'

/** How connections reach workers (bench/README.md, "Workers", has the measurements). */
export type Balance = 'primary' | 'kernel'

export interface StartMessage {
  readonly type: 'start'
  /** The worker's slot, 1..N: kept by its replacement, so per-worker series continue. */
  readonly slot: number
  readonly snapshot: DataPathSnapshot
  readonly host: string
  /** 0 only for the first worker of a set listening on an ephemeral port. */
  readonly port: number
  readonly balance: Balance
  readonly recordRequests: boolean
  /** For a drain the worker starts itself (SIGTERM sent to it, or the primary gone). */
  readonly drainTimeoutMs: number
}

/**
 * Listen now, on the snapshot in force (sent once the worker is built, so a snapshot that came
 * while it started is the one it serves from its first request).
 */
export interface ListenMessage { readonly type: 'listen'; readonly snapshot: DataPathSnapshot }
/** Phase one of an apply: build the snapshot's table, answer `prepared`, keep it until commit or abort. */
export interface PrepareMessage { readonly type: 'prepare'; readonly seq: number; readonly snapshot: DataPathSnapshot }
/** Phase two: put the prepared table in force, answer `committed`. */
export interface CommitMessage { readonly type: 'commit'; readonly seq: number }
export interface AbortMessage { readonly type: 'abort'; readonly seq: number }
/** Ship the readings now (answered with `readings` carrying the id). */
export interface FlushMessage { readonly type: 'flush'; readonly id: number }
/** Stop accepting, finish in-flight requests (at most `timeoutMs`), ship the last readings, exit 0. */
export interface DrainMessage { readonly type: 'drain'; readonly timeoutMs: number }

export type ToWorker = StartMessage | ListenMessage | PrepareMessage | CommitMessage | AbortMessage | FlushMessage | DrainMessage

/** The data path is built (not listening yet). */
export interface BuiltMessage { readonly type: 'built' }
export interface ListeningMessage { readonly type: 'listening'; readonly port: number }
/** The worker could not start (its data path could not be built or could not listen). */
export interface StartFailedMessage { readonly type: 'start-failed'; readonly message: string }
export interface PreparedMessage { readonly type: 'prepared'; readonly seq: number; readonly error: string | null }
export interface CommittedMessage { readonly type: 'committed'; readonly seq: number }
export interface ReadingsMessage {
  readonly type: 'readings'
  /** The flush this answers; null for the periodic shipment. */
  readonly id: number | null
  readonly routes: readonly RouteReadings[]
  /** Shadow copies in flight on this worker, by route. */
  readonly shadowInFlight: Readonly<Record<string, number>>
}
/** A host of this worker's data path was ejected or returned, or failed or passed its checks. */
export interface HostMessage { readonly type: 'host'; readonly change: HostChange }
/** Sent just before a worker exits on an uncaught error, so the primary can log the cause. */
export interface FatalMessage { readonly type: 'fatal'; readonly message: string }

export type FromWorker = BuiltMessage | ListeningMessage | StartFailedMessage | PreparedMessage | CommittedMessage | ReadingsMessage | HostMessage | FatalMessage

/** How often a worker ships its readings unasked. */
export const READINGS_INTERVAL_MS = 100
