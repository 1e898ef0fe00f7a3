// How live state and the config file combine (reconcileWithConfig), on a real state file and
// event log in a temp folder.

import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/model.ts'
import type { ShadowInput } from '../../src/config/schema.ts'
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
  store.recordEventsIn(events)
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
  t.same(await reconcileWithConfig(cfg, store), [])
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
  const warnings = await reconcileWithConfig(after, store)
  t.match(warnings, [/need an upstream the config no longer has/, /upstreams changed since the live state was written/])
  t.same(store.get('a')?.weights, { stable: 10_000, canary: 0, green: 0 })
  t.match(events.since(), [{ actor: 'config', action: 'config.applied', route: 'a' }])
})

t.test('a rollout in progress keeps its state when the file changes; a removed route keeps its state, unused', async (t) => {
  const { store } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, canary: C }, weights: { stable: 90, canary: 10 } }])
  await store.compareAndSet('a', 0, { weights: { stable: 7500, canary: 2500, green: 0 }, rollout: { phase: 'progressing' }, configured: configuredValues(before.routes[0]!) })
  await store.compareAndSet('gone', 0, { weights: { stable: 10_000, canary: 0, green: 0 } })
  const after = config([{ name: 'a', upstreams: { stable: S, canary: C }, weights: { stable: 100 } }])
  const warnings = await reconcileWithConfig(after, store)
  t.match(warnings, [/route gone has live state but is not in the config/, /route a: .*while a rollout drives the route/])
  t.same(store.get('a')?.weights, { stable: 7500, canary: 2500, green: 0 })
  t.ok(store.get('gone'), 'the removed route\'s state is kept')
})

t.test('a state written before `configured` existed keeps winning', async (t) => {
  const { store } = await open(t)
  await store.compareAndSet('a', 0, { weights: { stable: 2000, canary: 8000, green: 0 } })
  const cfg = config([{ name: 'a', upstreams: { stable: S, canary: C } }])
  t.same(await reconcileWithConfig(cfg, store), [])
  t.same(liveConfig(cfg, store.all()).routes[0]?.weights, { stable: 2000, canary: 8000, green: 0 })
})

const SH = 'http://127.0.0.1:3004'
const SH2 = 'http://127.0.0.1:3014'

/** Complete shadow settings (as the API stores them): the schema defaults with `changes` applied. */
function shadowSettings (changes: Partial<ShadowInput> = {}): ShadowInput {
  return { percent: 0, maxInFlight: 100, maxBodyBytes: '64kb', methods: ['GET', 'HEAD', 'OPTIONS'], timeout: '5s', compare: false, ignore: { headers: [], json: [] }, ...changes }
}

t.test('unchanged file: live shadow settings win in the served route; nothing is written', async (t) => {
  const { store, events } = await open(t)
  const cfg = config([{ name: 'a', upstreams: { stable: S, shadow: SH }, shadow: { percent: 1 } }])
  await store.compareAndSet('a', 0, { weights: { stable: 10_000, canary: 0, green: 0 }, shadow: shadowSettings({ percent: 12.5, compare: true }), configured: configuredValues(cfg.routes[0]!) })
  t.same(await reconcileWithConfig(cfg, store), [])
  t.equal(store.get('a')?.revision, 1)
  const live = liveConfig(cfg, store.all()).routes[0]!
  t.equal(live.shadow.percentBp, 1250)
  t.equal(live.shadow.compare, true)
  t.equal(live.shadowInput.percent, 12.5)
  t.equal(cfg.routes[0]?.shadow.percentBp, 100, 'the file\'s route itself is untouched')
  t.equal(events.lastId, 0)
})

t.test('an edited file shadow wins over the live one (actor config); the live weights and upstream overrides stay', async (t) => {
  const { store, events } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 90, canary: 10 }, shadow: { percent: 1 } }])
  await store.compareAndSet('a', 0, {
    weights: { stable: 5000, canary: 5000, green: 0 },
    upstreams: { shadow: [SH2] },
    shadow: shadowSettings({ percent: 30 }),
    configured: configuredValues(before.routes[0]!),
  })
  const after = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 90, canary: 10 }, shadow: { percent: 2 } }])
  const warnings = await reconcileWithConfig(after, store)
  t.match(warnings, [/route a: the config file's shadow settings changed since the live state was written/])
  const state = store.get('a')
  t.equal(state?.shadow, undefined, 'the live shadow settings are dropped')
  t.equal(state?.configured?.shadow?.percent, 2, 'the file\'s new settings are recorded')
  t.same(state?.weights, { stable: 5000, canary: 5000, green: 0 })
  t.same(state?.upstreams, { shadow: [SH2] })
  const live = liveConfig(after, store.all()).routes[0]!
  t.equal(live.shadow.percentBp, 200)
  t.match(events.since(), [{ actor: 'config', action: 'config.applied', route: 'a', old: { shadow: { percent: 30 } }, new: { shadow: null }, reason: /shadow settings/ }])
})

t.test('a weights edit in the file keeps the live shadow settings', async (t) => {
  const { store } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 90, canary: 10 } }])
  await store.compareAndSet('a', 0, { weights: { stable: 5000, canary: 5000, green: 0 }, shadow: shadowSettings({ percent: 7 }), configured: configuredValues(before.routes[0]!) })
  const after = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 80, canary: 20 } }])
  t.match(await reconcileWithConfig(after, store), [/the config file's weights changed/])
  t.same(store.get('a')?.weights, { stable: 8000, canary: 2000, green: 0 })
  t.equal(store.get('a')?.shadow?.percent, 7)
  t.equal(liveConfig(after, store.all()).routes[0]?.shadow.percentBp, 700)
})

