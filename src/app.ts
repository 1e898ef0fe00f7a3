// The composition root: builds weir's parts from a config without listening, so tests and the
// process entry share one assembly. The control plane (state store, event log, route writer,
// controller, admin API) owns the live state and hands the data path (proxy/data-path.ts) a new
// snapshot on every change; the data path's measurements flow back through the recorder.

import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createAdminApp } from './admin/app.ts'
import type { Config } from './config/model.ts'
import { RolloutController } from './controller/controller.ts'
import { createRecorder } from './metrics/recorder.ts'
import { createMetrics, type Metrics } from './metrics/registry.ts'
import { StatsRegistry } from './metrics/rolling-stats.ts'
import { createDataPath } from './proxy/data-path.ts'
import type { ProxyRuntime } from './proxy/app.ts'
import { readRollout, rolloutSummary } from './rollout/rollout-view.ts'
import { openEventLog, type EventLog } from './state/event-log.ts'
import { openFileStore } from './state/file-store.ts'
import { liveSnapshot, reconcileWithConfig } from './state/live-routes.ts'
import { RouteWriter } from './state/route-writer.ts'
import type { StateStore } from './state/store.ts'

export interface Apps {
  readonly proxy: FastifyInstance
  /** Health, readiness and metrics on the admin address; stays up while the proxy drains. */
  readonly admin: FastifyInstance
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
  /** The data path's table in force and its draining flag. */
  readonly runtime: ProxyRuntime
  /**
   * Swaps in a new config's routes (live state reconciled, see live-routes.ts); listen
   * addresses and the cookie secret need a restart.
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
}

/**
 * Epoch milliseconds that never go backwards: the rolling stats count whole seconds on it and the
 * controller aligns its check windows to those seconds, and persisted rollout times stay readable.
 */
const clock = (): number => performance.timeOrigin + performance.now()

export async function buildApps (initial: Config, options: BuildOptions = {}): Promise<Apps> {
  let config = initial
  // Opened first: a corrupt or unreadable state file stops the start before anything listens.
  const store = await openFileStore(config.stateFile)
  let events: EventLog
  try {
    events = await openEventLog(config.eventsFile)
  } catch (err) {
    await store.close()
    throw err
  }
  const startWarnings = await reconcileWithConfig(config, store, events)
  const cookieSecret = config.cookieSecret ?? cookieSecretFor(config.stateFile)
  const metrics = createMetrics({ processDefaults: options.processMetrics ?? true })
  const stats = new StatsRegistry({ now: clock })
  const recorder = createRecorder(metrics, stats)
  const snapshotOf = (c: Config) => liveSnapshot(c, store.all(), cookieSecret)
  let snapshot = snapshotOf(config)
  const dataPath = await createDataPath(snapshot, { recorder, ...(options.recordRequests === undefined ? {} : { recordRequests: options.recordRequests }) })
  const proxy = dataPath.app
  // The weight and rollout gauges show the routes in force at scrape time.
  metrics.setRouteSource(() => snapshot.routes)
  // The phase of the rollout recorded in the route's live state; idle when there is none.
  metrics.setRolloutSource((route) => {
    const phase = (store.get(route)?.rollout as { phase?: unknown } | null | undefined)?.phase
    return typeof phase === 'string' ? phase : 'idle'
  })
  // Runs inside each durable state write, before the write resolves: a change is in force by
  // the time the admin API answers it (the data path swaps its table synchronously).
  store.watch(() => {
    snapshot = snapshotOf(config)
    void dataPath.apply(snapshot)
  })
  const writer = new RouteWriter({
    store,
    events,
    config: () => config,
    summarizeRollout: (rollout) => rolloutSummary(readRollout(rollout)),
    onEventLogError: (err, route) => proxy.log.error({ err, route }, 'a route change was applied but could not be written to the event log'),
  })
  for (const w of startWarnings) proxy.log.warn(w)
  const controller = new RolloutController({
    writer,
    store,
    stats,
    events,
    config: () => config,
    now: clock,
    proxyOrigin: () => originOf(proxy.server.address(), config.listen.tls !== undefined),
    log: proxy.log,
  })
  const admin = await createAdminApp({
    logger: proxy.log,
    metrics,
    isDraining: () => dataPath.runtime.draining,
    api: {
      writer,
      store,
      events,
      rollouts: controller,
      // Each version's window, plus what the shadow's comparisons found over the same window.
      stats: { forRoute: (route, window) => ({ ...stats.forRoute(route, window), shadow: recorder.summary(route, window) }) },
      mismatches: recorder,
      tokens: config.admin.tokens,
    },
  })

  await controller.start()

  return {
    proxy,
    admin,
    controller,
    metrics,
    stats,
    store,
    events,
    writer,
    runtime: dataPath.runtime,
    async reload (next) {
      const warnings = await reconcileWithConfig(next, store, events)
      if (next.listen.host !== config.listen.host || next.listen.port !== config.listen.port) warnings.push('listen changed: takes effect after a restart')
      if (next.cookieSecret !== config.cookieSecret) warnings.push('cookieSecret changed: takes effect after a restart')
      if (!sameTokens(next.admin.tokens, config.admin.tokens)) warnings.push('admin tokens changed: take effect after a restart')
      config = next
      snapshot = snapshotOf(next)
      await dataPath.apply(snapshot)
      return warnings
    },
    async close () {
      await controller.close()
      try {
        await dataPath.close(config.drainTimeoutMs)
      } finally {
        await admin.close()
        await store.close()
        await events.close()
      }
    },
  }
}

/** `http://127.0.0.1:8080` for a listening address (an unspecified host is reached on loopback). */
function originOf (address: ReturnType<Server['address']>, tls: boolean): string | null {
  if (address === null || typeof address === 'string') return null
  const host = address.address === '0.0.0.0' || address.address === '::'
    ? '127.0.0.1'
    : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${tls ? 'https' : 'http'}://${host}:${address.port}`
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
