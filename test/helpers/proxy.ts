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
  const apps = await buildApps(config, { processMetrics: false })
  const adminUrl = await apps.admin.listen({ host: '127.0.0.1', port: 0 })
  const url = await apps.proxy.listen({ host: '127.0.0.1', port: 0 })
  return { apps, config, url, port: Number(new URL(url).port), adminUrl, close: () => apps.close() }
}
