import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openEventLog } from '../../src/state/event-log.ts'
import { openFileStore } from '../../src/state/file-store.ts'
import { WeirError } from '../../src/errors.ts'
import type { RouteState, RouteUpdate } from '../../src/state/store.ts'

const split = (canary: number): RouteUpdate => ({ weights: { stable: 10_000 - canary, canary, green: 0 } })

t.test('a change is visible at once, survives a reopen, and bumps the revision', async (t) => {
  const file = join(t.testdir(), 'nested', 'dir', 'state.json')
  const store = await openFileStore(file)
  t.equal(store.get('web'), undefined, 'a missing file is an empty state')
  t.equal(store.all().size, 0)

  const first = await store.compareAndSet('web', null, { ...split(1000), upstreams: { canary: ['http://10.0.0.5:3001'] }, rollout: null })
  t.ok(first.ok)
  t.equal(store.get('web')?.revision, 1, 'a new route starts at revision 1')
  const second = await store.compareAndSet('web', 1, split(2500))
  t.match(second, { ok: true, state: { revision: 2, weights: { stable: 7500, canary: 2500, green: 0 } } })
  t.equal(store.get('web')?.upstreams, undefined, 'the named fields replace the stored ones')
  t.ok(Object.isFrozen(store.get('web')) && Object.isFrozen(store.get('web')?.weights), 'handed-out states are frozen')
  await store.close()

  const onDisk = JSON.parse(readFileSync(file, 'utf8')) as { version: number; routes: Record<string, RouteState> }
  t.equal(onDisk.version, 1)
  t.equal(onDisk.routes.web?.revision, 2)

  const reopened = await openFileStore(file)
  t.same(reopened.get('web'), store.get('web'), 'the reopened state equals the last written one')
  const third = await reopened.compareAndSet('web', 2, split(5000))
  t.match(third, { ok: true, state: { revision: 3 } })
  await reopened.close()
})

t.test('a stale revision fails and changes nothing, in memory or on disk', async (t) => {
  const file = join(t.testdir(), 'state.json')
  const store = await openFileStore(file)
  await store.compareAndSet('web', 0, split(1000))
  await store.compareAndSet('web', 1, split(2000))
  const before = readFileSync(file, 'utf8')
  const seen: string[] = []
  store.watch((route) => seen.push(route))

  const stale = await store.compareAndSet('web', 1, split(9000))
  t.equal(stale.ok, false)
  t.match(stale, { ok: false, current: { revision: 2, weights: { canary: 2000 } } }, 'the failure reports the current state')
  t.equal(store.get('web')?.weights.canary, 2000)
  t.equal(readFileSync(file, 'utf8'), before, 'the file is untouched')
  t.same(seen, [], 'watchers are not called')

  t.match(await store.compareAndSet('web', 0, split(1)), { ok: false }, 'expected revision 0 means "must not exist"')
  t.match(await store.compareAndSet('api', 5, split(1)), { ok: false, current: undefined }, 'a revision for an absent route fails')
  t.equal(store.get('api'), undefined)
  await store.close()
})

t.test('of 20 concurrent compareAndSets expecting the same revision exactly one succeeds', async (t) => {
  const store = await openFileStore(join(t.testdir(), 'state.json'))
  await store.compareAndSet('web', null, split(0))
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.compareAndSet('web', 1, split(100 * (i + 1)))))
  const winners = results.filter((r) => r.ok)
  t.equal(winners.length, 1)
  t.equal(store.get('web')?.revision, 2)
  for (const r of results) if (!r.ok) t.equal(r.current?.revision, 2, 'every loser sees the winner')

  const unchecked = await Promise.all(Array.from({ length: 20 }, () => store.compareAndSet('web', null, split(500))))
  t.same(unchecked.map((r) => r.ok ? r.state.revision : -1), Array.from({ length: 20 }, (_, i) => 3 + i), 'null: every write lands, in call order')
  await store.close()
})

t.test('watchers see each change after it is durable; unsubscribe stops them', async (t) => {
  const file = join(t.testdir(), 'state.json')
  const store = await openFileStore(file)
  const seen: Array<[string, number | undefined, number | undefined]> = []
  const stop = store.watch((route, state) => {
    const disk = JSON.parse(readFileSync(file, 'utf8')) as { routes: Record<string, RouteState> }
    seen.push([route, state?.revision, disk.routes[route]?.revision])
  })
  await store.compareAndSet('web', null, split(100))
  await store.compareAndSet('api', null, split(200))
  t.match(await store.remove('api', 7), { ok: false, current: { revision: 1 } }, 'remove checks the revision too')
  t.same(await store.remove('api', 1), { ok: true })
  t.same(await store.remove('gone'), { ok: true }, 'removing an absent route is a no-op')
  stop()
  await store.compareAndSet('web', null, split(300))
  t.same(seen, [['web', 1, 1], ['api', 1, 1], ['api', undefined, undefined]])
  t.same([...store.all().keys()], ['web'])
  await store.close()
  t.same([...(await openFileStore(file)).all().keys()], ['web'], 'a removal is persisted')
})