t.test('live shadow settings that no longer fit (the file dropped the shadow upstream) fall back to the file\'s with a warning', async (t) => {
  const { store, events } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, shadow: SH } }])
  await store.compareAndSet('a', 0, { weights: { stable: 10_000, canary: 0, green: 0 }, shadow: shadowSettings({ percent: 5, maxInFlight: 3 }), configured: configuredValues(before.routes[0]!) })
  const after = config([{ name: 'a', upstreams: { stable: S } }])
  const warnings = await reconcileWithConfig(after, store)
  t.match(warnings, [/live shadow settings \(percent 5\) need a shadow upstream the config no longer has; using the config file's shadow settings/, /upstreams changed/])
  t.equal(store.get('a')?.shadow, undefined)
  const live = liveConfig(after, store.all()).routes[0]!
  t.equal(live.shadow.percentBp, 0)
  t.equal(live.shadow.maxInFlight, 100)
  t.match(events.since().at(-1), { actor: 'config', old: { shadow: { percent: 5 } }, new: { shadow: null } })
})

t.test('the file\'s shadow settings, edited to copy traffic, bring back a shadow upstream the API had removed', async (t) => {
  const { store } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, shadow: SH } }])
  await store.compareAndSet('a', 0, { weights: { stable: 10_000, canary: 0, green: 0 }, upstreams: { canary: [C], shadow: [] }, configured: configuredValues(before.routes[0]!) })
  const after = config([{ name: 'a', upstreams: { stable: S, shadow: SH }, shadow: { percent: 5 } }])
  const warnings = await reconcileWithConfig(after, store)
  t.match(warnings, [/need its shadow upstream; the live removal of upstreams.shadow is dropped/, /shadow settings changed/])
  t.same(store.get('a')?.upstreams, { canary: [C] }, 'only the shadow removal is dropped')
  const live = liveConfig(after, store.all()).routes[0]!
  t.same(live.upstreams.shadow, [SH])
  t.equal(live.shadow.percentBp, 500)
})

t.test('while a rollout drives the route, an edited file shadow still applies; the weights edit waits', async (t) => {
  const { store, events } = await open(t)
  const before = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 90, canary: 10 } }])
  const rollout = { phase: 'progressing', step: 2 }
  await store.compareAndSet('a', 0, { weights: { stable: 7500, canary: 2500, green: 0 }, rollout, shadow: shadowSettings({ percent: 3 }), configured: configuredValues(before.routes[0]!) })
  const after = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 100 }, shadow: { percent: 9 } }])
  const warnings = await reconcileWithConfig(after, store)
  t.match(warnings, [/weights or upstreams changed while a rollout drives the route/, /shadow settings now apply \(revision 2\), the rollout continues/])
  const state = store.get('a')
  t.same(state?.weights, { stable: 7500, canary: 2500, green: 0 })
  t.same(state?.rollout, rollout)
  t.equal(state?.shadow, undefined)
  t.same(state?.configured?.weights, { stable: 9000, canary: 1000, green: 0 }, 'the weights edit is still seen as an edit later')
  t.equal(liveConfig(after, store.all()).routes[0]?.shadow.percentBp, 900)
  t.match(events.since(), [{ actor: 'config', action: 'config.applied', old: { shadow: { percent: 3 } } }])
})

t.test('a state file written before shadow settings were recorded is read and kept byte for byte', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-live-'))
  const file = join(dir, 'state.json')
  const text = JSON.stringify({
    version: 1,
    routes: {
      a: {
        revision: 3,
        weights: { stable: 6000, canary: 4000, green: 0 },
        upstreams: { canary: [C2] },
        configured: { weights: { stable: 9000, canary: 1000, green: 0 }, upstreams: { stable: [S], canary: [C], shadow: [SH] } },
        updatedAt: '2025-01-01T00:00:00.000Z',
      },
    },
  }, null, 2) + '\n'
  writeFileSync(file, text)
  const store = await openFileStore(file)
  const events = await openEventLog(join(dir, 'events.jsonl'))
  store.recordEventsIn(events)
  t.teardown(async () => { await store.close(); await events.close() })
  const cfg = config([{ name: 'a', upstreams: { stable: S, canary: C, shadow: SH }, weights: { stable: 90, canary: 10 }, shadow: { percent: 4 } }])
  t.same(await reconcileWithConfig(cfg, store), [])
  t.equal(readFileSync(file, 'utf8'), text)
  t.equal(events.lastId, 0)
  const live = liveConfig(cfg, store.all()).routes[0]!
  t.same(live.weights, { stable: 6000, canary: 4000, green: 0 })
  t.equal(live.shadow.percentBp, 400, 'the file\'s shadow settings apply')
})

t.test('stored shadow settings must be complete and valid', async (t) => {
  const { store } = await open(t)
  const weights = { stable: 10_000, canary: 0, green: 0 }
  await t.rejects(store.compareAndSet('a', 0, { weights, shadow: { percent: 5 } as ShadowInput }), { code: 'WEIR_ERR_STATE_INVALID', message: /routes\.a\.shadow.* is not a valid shadow setting/ })
  await t.rejects(store.compareAndSet('a', 0, { weights, shadow: shadowSettings({ percent: 101 }) }), { message: /routes\.a\.shadow\.percent is not a valid shadow setting/ })
  await t.rejects(store.compareAndSet('a', 0, { weights, configured: { weights, upstreams: {}, shadow: shadowSettings({ methods: [] }) } }),
    { message: /routes\.a\.configured\.shadow\.methods is not a valid shadow setting/ })
  t.equal(store.get('a'), undefined)
})
