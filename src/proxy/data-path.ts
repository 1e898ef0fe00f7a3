// The data path, built from a snapshot alone: the proxy app, its upstream pools, the shadow gates
// and the route table in force. It has no state store, admin API or controller; the control
// plane hands it each new snapshot through `apply`, and everything it measures goes to the
// recorder. This is what a worker process will run (docs/architecture.md, "The seam").

import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { FastifyBaseLogger, FastifyInstance, FastifyServerFactory } from 'fastify'
import type { Recorder } from '../metrics/recorder.ts'
import { createBucketSigner } from '../routing/bucket-cookie.ts'
import { digestOf } from '../routing/smoke.ts'
import type { DataPathSnapshot, ServerSettings } from '../snapshot.ts'
import { createProxyApp, edgeSettingsOf, type ProxyRuntime } from './app.ts'
import { VERSIONS } from '../vocabulary.ts'
import { HealthChecker } from './health-checker.ts'
import { HostHealthRegistry, type HostHealth, type HostListener } from './host-health.ts'
import { createListenerCertificate, type CertificatePair } from './listener-certificate.ts'
import { buildProxyTable, groupsOf, type ProxyTable, type ProxyTableDeps } from './proxy-routes.ts'
import { RetryBudget } from './retry-budget.ts'
import { ShadowGate } from './shadow-gate.ts'
import { UpstreamPools } from './upstream-pools.ts'

export interface DataPathOptions {
  recorder: Recorder
  /** The log to write to (default: a new one at the snapshot's level). */
  logger?: FastifyBaseLogger
  /** Internal (default true): false stops per-request recording, for the benchmark to price it. */
  recordRequests?: boolean
  /** Told when a host is ejected or returns, or fails or passes its checks (host-health.ts). */
  onHostChange?: HostListener
}

export interface DataPath {
  /** The proxy app (not listening yet). */
  readonly app: FastifyInstance
  /** The table in force and the draining flag, read per request. */
  readonly runtime: ProxyRuntime
  /** Puts a new snapshot in force for every request that starts from now on. */
  apply (snapshot: DataPathSnapshot): Promise<void>
  /**
   * Builds the table of a snapshot, and reads the listener's certificate when the snapshot asks,
   * without putting either in force (throws when one cannot be built): `commit` swaps them in,
   * synchronously. Lets workers apply a snapshot on all of them or none.
   */
  prepare (snapshot: DataPathSnapshot): { commit (): Promise<void> }
  /** Stops accepting and lets in-flight requests finish for up to `drainTimeoutMs`, then ends the rest. */
  close (drainTimeoutMs: number): Promise<void>
}