t.test('a write\'s event is appended once the state file holds the change; an append that fails leaves the change and says why', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'state.json')
  const store = await openFileStore(file)
  const events = await openEventLog(join(dir, 'events.jsonl'))
  t.teardown(() => store.close())
  await t.rejects(store.compareAndSet('web', 0, split(1000), { event: () => ({ actor: 'test', action: 'weights.set' }) }), TypeError, 'an event needs a log to go to')
  t.equal(store.get('web'), undefined, 'and nothing was written')
  store.recordEventsIn(events)
  let onDisk: number | undefined
  const first = await store.compareAndSet('web', 0, split(1000), {
    event: (state) => {
      onDisk = (JSON.parse(readFileSync(file, 'utf8')) as { routes: Record<string, RouteState> }).routes.web?.revision
      return { actor: 'test', route: 'web', action: 'weights.set', new: { revision: state.revision } }
    },
  })
  t.equal(onDisk, 1, 'the event is made after the state file holds the change')
  t.match(first, { ok: true, state: { revision: 1 }, event: { id: 1, route: 'web', new: { revision: 1 } } }, 'the write answers with its event')
  t.match(events.since(), [{ id: 1, action: 'weights.set' }], 'which is in the log')
  t.match(await store.compareAndSet('web', 0, split(2000), { event: () => ({ actor: 'test', action: 'weights.set' }) }), { ok: false }, 'a stale write')
  t.equal(events.lastId, 1, 'writes no event')
  await events.close()
  const second = await store.compareAndSet('web', 1, split(3000), { event: () => ({ actor: 'test', action: 'weights.set' }) })
  t.match(second, { ok: true, state: { revision: 2 }, eventError: { code: 'WEIR_ERR_EVENTLOG_CLOSED' } }, 'a log that cannot take the event: the change stands, and the write says why')
  t.equal(second.ok && second.event, undefined, 'with no event')
})

t.test('fields this weir does not know are kept through a write', async (t) => {
  const file = join(t.testdir(), 'state.json')
  writeFileSync(file, JSON.stringify({
    version: 1,
    written_by: 'weir 0.2',
    routes: { web: { revision: 4, weights: { stable: 10_000, canary: 0, green: 0 }, updatedAt: '2025-01-01T00:00:00.000Z', pinnedBy: 'ops' } },
  }))
  const store = await openFileStore(file)
  const current = store.get('web')
  t.ok(current)
  // A writer that spreads the stored state passes revision/updatedAt along: the store ignores them.
  const result = await store.compareAndSet('web', 4, { ...(current as RouteState), ...split(500) })
  t.match(result, { ok: true, state: { revision: 5, pinnedBy: 'ops' } })
  t.not((result as { state: RouteState }).state.updatedAt, '2025-01-01T00:00:00.000Z')
  await store.compareAndSet('web', 5, split(600))
  await store.close()
  const disk = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { routes: { web: Record<string, unknown> } }
  t.equal(disk.written_by, 'weir 0.2', 'unknown top-level fields are kept')
  t.equal(disk.routes.web.pinnedBy, 'ops', 'unknown route fields are kept')
  t.equal(disk.routes.web.revision, 6)
})

t.test('an invalid new state is refused before anything is written', async (t) => {
  const file = join(t.testdir(), 'state.json')
  const store = await openFileStore(file)
  await t.rejects(store.compareAndSet('web', null, { weights: { stable: 5000, canary: 0, green: 0 } }), { code: 'WEIR_ERR_STATE_INVALID', message: /sum to 10000/ })
  await t.rejects(store.compareAndSet('web', null, { weights: { stable: 99.5, canary: 9900.5, green: 0 } }), { code: 'WEIR_ERR_STATE_INVALID', message: /weights\.stable/ })
  await t.rejects(store.compareAndSet('web', null, { ...split(0), upstreams: { blue: ['http://x'] } as never }), { code: 'WEIR_ERR_STATE_INVALID', message: /upstreams\.blue/ })
  await t.rejects(store.compareAndSet('web', -1, split(0)), { code: 'WEIR_ERR_STATE_INVALID' })
  await t.rejects(store.compareAndSet('', null, split(0)), { code: 'WEIR_ERR_STATE_INVALID' })
  t.equal(existsSync(file), false, 'no file was written')
  await store.close()
  await t.rejects(store.compareAndSet('web', null, split(0)), { code: 'WEIR_ERR_STATE_CLOSED' }, 'a closed store refuses writes')
})

