// What the control plane drives, whether the data path runs in this process (workers: 1) or in
// worker processes (workers/worker-set.ts): listen, put a snapshot in force, collect readings,
// drain. The composition root (app.ts) picks one; nothing else knows which.

import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { DataPath } from '../proxy/data-path.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import type { WorkerInfo, WorkerSet } from './worker-set.ts'

export interface DataPlane {
  /** Listens on `host:port` (0: an ephemeral port); resolves with the port. */
  listen (host: string, port: number): Promise<number>
  /** The port listened on; null before listen. */
  port (): number | null
  /** Resolves once `snapshot` is in force for every request that starts from then on, in every process. */
  apply (snapshot: DataPathSnapshot): Promise<void>
  /** Throws (WEIR_ERR_WORKER_APPLY) when some process could not build `snapshot`'s table; applies nothing. */
  check (snapshot: DataPathSnapshot): Promise<void>
  /** Resolves once every process's readings so far are in the primary's cells. */
  flush (): Promise<void>
  /** Shadow copies in flight for a route, over every process. */
  shadowInFlight (route: string): number
  /** The worker processes (empty in the single-process mode). */
  workers (): WorkerInfo[]
  /** Set from the first moment of a drain. */
  readonly draining: boolean
  /** Stops accepting, lets in-flight requests finish for up to `drainTimeoutMs`, then ends the rest. */
  close (drainTimeoutMs: number): Promise<void>
}

/** The data path in this process. */
export function localDataPlane (dataPath: DataPath): DataPlane {
  return {
    async listen (host, port) {
      await dataPath.app.listen({ host, port })
      return (dataPath.app.server.address() as AddressInfo).port
    },
    port () {
      const address = (dataPath.app.server as Server).address()
      return address === null || typeof address === 'string' ? null : address.port
    },
    apply: (snapshot) => dataPath.apply(snapshot),
    async check (snapshot) {
      dataPath.prepare(snapshot)
    },
    async flush () {},
    shadowInFlight: (route) => dataPath.runtime.current.table.routes.find((r) => r.name === route)?.shadowGate.inFlight ?? 0,
    workers: () => [],
    get draining () {
      return dataPath.runtime.draining
    },
    close: (drainTimeoutMs) => dataPath.close(drainTimeoutMs),
  }
}

/**
 * The data path in worker processes. `bind` sees every snapshot first: the primary keeps the
 * cells its workers' readings add into for every route in force.
 */
export function workerDataPlane (set: WorkerSet, bind: (snapshot: DataPathSnapshot) => void): DataPlane {
  let draining = false
  let listening = false
  return {
    async listen (host, port) {
      port = await set.start(host, port)
      listening = true
      return port
    },
    port: () => (listening ? set.port : null),
    apply (snapshot) {
      bind(snapshot)
      return set.apply(snapshot)
    },
    check: (snapshot) => set.check(snapshot),
    flush: () => set.flush(),
    shadowInFlight: (route) => set.shadowInFlight(route),
    workers: () => set.info(),
    get draining () {
      return draining
    },
    async close () {
      draining = true
      await set.drain()
    },
  }
}
