// How live state and the config file combine (reconcileWithConfig), on a real state file and
// event log in a temp folder.

import t, { type Test } from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildConfig, type Config } from '../../src/config/load.ts'
import { openEventLog } from '../../src/state/event-log.ts'
import { openFileStore } from '../../src/state/file-store.ts'
import { configuredValues, liveConfig, reconcileWithConfig } from '../../src/state/live-routes.ts'

function config (routes: Record<string, unknown>[]): Config {
  const r = buildConfig({ routes })
  if (!r.ok) throw new Error(JSON.stringify(r.problems))
  return r.config
}

async function open (t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'weir-live-'))
  const store = await openFileStore(join(dir, 'state.json'))
  const events = await openEventLog(join(dir, 'events.jsonl'))
  t.teardown(async () => { await store.close(); await events.close() })
  return { store, events }
}

const S = 'http://127.0.0.1:3001'
const C = 'http://127.0.0.1:3002'
const C2 = 'http://127.0.0.1:3012'

t.test('unchanged file: live weights and upstream overrides win; nothing is written', async (t) => {
  const { store, events } = await open(t)
  const cfg = config([{ name: 'a', upstreams: { stable: S, canary: C }, weights: { stable: 90, canary: 10 } }])
  const route = cfg.routes[0]!
  await store.compareAndSet('a', 0, { weights: { stable: 5000, canary: 5000, green: 0 }, upstreams: { canary: [C2] }, configured: configuredValues(route) })
  t.same(await reconcileWithConfig(cfg, store, events), [])
  t.equal(store.get('a')?.revision, 1)
  const live = liveConfig(cfg, store.all()).routes[0]!
  t.same(live.weights, { stable: 5000, canary: 5000, green: 0 })
  t.same(live.upstreams, { stable: [S], canary: [C2] })
  t.equal(events.lastId, 0)
})

t.test('edited upstreams drop the overrides; live weights that no longer fit fall back to the file with a warning', async (t) => {
  const { store, events } = await open(t)
  // The file's weights stay {stable: 100}; only its canary upstream goes away.
  const before = config([{ name: 'a', upstreams: { stable: S, canary: C } }])
  await store.compareAndSet('a', 0, { weights: { stable: 5000, canary: 5000, green: 0 }, configured: configuredValues(before.routes[0]!) })
  const after = config([{ name: 'a', upstreams: { stable: S } }])
  const warnings = await reconcileWithConfig(after, store, events)
  t.match(warnings, [/need an upstream the config no longer has/, /upstreams changed since the live state was written/])
  t.same(store.get('a')?.weights, { stable: 10_000, canary: 0, green: 0 })
  t.match(events.since(), [{ actor: 'config', action: 'config.applied', route: 'a' }])
})

t.test('a rollout in progress keeps its state when the file changes; a removed route keeps its state, unused', async (t) => {
  const { store, events } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, canary: C }, weights: { stable: 90, canary: 10 } }])
  await store.compareAndSet('a', 0, { weights: { stable: 7500, canary: 2500, green: 0 }, rollout: { phase: 'progressing' }, configured: configuredValues(before.routes[0]!) })
  await store.compareAndSet('gone', 0, { weights: { stable: 10_000, canary: 0, green: 0 } })
  const after = config([{ name: 'a', upstreams: { stable: S, canary: C }, weights: { stable: 100 } }])
  const warnings = await reconcileWithConfig(after, store, events)
  t.match(warnings, [/route gone has live state but is not in the config/, /route a: .*while a rollout drives the route/])
  t.same(store.get('a')?.weights, { stable: 7500, canary: 2500, green: 0 })
  t.ok(store.get('gone'), 'the removed route\'s state is kept')
})

t.test('a state written before `configured` existed keeps winning', async (t) => {
  const { store, events } = await open(t)
  await store.compareAndSet('a', 0, { weights: { stable: 2000, canary: 8000, green: 0 } })
  const cfg = config([{ name: 'a', upstreams: { stable: S, canary: C } }])
  t.same(await reconcileWithConfig(cfg, store, events), [])
  t.same(liveConfig(cfg, store.all()).routes[0]?.weights, { stable: 2000, canary: 8000, green: 0 })
})
