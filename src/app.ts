// Builds weir's apps from a config (proxy now; admin and controller join later) without
// listening, so tests and the process entry share one assembly. Owns reload and drain.

import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { dirname, join } from 'node:path'
import type { FastifyInstance, FastifyServerFactory } from 'fastify'
import { createAdminApp } from './admin/plugin.ts'
import type { Config } from './config/load.ts'
import { bindRouteMetrics } from './metrics/recorder.ts'
import { createMetrics, type Metrics } from './metrics/registry.ts'
import { createProxyApp, type ProxyRuntime, type ProxySnapshot } from './proxy/plugin.ts'
import { UpstreamPools } from './proxy/upstreams.ts'
import { createBucketSigner } from './routing/bucket-cookie.ts'
import { buildRouteTable } from './routing/route-table.ts'

export interface Apps {
  readonly proxy: FastifyInstance
  /** Health, readiness and metrics on the admin address; stays up while the proxy drains. */
  readonly admin: FastifyInstance
  readonly metrics: Metrics
  readonly runtime: ProxyRuntime & { draining: boolean }
  /** Swaps in a new config's routes; listen addresses and the cookie secret need a restart. */
  reload (config: Config): Promise<string[]>
  /** Stops accepting, lets in-flight requests finish for up to the drain timeout, then ends the rest. */
  close (): Promise<void>
}

export interface BuildOptions {
  /** Metrics without process defaults (tests build many apps in one process). */
  processMetrics?: boolean
}

export async function buildApps (initial: Config, options: BuildOptions = {}): Promise<Apps> {
  let config = initial
  const pools = new UpstreamPools()
  const signature = createBucketSigner(config.cookieSecret ?? cookieSecretFor(config.stateFile))
  const metrics = createMetrics({ processDefaults: options.processMetrics ?? true })
  const snapshotOf = (c: Config): ProxySnapshot => ({
    table: buildRouteTable(c, { pools, signature, bindMetrics: (route) => bindRouteMetrics(metrics, route) }),
    versionHeader: c.versionHeader,
    trusted: c.trustedProxyList.length > 0 ? c.trustedProxies : null,
  })
  const runtime = { current: snapshotOf(config), draining: false }
  const proxy = await createProxyApp({ config, runtime, metrics, serverFactory: serverFactoryFor(config) })
  const admin = await createAdminApp({ logger: proxy.log, metrics, isDraining: () => runtime.draining })

  return {
    proxy,
    admin,
    metrics,
    runtime,
    async reload (next) {
      const warnings: string[] = []
      if (next.listen.host !== config.listen.host || next.listen.port !== config.listen.port) warnings.push('listen changed: takes effect after a restart')
      if (next.cookieSecret !== config.cookieSecret) warnings.push('cookieSecret changed: takes effect after a restart')
      runtime.current = snapshotOf(next)
      proxy.log.level = next.logLevel
      config = next
      await pools.retainOnly(runtime.current.table.routes.flatMap((r) =>
        [r.groups.stable, r.groups.canary, r.groups.green, r.shadow].filter((g) => g !== null)))
      return warnings
    },
    async close () {
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
      }
    },
  }
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
