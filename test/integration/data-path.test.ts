// The data path runs on a snapshot alone (docs/architecture.md, "The seam"): built from a
// DataPathSnapshot and a recorder, with no state store, admin API or controller in the process,
// it proxies real requests, takes a new snapshot through `apply`, and reports what it served
// through the recorder. Its module graph cannot even reach the control plane.

import { readFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { buildConfig } from '../../src/config/load.ts'
import { createRecorder } from '../../src/metrics/recorder.ts'
import { createMetrics } from '../../src/metrics/registry.ts'
import { StatsRegistry } from '../../src/metrics/rolling-stats.ts'
import { createDataPath } from '../../src/proxy/data-path.ts'
import type { DataPathSnapshot } from '../../src/snapshot.ts'
import { send } from '../helpers/http.ts'
import { parsePromText } from '../helpers/prom-text.ts'
import { startUpstreams } from '../helpers/upstream.ts'

const SRC = fileURLToPath(new URL('../../src/', import.meta.url))

/** Every src/ file `entry` loads, directly or not (static and type imports, and literal dynamic imports). */
function importClosure (entry: string): Set<string> {
  const seen = new Set<string>()
  const pending = [resolve(SRC, entry)]
  while (pending.length > 0) {
    const file = pending.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) pending.push(join(dirname(file), match[1] as string))
  }
  return new Set([...seen].map((f) => relative(SRC, f)))
}

t.test('the data path and the recorder load no module of the control plane', async (t) => {
  const loaded = new Set([...importClosure('proxy/data-path.ts'), ...importClosure('metrics/recorder.ts')])
  t.ok(loaded.has('proxy/app.ts') && loaded.has('routing/pick-version.ts'), 'the closure is followed (it holds the proxy app and pickVersion)')
  const controlPlane = [...loaded].filter((f) => /^(state|admin|controller|rollout|cli)\//.test(f) || f === 'app.ts' || f === 'server.ts')
  t.same(controlPlane, [], 'no state store, admin API, controller, rollout core or process entry')
})

t.test('a data path built from a snapshot alone proxies, routes by weight and reports through the recorder', async (t) => {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const built = buildConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    routes: [{
      name: 'shop',
      upstreams: { stable: stable?.url, canary: canary?.url },
      weights: { stable: 50, canary: 50 },
      stickiness: { userId: { header: 'x-user-id' } },
    }],
  })
  if (!built.ok) throw new Error(JSON.stringify(built.problems))
  const config = built.config
  const snapshot = (weights: { stable: number; canary: number; green: number }): DataPathSnapshot => ({
    routes: config.routes.map((r) => ({ ...r, weights })),
    versionHeader: config.versionHeader,
    trustedProxies: [],
    logLevel: 'silent',
    maxHeaders: config.maxHeaders,
    tracing: config.tracing,
    accessLogSample: 0,
    smokeToken: 'a-smoke-token-for-tests',
    cookieSecret: 'data-path-test-secret',
    server: {
      tls: undefined,
      maxHeaderBytes: config.maxHeaderBytes,
      clientHeadersTimeoutMs: config.clientHeadersTimeoutMs,
      clientIdleTimeoutMs: config.clientIdleTimeoutMs,
    },
  })
  const metrics = createMetrics({ processDefaults: false })
  const stats = new StatsRegistry()
  const dataPath = await createDataPath(snapshot({ stable: 5000, canary: 5000, green: 0 }), { recorder: createRecorder(metrics, stats) })
  t.teardown(() => dataPath.close(1000))
  const url = await dataPath.app.listen({ host: '127.0.0.1', port: 0 })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())

  const served = { stable: 0, canary: 0 }
  for (let i = 0; i < 200; i++) {
    const reply = await send(`${url}/item/${i}`, { headers: { 'x-user-id': `user-${i}` }, agent })
    t.equal(reply.status, 200)
    const version = reply.headers['x-weir-version'] as 'stable' | 'canary'
    t.equal(reply.json<{ version: string }>().version, version, 'the version header names the upstream that answered')
    served[version]++
  }
  t.ok(served.stable > 60 && served.canary > 60, `50/50 weights split 200 users both ways (stable ${served.stable}, canary ${served.canary})`)
  t.equal((stable?.received.length ?? 0) + (canary?.received.length ?? 0), 200, 'each request reached one upstream once')

  // A new snapshot is in force for the next request: no store, no admin call, just `apply`.
  await dataPath.apply(snapshot({ stable: 0, canary: 10_000, green: 0 }))
  for (let i = 0; i < 20; i++) {
    const reply = await send(`${url}/after/${i}`, { headers: { 'x-user-id': `user-${i}` }, agent })
    t.equal(reply.headers['x-weir-version'], 'canary', `request ${i} after the new snapshot goes to canary`)
  }

  // What the data path served is what the recorder holds.
  const text = parsePromText(await metrics.registry.metrics())
  t.equal(text.value('weir_requests_total', { route: 'shop', version: 'stable', code: '200' }), served.stable)
  t.equal(text.value('weir_requests_total', { route: 'shop', version: 'canary', code: '200' }), served.canary + 20)
  t.equal(stats.forRoute('shop', 60).versions.canary?.requests, served.canary + 20, 'the rolling stats saw every canary response')
})
