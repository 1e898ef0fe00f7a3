// Builds weir in-process from a config document (as the file would hold it) and listens on
// 127.0.0.1 with an ephemeral port, so tests talk to it over real sockets.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApps, type Apps } from '../../src/app.ts'
import { buildConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/model.ts'

export interface TestProxy {
  apps: Apps
  config: Config
  url: string
  port: number
  adminUrl: string
  /** The ops server's base URL, listening on 127.0.0.1 (an ephemeral port); undefined without config `ops`. */
  opsUrl: string | undefined
  close (): Promise<void>
}

export type RouteDoc = Record<string, unknown>

/** A config document with sensible test defaults: ephemeral ports, a temp state dir, quiet logs. */
export function configDoc (routes: RouteDoc[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'weir-test-'))
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    state: { file: join(dir, 'state.json') },
    cookieSecret: 'test-secret-test-secret',
    logLevel: 'silent',
    // WEIR_TEST_WORKERS=2 runs the same tests with the data path in worker processes (test/workers/).
    workers: Number(process.env.WEIR_TEST_WORKERS ?? 1),
    routes,
    ...extra,
  }
}

export function mustBuild (doc: unknown): Config {
  const result = buildConfig(doc)
  if (!result.ok) throw new Error('invalid test config:\n' + result.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'))
  return result.config
}

export async function startProxy (doc: unknown): Promise<TestProxy> {
  const config = mustBuild(doc)
  // Workers start on plain Node, without the test runner's loaders (as `weir serve` runs them).
  const apps = await buildApps(config, { processMetrics: false, workerExecArgv: [] })
  const adminUrl = await apps.admin.listen({ host: '127.0.0.1', port: 0 })
  const opsUrl = apps.ops === null ? undefined : await apps.ops.listen({ host: '127.0.0.1', port: 0 })
  const port = await apps.dataPlane.listen('127.0.0.1', 0)
  const url = `${config.listen.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`
  return { apps, config, url, port, adminUrl, opsUrl, close: () => apps.close() }
}