t.test('a damaged state file stops openFileStore with a code, the file and the way out', async (t) => {
  const dir = t.testdir()
  const cases: Array<[string, string, string, RegExp]> = [
    ['garbage', '\u0000\u0001not json at all{{{', 'WEIR_ERR_STATE_CORRUPT', /not valid JSON/],
    ['truncated', '{"version":1,"routes":{"web":{"revision":3,', 'WEIR_ERR_STATE_CORRUPT', /not valid JSON/],
    ['empty', '', 'WEIR_ERR_STATE_CORRUPT', /is empty/],
    ['blank', '  \n', 'WEIR_ERR_STATE_CORRUPT', /is empty/],
    ['array', '[]', 'WEIR_ERR_STATE_CORRUPT', /not a JSON object/],
    ['no-version', '{"routes":{}}', 'WEIR_ERR_STATE_CORRUPT', /"version" must be 1/],
    ['routes-list', '{"version":1,"routes":[]}', 'WEIR_ERR_STATE_CORRUPT', /"routes" must be an object/],
    ['bad-route', JSON.stringify({ version: 1, routes: { web: { revision: 0, weights: { stable: 'all' }, updatedAt: 'x' } } }), 'WEIR_ERR_STATE_CORRUPT',
      /routes\.web\.revision .*; routes\.web\.updatedAt .*; routes\.web\.weights\.stable/],
    ['newer', '{"version":2,"routes":{}}', 'WEIR_ERR_STATE_VERSION', /format version 2/],
  ]
  for (const [name, content, code, what] of cases) {
    const file = join(dir, `${name}.json`)
    writeFileSync(file, content)
    const err = await openFileStore(file).then(() => null, (e: unknown) => e)
    t.type(err, WeirError, name)
    t.match(err, { code, file, message: what }, name)
    t.ok((err as Error).message.includes(file), `${name}: the message names the file`)
    t.match((err as Error).message, /move it aside \(mv .* .*\.bad\)/, `${name}: the message says the way out`)
    t.equal(readFileSync(file, 'utf8'), content, `${name}: the file is left as it was`)
  }
})

t.test('an unreadable state file stops openFileStore (a directory in its place)', async (t) => {
  const file = join(t.testdir(), 'state.json')
  mkdirSync(file)
  await t.rejects(openFileStore(file), { code: 'WEIR_ERR_STATE_UNREADABLE', file, message: /cannot read state file .*state\.json \(EISDIR\).*mv/ })
})

t.test('an unreadable state file stops openFileStore (chmod 000)', { skip: process.getuid?.() === 0 ? 'root can read any file' : false }, async (t) => {
  const file = join(t.testdir(), 'state.json')
  writeFileSync(file, '{"version":1,"routes":{}}')
  chmodSync(file, 0o000)
  t.teardown(() => chmodSync(file, 0o600))
  await t.rejects(openFileStore(file), { code: 'WEIR_ERR_STATE_UNREADABLE', file, message: /cannot read state file .*\(EACCES\)/ })
})

t.test('temp files left by a crashed writer are removed on open; a write leaves none', async (t) => {
  const dir = t.testdir({ '.state.json.4242.abcdef.tmp': '{"version":1,"rou', 'other.tmp': 'not ours' })
  const file = join(dir, 'state.json')
  const store = await openFileStore(file)
  t.same(readdirSync(dir).sort(), ['other.tmp'])
  await store.compareAndSet('web', null, split(0))
  t.same(readdirSync(dir).sort(), ['other.tmp', 'state.json'])
  await store.close()
})

t.test('a write that cannot be persisted rejects and changes nothing; the store recovers', async (t) => {
  const dir = join(t.testdir(), 'state')
  const file = join(dir, 'state.json')
  const store = await openFileStore(file)
  await store.compareAndSet('web', null, split(100))
  const seen: number[] = []
  store.watch((_route, state) => seen.push(state?.revision ?? -1))
  rmSync(dir, { recursive: true })
  await t.rejects(store.compareAndSet('web', 1, split(200)), { code: 'WEIR_ERR_STATE_WRITE_FAILED', message: /route web .*\(ENOENT\); nothing changed/ })
  t.equal(store.get('web')?.revision, 1, 'memory keeps the last durable state')
  t.same(seen, [], 'watchers hear nothing')
  mkdirSync(dir)
  t.match(await store.compareAndSet('web', 1, split(300)), { ok: true, state: { revision: 2 } })
  await store.close()
  t.equal((await openFileStore(file)).get('web')?.weights.canary, 300)
})
