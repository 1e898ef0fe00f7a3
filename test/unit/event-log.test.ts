import t from 'tap'
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openEventLog, redact, type WeirEvent } from '../../src/state/event-log.ts'

const lines = (file: string): unknown[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown)

t.test('events get increasing ids, one JSON line each, and ids continue after a reopen', async (t) => {
  const file = join(t.testdir(), 'logs', 'events.jsonl')
  const log = await openEventLog(file)
  t.equal(log.lastId, 0)
  const first = await log.append({ actor: 'ops', route: 'web', action: 'weights.set', old: { canary: 0 }, new: { canary: 1000 }, requestId: 'r-1' })
  t.match(first, { id: 1, actor: 'ops', route: 'web', action: 'weights.set', requestId: 'r-1' })
  t.ok(!Number.isNaN(Date.parse(first.time)), 'time is an ISO date')
  const second = await log.append({ actor: 'controller', route: 'web', action: 'rollback', reason: 'error rate 7% > 5%' })
  t.equal(second.id, 2)
  await log.close()
  t.match(lines(file), [{ id: 1, action: 'weights.set' }, { id: 2, action: 'rollback' }])

  const again = await openEventLog(file)
  t.equal(again.lastId, 2)
  t.same(again.since(), [first, second], 'the reopened log serves the events it read back')
  const third = await again.append({ actor: 'config', action: 'reload', time: '2025-06-01T12:00:00.000Z' })
  t.same(third, { id: 3, time: '2025-06-01T12:00:00.000Z', actor: 'config', action: 'reload' })
  await again.close()
  await t.rejects(again.append({ actor: 'x', action: 'y' }), { code: 'WEIR_ERR_EVENTLOG_CLOSED' })
})

t.test('concurrent appends are numbered and written in call order', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const log = await openEventLog(file)
  const events = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append({ actor: 'ops', action: 'weights.set', new: { i } })))
  t.same(events.map((e) => e.id), Array.from({ length: 50 }, (_, i) => i + 1))
  await log.close()
  t.same(lines(file).map((e) => (e as WeirEvent).id), events.map((e) => e.id))
  t.same(lines(file).map((e) => ((e as WeirEvent).new as { i: number }).i), events.map((_, i) => i))
})

t.test('since returns events after an id, oldest first, paged by limit; memory keeps the newest', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const log = await openEventLog(file, { maxInMemory: 5, sync: false })
  for (let i = 0; i < 12; i++) await log.append({ actor: 'controller', action: 'rollout.step', new: { step: i } })
  t.same(log.since().map((e) => e.id), [8, 9, 10, 11, 12], 'only the newest maxInMemory are kept')
  t.same(log.since(9).map((e) => e.id), [10, 11, 12])
  t.same(log.since(9, 2).map((e) => e.id), [10, 11], 'with an id, limit keeps the first ones (page forward)')
  t.same(log.since(undefined, 2).map((e) => e.id), [11, 12], 'without an id, limit keeps the newest')
  t.same(log.since(12), [])
  t.same(log.since(0).map((e) => e.id), [8, 9, 10, 11, 12], 'ids older than memory start at the oldest kept')
  await log.close()

  const reopened = await openEventLog(file, { maxInMemory: 3 })
  t.same(reopened.since().map((e) => e.id), [10, 11, 12], 'a reopen keeps the newest of the file')
  t.equal(reopened.lastId, 12)
  await reopened.close()
})

t.test('a truncated last line is dropped with a warning and the next event is written cleanly', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const log = await openEventLog(file)
  await log.append({ actor: 'ops', action: 'weights.set' })
  await log.append({ actor: 'ops', action: 'switch' })
  await log.close()
  appendFileSync(file, '{"id":3,"time":"2025-01-01T00:00:00.000Z","actor":"op')

  const warnings: string[] = []
  const reopened = await openEventLog(file, { warn: (m) => warnings.push(m) })
  t.match(warnings, [/incomplete last line/])
  t.equal(reopened.lastId, 2)
  t.equal((await reopened.append({ actor: 'ops', action: 'rollback' })).id, 3)
  await reopened.close()
  t.match(lines(file), [{ id: 1 }, { id: 2 }, { id: 3, action: 'rollback' }], 'the partial line is gone, every line parses')
})

