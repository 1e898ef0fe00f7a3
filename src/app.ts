// The composition root: builds weir's parts from a config without listening, so tests and the
// process entry share one assembly. The control plane (state store, event log, route writer,
// controller, admin API) owns the live state and hands the data path (proxy/data-path.ts) a new
// snapshot on every change; the data path's measurements flow back through the recorder.

import { randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { createAdminApp } from './admin/app.ts'
import { createOpsApp } from './admin/ops-app.ts'
import type { Config, WeightsBp } from './config/model.ts'
import { RolloutController } from './controller/controller.ts'
import { HostHealthBook, type HostChange } from './metrics/host-health-book.ts'
import { createRecorder } from './metrics/recorder.ts'
import { createMetrics, type Metrics } from './metrics/registry.ts'
import { BUCKET_COUNT, StatsRegistry, shownSeries, shownStats } from './metrics/rolling-stats.ts'
import { etcdFleet, soloFleet } from './fleet/fleet.ts'
import { fleetHistograms, fleetRouteStats, toWire, type FleetStatsOptions } from './fleet/fleet-stats.ts'
import { createDataPath } from './proxy/data-path.ts'
import { createSmokeToken } from './routing/smoke.ts'
import type { ProxyRuntime } from './proxy/app.ts'
import type { DataPathSnapshot } from './snapshot.ts'
import { readRollout, rolloutSummary } from './rollout/rollout-view.ts'
import { openEventLog, type EventLog } from './state/event-log.ts'
import { openFileStore } from './state/file-store.ts'
import { liveSnapshot, reconcileWithConfig } from './state/live-routes.ts'
import { loggedEventLog } from './state/logged-event-log.ts'
import { RouteWriter } from './state/route-writer.ts'
import type { StateStore } from './state/store.ts'
import { VERSIONS } from './vocabulary.ts'
import { localDataPlane, workerDataPlane, type DataPlane } from './workers/data-plane.ts'
import type { Balance } from './workers/protocol.ts'
import { WorkerSet } from './workers/worker-set.ts'

export interface Apps {
  /** The data path, in this process or in worker processes (config `workers`). */
  readonly dataPlane: DataPlane
  /** The one log stream of the control plane and, in the single-process mode, of the data path. */
  readonly log: Logger
  /** Health, readiness and metrics on the admin address; stays up while the proxy drains. */
  readonly admin: FastifyInstance
  /** Health, readiness and metrics alone on the ops address (config `ops`); null without one. Closed with the admin. */
  readonly ops: FastifyInstance | null
  readonly metrics: Metrics
  /** Per route × version rolling windows (requests, errors, latency quantiles) for stats and the controller. */
  readonly stats: StatsRegistry
  /** Live weights, upstream overrides and rollouts of every route (persisted). */
  readonly store: StateStore
  /** The audit log of every change and refusal. */
  readonly events: EventLog
  /** The write pipeline the admin API and the controller change routes through. */
  readonly writer: RouteWriter
  /** The built-in rollout controller (running: it ticks until close). */
  readonly controller: RolloutController
  /** The data path's table in force and its draining flag; null when the data path runs in workers. */
  readonly runtime: ProxyRuntime | null
  /** The proxy's fastify app in the single-process mode; null when the data path runs in workers. */
  readonly proxyApp: FastifyInstance | null
  /**
   * Swaps in a new config's routes (live state reconciled, see live-routes.ts) and the listener's
   * certificate and key, re-read; the keys in restartOnlyChanges need a restart.
   */
  reload (config: Config): Promise<string[]>
  /** Stops accepting, lets in-flight requests finish for up to the drain timeout, then ends the rest. */
  close (): Promise<void>
}

export interface BuildOptions {
  /** Metrics without process defaults (tests build many apps in one process). */
  processMetrics?: boolean
  /**
   * Internal, not a config key (default true): false stops counting requests_total and
   * request_duration_seconds and recording the rolling stats, for bench/run.ts to measure their cost.
   */
  recordRequests?: boolean
  /** Internal (bench/run.ts): how connections reach workers; default 'primary' (docs/workers.md). */
  balance?: Balance
  /** Internal (tests): Node flags of the worker processes instead of this process's. */
  workerExecArgv?: string[]
  /** Told when workers crash in a loop; the process entry exits 1 (default: throws from the event loop). */
  onCrashLoop?: (error: Error) => void
}

/** weir's version, for weir_build_info: package.json sits one folder up from src/ and from dist/. */
const WEIR_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** How long another replica may take to send its histograms for a fleet-wide check or stats read. */
const FLEET_STATS_TIMEOUT_MS = 1000

/** How long a worker may take to acknowledge a snapshot before it is replaced. */
const WORKER_ACK_TIMEOUT_MS = 2000
const WORKER_START_TIMEOUT_MS = 30_000

/**
 * Epoch milliseconds that never go backwards: the rolling stats count whole seconds on it and the
 * controller aligns its check windows to those seconds, and persisted rollout times stay readable.
 */
const clock = (): number => performance.timeOrigin + performance.now()

export async function buildApps (initial: Config, options: BuildOptions = {}): Promise<Apps> {
  let config = initial
  // Opened first: a corrupt or unreadable state file, or an etcd that does not answer, stops the
  // start before anything listens.
  // etcd3 and the gRPC stack under it (11-14 MB of resident memory, docs/performance.md) load only for a fleet's replica.
  const etcdStore = config.etcd === undefined ? null : await (await import('./state/etcd-store.ts')).openEtcdStore(config.etcd)
  const store: StateStore = etcdStore ?? await openFileStore(config.stateFile)
  let events: EventLog
  try {
    // A fleet's event log is the fleet's: in etcd, the same on every replica.
    events = etcdStore === null ? await openEventLog(config.eventsFile) : await (await import('./state/etcd-event-log.ts')).openEtcdEventLog(etcdStore.client, { endpoints: etcdStore.endpoints, replica: config.fleet.id })
  } catch (err) {
    await store.close()
    throw err
  }
  const log = pino({ level: config.logLevel })
  // Every event is also a log line: the log tells what happened without asking the admin API.
  events = loggedEventLog(events, log)
  // The store writes each change's event with the change (with etcd, in the same transaction).
  store.recordEventsIn(events)
  const startWarnings = await reconcileWithConfig(config, store, { reportOverrides: true })
  const cookieSecret = config.cookieSecret ?? cookieSecretFor(config.stateFile)
  const metrics = createMetrics({ processDefaults: options.processMetrics ?? true, build: { version: WEIR_VERSION, node: process.version } })
  const stats = new StatsRegistry({ now: clock })
  const recorder = createRecorder(metrics, stats)
  // Each data path process tells of its hosts' ejections and check results: the health gauge and the events.
  const hostBook = new HostHealthBook()
  metrics.setHostHealthSource((route, version, host) => hostBook.healthy(route, version, host))
  const onHostChange = (change: HostChange, worker: number): void => {
    // One event when the first process takes the host out, one when the last brings it back.
    if (!hostBook.apply(change, worker)) return
    const reason = { version: change.version, host: change.host, detail: change.detail, ...(change.forMs === undefined ? {} : { forMs: change.forMs }), ...(worker === 0 ? {} : { worker }) }
    events.append({ actor: 'weir', route: change.route, action: `host.${change.cause}`, reason })
      .catch((err: unknown) => log.error({ err }, `the host.${change.cause} event could not be written`))
  }
  // With etcd, this replica registers itself and campaigns to lead the fleet's controller.
  const self = { id: config.fleet.id, admin: config.fleet.advertise ?? '' }
  const fleet = etcdStore === null ? soloFleet(self) : etcdFleet(etcdStore.client, self, log, config.fleet.leaseTtlSeconds)
  if (etcdStore !== null) {
    etcdStore.fence = () => fleet.fence()
    etcdStore.onFenceRefused = (route, why) => {
      log.warn({ replica: config.fleet.id, route }, `fleet: a controller decision on route ${route} was not written: the fence refused it, ${why}`)
    }
  }
  const fleetStats: FleetStatsOptions = { fleet, stats, buckets: BUCKET_COUNT, token: config.admin.tokens[0]?.token, timeoutMs: FLEET_STATS_TIMEOUT_MS }
  // Routes this replica serves at its fast guard's revert until the store holds it (the controller's fail-safe).
  let heldWeights: ReadonlyMap<string, Readonly<WeightsBp>> = new Map()
  // The controller's smoke requests reach green through the proxy with it, whatever the route's override.
  const secrets = { cookieSecret, smokeToken: createSmokeToken() }
  // Counts the reloads: a snapshot that carries a new count has every data path re-read the
  // listener's certificate and key (a renewed certificate needs no restart).
  let reloads = 0
  const snapshotOf = (c: Config, tlsRevision = reloads) => liveSnapshot(c, store.all(), secrets, heldWeights, tlsRevision)
  let snapshot = snapshotOf(config)
  const recordRequests = options.recordRequests ?? true
  let dataPlane: DataPlane
  let runtime: ProxyRuntime | null = null
  let proxyApp: FastifyInstance | null = null
  if (config.workers > 1) {
    // The primary keeps the cells its workers' readings add into: every route's, from the start.
    const bindCells = (next: DataPathSnapshot): void => {
      for (const route of next.routes) {
        recorder.route(route.name, VERSIONS.filter((v) => route.upstreams[v] !== undefined), route.upstreams.shadow !== undefined)
      }
    }
    bindCells(snapshot)
    const set = new WorkerSet(snapshot, {
      count: config.workers,
      balance: options.balance ?? 'primary',
      drainTimeoutMs: config.drainTimeoutMs,
      ackTimeoutMs: WORKER_ACK_TIMEOUT_MS,
      startTimeoutMs: WORKER_START_TIMEOUT_MS,
      recordRequests,
      ...(options.workerExecArgv === undefined ? {} : { execArgv: options.workerExecArgv }),
      sink: recorder,
      log,
      onEvent: (action, reason) => {
        events.append({ actor: 'weir', action, reason }).catch((err: unknown) => log.error({ err }, `the ${action} event could not be written`))
      },
      onCrashLoop: options.onCrashLoop ?? ((err) => { throw err }),
      hosts: { change: onHostChange, forget: (worker) => hostBook.forget(worker) },
    })
    dataPlane = workerDataPlane(set, bindCells)
  } else {
    const dataPath = await createDataPath(snapshot, { recorder, recordRequests, logger: log, onHostChange: (change) => onHostChange(change, 0) })
    runtime = dataPath.runtime
    proxyApp = dataPath.app
    dataPlane = localDataPlane(dataPath)
  }
  // The weight and rollout gauges show the routes in force at scrape time.
  metrics.setRouteSource(() => snapshot.routes)
  // The rollout recorded in the route's live state (one this weir can read); idle when there is none.
  metrics.setRolloutSource((route) => {
    const rollout = readRollout(store.get(route)?.rollout)
    if (rollout === null) return undefined
    return { phase: rollout.phase, failures: rollout.failures, startedAt: rollout.startedAt, finishedAt: rollout.finishedAt, checks: rollout.lastCheck?.checks ?? [] }
  })
  metrics.setWorkerSource(() => dataPlane.workers())
  // Runs inside each durable state write, before the write resolves. The single process swaps
  // its table synchronously here; workers acknowledge asynchronously, and the route writer waits
  // for that (inForce) before it answers, so a change is in force everywhere by its reply.
  let inForce: Promise<void> = Promise.resolve()
  const applyNow = (next: DataPathSnapshot): Promise<void> => {
    const applied = dataPlane.apply(next)
    inForce = applied.catch((err: unknown) => log.error({ err }, 'a state change could not be applied on the data path'))
    return applied
  }
  store.watch(() => {
    snapshot = snapshotOf(config)
    void applyNow(snapshot).catch(() => undefined)
  })
  const writer = new RouteWriter({
    store,
    config: () => config,
    summarizeRollout: (rollout) => rolloutSummary(readRollout(rollout)),
    inForce: () => inForce,
    onEventLogError: (err, route) => log.error({ err, route }, 'a route change was applied but could not be written to the event log'),
  })
  for (const w of startWarnings) log.warn(w)
  const controller = new RolloutController({
    writer,
    store,
    stats,
    events,
    config: () => config,
    now: clock,
    proxyOrigin: () => originOf(config.listen.host, dataPlane.port(), config.listen.tls !== undefined),
    smokeToken: secrets.smokeToken,
    log,
    onFailSafe: (held) => {
      heldWeights = held
      snapshot = snapshotOf(config)
      void applyNow(snapshot).catch(() => undefined)
    },
    ...(etcdStore === null
      ? {}
      : {
          leadership: fleet,
          // The leader judges canary against stable over every replica's traffic.
          histograms: async (route: string, window: number) => {
            await dataPlane.flush()
            return (await fleetHistograms(fleetStats, route, window)).histograms
          },
        }),
  })
  const admin = await createAdminApp({
    logger: log,
    metrics,
    isDraining: () => draining || dataPlane.draining,
    beforeScrape: () => dataPlane.flush(),
    api: {
      writer,
      store,
      events,
      rollouts: controller,
      // Each version's window, plus what the shadow's comparisons found over the same window.
      stats: {
        forRoute: async (route, window, scope, seriesSeconds) => {
          // The workers' readings first: the series and the window then hold the same requests.
          await dataPlane.flush()
          const found = scope === 'fleet' ? await fleetRouteStats(fleetStats, route, window) : stats.forRoute(route, window)
          const versions = Object.fromEntries(Object.entries(found.versions).map(([version, s]) => [version, shownStats(s)]))
          const series = seriesSeconds === null
            ? {}
            : { series: { interval: seriesSeconds, versions: Object.fromEntries(Object.entries(stats.seriesForRoute(route, window, seriesSeconds)).map(([version, points]) => [version, shownSeries(points)])) } }
          return { ...found, versions, ...series, shadow: recorder.summary(route, window) }
        },
        histograms: async (route, window) => {
          await dataPlane.flush()
          return toWire(stats.histograms(route, window))
        },
      },
      mismatches: {
        recent: async (route, limit) => {
          await dataPlane.flush()
          return recorder.recent(route, limit)
        },
      },
      // Their response counts arrive with their readings: collected first, like the stats.
      fleet: () => fleet.view(),
      leader: () => fleet.leader(),
      self: config.fleet.id,
      snapshot: () => snapshot,
      workers: async () => {
        await dataPlane.flush()
        return dataPlane.workers()
      },
      tokens: config.admin.tokens,
    },
  })

  const ops = config.ops === undefined
    ? null
    : createOpsApp({ logger: log, metrics, isDraining: () => draining || dataPlane.draining, beforeScrape: () => dataPlane.flush() })

  // The fleet learns where this replica's admin API is once it listens.
  admin.addHook('onListen', async () => {
    const address = admin.server.address()
    if (address !== null && typeof address !== 'string') fleet.join(originOf(address.address, address.port, false) as string)
  })
  await controller.start()
  let draining = false

  return {
    dataPlane,
    log,
    admin,
    ops,
    controller,
    metrics,
    stats,
    store,
    events,
    writer,
    runtime,
    proxyApp,
    async reload (next) {
      // Every worker must be able to build the new table and read the listener's certificate
      // before anything changes (all or none).
      await dataPlane.check(snapshotOf(next, reloads + 1))
      const warnings = await reconcileWithConfig(next, store)
      warnings.push(...restartOnlyChanges(config, next))
      config = next
      reloads++
      snapshot = snapshotOf(next)
      await applyNow(snapshot)
      return warnings
    },
    async close () {
      draining = true
      await controller.close()
      // Resigning lets another replica lead at once instead of after the lease's TTL.
      await fleet.close()
      try {
        await dataPlane.close(config.drainTimeoutMs)
      } finally {
        await admin.close()
        await ops?.close()
        await store.close()
        await events.close()
      }
    },
  }
}

/** `http://127.0.0.1:8080` for the proxy's listener (an unspecified host is reached on loopback). */
function originOf (listenHost: string, port: number | null, tls: boolean): string | null {
  if (port === null) return null
  const host = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === ''
    ? '127.0.0.1'
    : listenHost.includes(':') ? `[${listenHost}]` : listenHost
  return `${tls ? 'https' : 'http'}://${host}:${port}`
}

/**
 * The keys a reload does not apply (the listeners, the stores, the workers and the listener
 * settings are built once): one warning for each that changed, so nothing is silently ignored.
 * The one list of them; docs/config.md ("What a reload changes") lists the same.
 */
function restartOnlyChanges (running: Config, next: Config): string[] {
  const changed = (a: unknown, b: unknown): boolean => !isDeepStrictEqual(a, b)
  const keys: [string, unknown, unknown][] = [
    ['listen', { host: running.listen.host, port: running.listen.port }, { host: next.listen.host, port: next.listen.port }],
    ['ops', running.ops, next.ops],
    ['admin.host and admin.port', [running.admin.host, running.admin.port], [next.admin.host, next.admin.port]],
    ['state (file, events, etcd)', [running.stateFile, running.eventsFile, running.etcd], [next.stateFile, next.eventsFile, next.etcd]],
    // A derived fleet.id follows admin.port, whose own warning says it all.
    ['fleet', fleetAsWritten(running), fleetAsWritten(next)],
    ['cookieSecret', running.cookieSecret, next.cookieSecret],
    ['maxHeaderBytes', running.maxHeaderBytes, next.maxHeaderBytes],
    ['timeouts.clientHeaders', running.clientHeadersTimeoutMs, next.clientHeadersTimeoutMs],
    ['timeouts.clientIdle', running.clientIdleTimeoutMs, next.clientIdleTimeoutMs],
    ['workers', running.workers, next.workers],
  ]
  const warnings = keys.filter(([, a, b]) => changed(a, b)).map(([key]) => `${key} changed: takes effect after a restart (the running value is kept)`)
  // Every reload re-reads the certificate and key (other files too): only turning TLS on or off needs a new listener.
  if ((running.listen.tls === undefined) !== (next.listen.tls === undefined)) {
    warnings.push(`listen.tls ${next.listen.tls === undefined ? 'removed' : 'added'}: takes effect after a restart (the running listener is kept)`)
  }
  if (!sameTokens(next.admin.tokens, running.admin.tokens)) warnings.push('admin tokens changed: take effect after a restart')
  return warnings
}

function fleetAsWritten (config: Config): unknown {
  const { id, idGiven, ...rest } = config.fleet
  return { id: idGiven ? id : undefined, ...rest }
}

function sameTokens (a: Config['admin']['tokens'], b: Config['admin']['tokens']): boolean {
  return a.length === b.length && a.every((t, i) => t.name === b[i]?.name && t.token === b[i]?.token)
}

/**
 * Without a configured cookieSecret, one is generated once and kept beside the state file, so
 * bucket cookies stay valid across restarts. Several instances must share one cookieSecret.
 */
function cookieSecretFor (stateFile: string): string {
  const file = join(dirname(stateFile), 'cookie-secret')
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  mkdirSync(dirname(file), { recursive: true })
  const secret = randomBytes(32).toString('base64url')
  try {
    writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' })
    return secret
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim()
    throw err
  }
}
