// Builds weir's apps from a config (proxy, admin; the controller joins later) without
// listening, so tests and the process entry share one assembly. Owns the live state (store and
// event log), reload and drain.

import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { dirname, join } from 'node:path'
import type { FastifyInstance, FastifyServerFactory } from 'fastify'
import { createAdminApp } from './admin/plugin.ts'
import { RouteService } from './admin/route-service.ts'
import { RolloutController } from './controller/controller.ts'
import type { Config } from './config/load.ts'
import { bindRouteMetrics } from './metrics/recorder.ts'
import { createMetrics, type Metrics } from './metrics/registry.ts'
import { StatsRegistry } from './metrics/window.ts'
import { createProxyApp, type ProxyRuntime, type ProxySnapshot } from './proxy/plugin.ts'
import { UpstreamPools } from './proxy/upstreams.ts'
import { createBucketSigner } from './routing/bucket-cookie.ts'
import { buildRouteTable } from './routing/route-table.ts'
import { ShadowRegistry } from './shadow/mirror.ts'
import { openEventLog, type EventLog } from './state/event-log.ts'
import { openFileStore } from './state/file-store.ts'
import { liveConfig, reconcileWithConfig } from './state/live-routes.ts'
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
  /** The operations the admin API and the controller change routes through. */
  readonly service: RouteService
  /** The built-in rollout controller (running: it ticks until close). */
  readonly controller: RolloutController
  readonly runtime: ProxyRuntime & { draining: boolean }
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
  const pools = new UpstreamPools()
  const signature = createBucketSigner(config.cookieSecret ?? cookieSecretFor(config.stateFile))
  const metrics = createMetrics({ processDefaults: options.processMetrics ?? true })
  const stats = new StatsRegistry({ now: clock })
  const shadows = new ShadowRegistry((route, reason) => metrics.upstreamErrors.labels(route, 'shadow', reason).inc())
  const snapshotOf = (c: Config): ProxySnapshot => ({
    table: buildRouteTable(liveConfig(c, store.all()), {
      pools,
      signature,
      bindMetrics: (route, versions, hasShadow) => bindRouteMetrics(metrics, route, versions, hasShadow, stats),
      bindShadow: (route) => shadows.get(route),
    }),
    versionHeader: c.versionHeader,
    trusted: c.trustedProxyList.length > 0 ? c.trustedProxies : null,
  })
  const runtime = { current: snapshotOf(config), draining: false }
  // The weight and rollout gauges show the routes in force at scrape time.
  metrics.setRouteSource(() => runtime.current.table.routes)
  // The phase of the rollout recorded in the route's live state; idle when there is none.
  metrics.setRolloutSource((route) => {
    const phase = (store.get(route)?.rollout as { phase?: unknown } | null | undefined)?.phase
    return typeof phase === 'string' ? phase : 'idle'
  })
  // Runs inside each durable state write, before the write resolves: a change is in force by
  // the time the admin API answers it.
  store.watch(() => {
    runtime.current = snapshotOf(config)
    void retainPools()
  })
  const retainPools = (): Promise<void> => pools.retainOnly(runtime.current.table.routes.flatMap((r) =>
    [r.groups.stable, r.groups.canary, r.groups.green, r.shadow].filter((g) => g !== null)))
  const proxy = await createProxyApp({ config, runtime, metrics, serverFactory: serverFactoryFor(config), recordRequests: options.recordRequests ?? true })
  const service = new RouteService({
    store,
    events,
    config: () => config,
    onEventLogError: (err, route) => proxy.log.error({ err, route }, 'a route change was applied but could not be written to the event log'),
  })
  for (const w of startWarnings) proxy.log.warn(w)
  const controller = new RolloutController({
    service,
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
    isDraining: () => runtime.draining,
    api: {
      service,
      events,
      rollouts: controller,
      // Each version's window, plus what the shadow's comparisons found over the same window.
      stats: { forRoute: (route, window) => ({ ...stats.forRoute(route, window), shadow: shadows.summary(route, window) }) },
      mismatches: shadows,
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
    service,
    runtime,
    async reload (next) {
      const warnings = await reconcileWithConfig(next, store, events)
      if (next.listen.host !== config.listen.host || next.listen.port !== config.listen.port) warnings.push('listen changed: takes effect after a restart')
      if (next.cookieSecret !== config.cookieSecret) warnings.push('cookieSecret changed: takes effect after a restart')
      if (!sameTokens(next.admin.tokens, config.admin.tokens)) warnings.push('admin tokens changed: take effect after a restart')
      config = next
      runtime.current = snapshotOf(next)
      proxy.log.level = next.logLevel
      await retainPools()
      return warnings
    },
    async close () {
      await controller.close()
      runtime.draining = true
      const server = proxy.server as Server
      const force = setTimeout(() => {
        proxy.log.warn('drain timeout reached: closing remaining connections')
        server.closeAllConnections()
        void pools.destroy()
      }, config.drainTimeoutMs)
      try {
        await proxy.close()
      } finally {
        clearTimeout(force)
        await pools.close()
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
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1'
    : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${tls ? 'https' : 'http'}://${host}:${address.port}`
}

function sameTokens (a: Config['admin']['tokens'], b: Config['admin']['tokens']): boolean {
  return a.length === b.length && a.every((t, i) => t.name === b[i]?.name && t.token === b[i]?.token)
}

function serverFactoryFor (config: Config): FastifyServerFactory {
  return (handler) => {
    const options = {
      maxHeaderSize: config.maxHeaderBytes,
      headersTimeout: config.clientHeadersTimeoutMs,
      // Request bodies are bounded per route (timeouts.requestBody), not per server.
      requestTimeout: 0,
      keepAliveTimeout: config.clientIdleTimeoutMs,
      // Check header timeouts every second, not every 30 s (Node's default).
      connectionsCheckingInterval: 1000,
    }
    const tls = config.listen.tls
    const server = tls === undefined
      ? createHttpServer(options, handler)
      : createHttpsServer({ ...options, cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler)
    return server as Server
  }
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