t.test('a complete last line missing only its newline is kept', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  writeFileSync(file, '{"id":1,"time":"2025-01-01T00:00:00.000Z","actor":"ops","action":"a"}\n{"id":2,"time":"2025-01-01T00:00:00.000Z","actor":"ops","action":"b"}')
  const warnings: string[] = []
  const log = await openEventLog(file, { warn: (m) => warnings.push(m) })
  t.same(warnings, [])
  t.equal((await log.append({ actor: 'ops', action: 'c' })).id, 3)
  await log.close()
  t.match(lines(file), [{ id: 1 }, { id: 2 }, { id: 3 }])
})

t.test('unreadable lines in the middle are skipped with one warning, never fatal', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  writeFileSync(file, '{"id":1,"time":"t","actor":"ops","action":"a"}\nnot json\n\n{"no":"id"}\n{"id":7,"time":"t","actor":"ops","action":"b"}\n')
  const warnings: string[] = []
  const log = await openEventLog(file, { warn: (m) => warnings.push(m) })
  t.match(warnings, [/skipped 2 unreadable line\(s\), the first at line 2/])
  t.same(log.since().map((e) => e.id), [1, 7])
  t.equal((await log.append({ actor: 'ops', action: 'c' })).id, 8, 'ids continue from the highest id in the file')
  await log.close()
})

t.test('an event log that cannot be opened rejects with a code', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  mkdirSync(file)
  await t.rejects(openEventLog(file), { code: 'WEIR_ERR_EVENTLOG_UNREADABLE', message: /events\.jsonl \(EISDIR\)/ })
})

t.test('secrets never reach the file', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const log = await openEventLog(file)
  const event = await log.append({
    actor: 'deployer',
    route: 'web',
    action: 'upstreams.set',
    old: { canary: ['http://10.0.0.5:3001'], token: 's3cr3t-old' },
    new: {
      canary: ['http://10.0.0.6:3001'],
      headers: { Authorization: 'Bearer s3cr3t-h', 'x-api-key': 's3cr3t-k' },
      webhook: { url: 'https://hooks.example/x?token=s3cr3t-q&ok=1', clientSecret: 's3cr3t-c' },
      nested: [{ password: 's3cr3t-p', keep: 'me' }],
    },
    reason: { message: 'webhook https://user:s3cr3t-u@hooks.example failed with Bearer s3cr3t-b', adminToken: 's3cr3t-t' },
  })
  await log.close()
  const text = readFileSync(file, 'utf8')
  t.notMatch(text, /s3cr3t/, 'no secret value in the file')
  t.notMatch(JSON.stringify(event), /s3cr3t/, 'nor in the returned event')
  t.match(event, {
    old: { canary: ['http://10.0.0.5:3001'] },
    new: { canary: ['http://10.0.0.6:3001'], headers: {}, webhook: { url: 'https://hooks.example/x?token=[redacted]&ok=1' }, nested: [{ keep: 'me' }] },
    reason: { message: 'webhook https://[redacted]@hooks.example failed with Bearer [redacted]' },
  })
  t.notOk('token' in (event.old as object), 'secret keys are dropped, not blanked')
})

t.test('redact copies without touching its input and survives cycles and errors', async (t) => {
  const input: Record<string, unknown> = { a: 1, secret: 'x', list: [1, 'two'] }
  input.self = input
  const out = redact(input) as Record<string, unknown>
  t.same(out, { a: 1, list: [1, 'two'], self: '[omitted]' })
  t.equal(input.secret, 'x', 'the input is unchanged')
  t.same(redact(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), { message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' })
  t.equal(redact('plain'), 'plain')
  t.equal(redact(null), null)
})
