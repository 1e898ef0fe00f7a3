// Process entry for `weir serve`: load config, build apps, listen, and handle signals
// (SIGTERM/SIGINT drain then exit 0; SIGHUP reloads, keeping the running config if invalid).

import { buildApps, type Apps, type BuildOptions } from './app.ts'
import { loadConfigFile } from './config/load.ts'
import type { Config } from './config/model.ts'
import { formatProblems } from './config/problems.ts'

export interface RunningServer {
  apps: Apps
  config: Config
  /** Base URL the proxy listens on. */
  url: string
  /** Base URL of the admin server. */
  adminUrl: string
  /** Base URL of the ops server; undefined without config `ops`. */
  opsUrl: string | undefined
}

/** `options` are internal build options (bench/servers/weir-norecord.ts), never set by the CLI. */
/** What the command line sets over the config file (kept across reloads). */
export interface ServeOverrides {
  /** `--workers`, resolved. */
  workers?: number
}

export async function serve (configFile: string, options: BuildOptions = {}, overrides: ServeOverrides = {}): Promise<RunningServer> {
  const withOverrides = (c: Config): Config => (overrides.workers === undefined ? c : { ...c, workers: overrides.workers })
  const loaded = loadConfigFile(configFile)
  if (!loaded.ok) {
    process.stderr.write(`weir: ${configFile} is not valid:\n${formatProblems(loaded.problems)}\n`)
    process.exit(1)
  }
  const config = withOverrides(loaded.config)
  const apps: Apps = await buildApps(config, {
    ...options,
    onCrashLoop: (err) => {
      apps.log.fatal({ err }, `${err.message}; exiting`)
      process.stderr.write(`weir: ${err.message}\n`)
      // Every change is durable already; the workers still running stop with the primary.
      void apps.close().catch(() => undefined).finally(() => process.exit(1))
    },
  })
  const log = apps.log
  const adminAddress = await apps.admin.listen({ host: config.admin.host, port: config.admin.port })
  let opsAddress: string | undefined
  if (apps.ops !== null && config.ops !== undefined) {
    try {
      // Listens with the admin server, before the proxy: probes answer as soon as traffic can arrive.
      opsAddress = await apps.ops.listen({ host: config.ops.host, port: config.ops.port })
    } catch (err) {
      log.fatal({ err }, 'the ops listener could not start')
      process.stderr.write(`weir: the ops listener could not start: ${(err as Error).message}\n`)
      await apps.close().catch(() => undefined)
      process.exit(1)
    }
  }
  let port: number
  try {
    port = await apps.dataPlane.listen(config.listen.host, config.listen.port)
  } catch (err) {
    log.fatal({ err }, 'the proxy could not start listening')
    process.stderr.write(`weir: ${(err as Error).message}\n`)
    await apps.close().catch(() => undefined)
    process.exit(1)
  }
  const address = `${config.listen.tls === undefined ? 'http' : 'https'}://${urlHost(config.listen.host)}:${port}`
  const workers = apps.dataPlane.workers()
  log.info(`weir admin (healthz, readyz, metrics, /api/v1) listening on ${adminAddress}`)
  if (opsAddress !== undefined) log.info(`weir ops (healthz, readyz, metrics) listening on ${opsAddress}`)
  log.info({ routes: config.routes.map((r) => r.name), workers: workers.length === 0 ? 1 : workers.length }, `weir proxy listening on ${address}` +
    (workers.length === 0 ? '' : ` (${workers.length} worker processes)`))

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn(`${signal} again: exiting without waiting`)
      process.exit(1)
    }
    stopping = true
    log.info(`${signal}: draining in-flight requests (at most ${config.drainTimeoutMs} ms)`)
    apps.close().then(() => {
      log.info('drained, exiting')
      process.exit(0)
    }, (err: unknown) => {
      log.error({ err }, 'error while draining')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => {
    const next = loadConfigFile(configFile)
    if (!next.ok) {
      log.error({ problems: next.problems }, `SIGHUP: ${configFile} is not valid; keeping the running config\n${formatProblems(next.problems)}`)
      return
    }
    apps.reload(withOverrides(next.config)).then((warnings) => {
      for (const w of warnings) log.warn(`SIGHUP: ${w}`)
      log.info({ routes: next.config.routes.map((r) => r.name) }, 'SIGHUP: config reloaded')
    }, (err: unknown) => log.error({ err }, 'SIGHUP: reload failed; keeping the running config'))
  })
  return { apps, config, url: address, adminUrl: adminAddress, opsUrl: opsAddress }
}

/** A listen host as it goes in a URL (IPv6 in brackets). */
function urlHost (host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