export async function createDataPath (first: DataPathSnapshot, options: DataPathOptions): Promise<DataPath> {
  const pools = new UpstreamPools()
  const gates = new Map<string, ShadowGate>()
  const hostHealth = new HostHealthRegistry(options.onHostChange ?? (() => {}))
  const budgets = new Map<string, RetryBudget>()
  const checkers = new Map<string, HealthChecker>()
  const deps: ProxyTableDeps = {
    hostHealth,
    retryBudget: (route, version, config) => {
      const key = `${route}\u0000${version}`
      let budget = budgets.get(key)
      if (budget === undefined || !budget.isFor(config)) {
        budget = new RetryBudget(config)
        budgets.set(key, budget)
      }
      return budget
    },
    pools,
    smokeToken: digestOf(first.smokeToken),
    // Every bucket signed in the background once one is: anonymous clients' cookies stop waiting for an HMAC.
    signature: createBucketSigner(first.cookieSecret, { prefill: true }),
    recorder: options.recorder,
    shadowGate: (route) => {
      let gate = gates.get(route)
      if (gate === undefined) {
        gate = new ShadowGate()
        gates.set(route, gate)
      }
      return gate
    },
  }
  // Null for plain HTTP: TLS turned on later takes a restart.
  const certificate = first.server.tls === undefined ? null : createListenerCertificate(first.server.tls)
  const runtime: ProxyRuntime = { current: buildProxyTable(first, deps), settings: edgeSettingsOf(first), draining: false }
  // The table in force is the one checked: checkers start, move to the new group objects or stop with it.
  const reconcileChecks = (table: ProxyTable): void => {
    const wanted = new Set<string>()
    for (const route of table.table.routes) {
      for (const version of VERSIONS) {
        const check = route.config.upstreamPolicy.versions[version].healthCheck
        const group = route.groups[version]
        if (check === undefined || group === null) continue
        const key = `${route.name}\u0000${version}`
        wanted.add(key)
        const running = checkers.get(key)
        if (running?.isFor(check, group.targets) === true) {
          running.retarget(group.targets)
        } else {
          running?.stop()
          checkers.set(key, new HealthChecker(check, group.targets))
        }
      }
    }
    for (const [key, checker] of checkers) {
      if (!wanted.has(key)) {
        checker.stop()
        checkers.delete(key)
      }
    }
    const inUse = new Set<HostHealth>()
    for (const group of groupsOf(table)) {
      for (const target of group.targets) {
        inUse.add(target.health)
        if (group.policy.outlier === false) target.health.returnNow()
      }
    }
    hostHealth.retain(inUse)
  }
  reconcileChecks(runtime.current)
  const app = await createProxyApp({
    runtime,
    logLevel: first.logLevel,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    serverFactory: serverFactoryFor(first.server, certificate?.pair),
    record: options.recordRequests ?? true,
  })
  const prepare = (snapshot: DataPathSnapshot): { commit (): Promise<void> } => {
    const table = buildProxyTable(snapshot, deps)
    const renewal = certificate?.prepare(snapshot.server.tls) ?? null
    const settings = edgeSettingsOf(snapshot)
    return {
      async commit () {
        runtime.current = table
        runtime.settings = settings
        renewal?.commit(app.server as HttpsServer)
        app.log.level = snapshot.logLevel
        reconcileChecks(table)
        // Pools no route refers to any more close gracefully: their queued requests finish.
        await pools.retainOnly(groupsOf(runtime.current))
      },
    }
  }
  return {
    app,
    runtime,
    prepare,
    apply: (snapshot) => prepare(snapshot).commit(),
    async close (drainTimeoutMs) {
      runtime.draining = true
      for (const checker of checkers.values()) checker.stop()
      checkers.clear()
      const server = app.server as Server
      const force = setTimeout(() => {
        app.log.warn('drain timeout reached: closing remaining connections')
        server.closeAllConnections()
        void pools.destroy()
      }, drainTimeoutMs)
      try {
        await app.close()
      } finally {
        clearTimeout(force)
        await pools.close()
      }
    },
  }
}

function serverFactoryFor (settings: ServerSettings, certificate: CertificatePair | undefined): FastifyServerFactory {
  return (handler) => {
    const options = {
      maxHeaderSize: settings.maxHeaderBytes,
      headersTimeout: settings.clientHeadersTimeoutMs,
      // Request bodies are bounded per route (timeouts.requestBody), not per server.
      requestTimeout: 0,
      keepAliveTimeout: settings.clientIdleTimeoutMs,
      // Check header timeouts every second, not every 30 s (Node's default).
      connectionsCheckingInterval: 1000,
    }
    const server = (certificate === undefined
      ? createHttpServer(options, handler)
      : createHttpsServer({ ...options, cert: certificate.cert, key: certificate.key }, handler)) as Server
    // Node's own count limit (2000 by default) refuses a head over it as a header overflow, which
    // reads as WEIR_ERR_HEADERS_TOO_LARGE: the proxy counts against `maxHeaders` itself (app.ts),
    // so that any maxHeaders holds after a reload, with its own code. maxHeaderBytes bounds the head.
    server.maxHeadersCount = 0
    return server
  }
}
