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
}

/** `options` are internal build options (bench/servers/weir-norecord.ts), never set by the CLI. */
export async function serve (configFile: string, options: BuildOptions = {}): Promise<RunningServer> {
  const loaded = loadConfigFile(configFile)
  if (!loaded.ok) {
    process.stderr.write(`weir: ${configFile} is not valid:\n${formatProblems(loaded.problems)}\n`)
    process.exit(1)
  }
  const config = loaded.config
  const apps = await buildApps(config, options)
  const log = apps.proxy.log
  const adminAddress = await apps.admin.listen({ host: config.admin.host, port: config.admin.port })
  const address = await apps.proxy.listen({ host: config.listen.host, port: config.listen.port })
  log.info(`weir admin (healthz, readyz, metrics, /api/v1) listening on ${adminAddress}`)
  log.info({ routes: config.routes.map((r) => r.name) }, `weir proxy listening on ${address}`)

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
    apps.reload(next.config).then((warnings) => {
      for (const w of warnings) log.warn(`SIGHUP: ${w}`)
      log.info({ routes: next.config.routes.map((r) => r.name) }, 'SIGHUP: config reloaded')
    }, (err: unknown) => log.error({ err }, 'SIGHUP: reload failed; keeping the running config'))
  })
  return { apps, config, url: address, adminUrl: adminAddress }
}
