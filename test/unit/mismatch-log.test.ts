import t from 'tap'
import { MISMATCH_SAMPLE_SIZE, MismatchLog, type MismatchSample } from '../../src/shadow/mismatch-log.ts'

const sample = (n: number, kinds: MismatchSample['kinds'] = ['body']): MismatchSample => ({
  at: new Date(0).toISOString(),
  requestId: `r${n}`,
  method: 'GET',
  url: `/item/${n}`,
  primary: { status: 200 },
  shadow: { status: 200 },
  kinds,
  diff: [{ path: '$.n', primary: String(n), shadow: String(n + 1) }],
})

t.test('the sample keeps the most recent mismatches, newest first, bounded', async (t) => {
  const log = new MismatchLog(() => 0)
  t.same(log.recent(), [])
  for (let i = 0; i < MISMATCH_SAMPLE_SIZE + 25; i++) log.record(sample(i))
  const recent = log.recent()
  t.equal(recent.length, MISMATCH_SAMPLE_SIZE)
  t.equal(recent[0]?.requestId, `r${MISMATCH_SAMPLE_SIZE + 24}`, 'newest first')
  t.equal(recent.at(-1)?.requestId, 'r25', 'the oldest 25 left the sample')
  t.same(log.recent(3).map((s) => s.requestId), [`r${MISMATCH_SAMPLE_SIZE + 24}`, `r${MISMATCH_SAMPLE_SIZE + 23}`, `r${MISMATCH_SAMPLE_SIZE + 22}`])
  t.equal(log.recorded, MISMATCH_SAMPLE_SIZE + 25)
})

t.test('matches count as comparisons only; the rate is over the window', async (t) => {
  let now = 10_000
  const log = new MismatchLog(() => now)
  for (let i = 0; i < 6; i++) log.record(null)
  log.record(sample(1, ['status']))
  log.record(sample(2, ['headers', 'body']))
  t.same(log.summary(60), { compared: 8, mismatches: 2, mismatchRate: 0.25, byKind: { status: 1, headers: 1, body: 1 } })
  t.equal(log.recent().length, 2, 'matches are not sampled')
  now += 30_000
  log.record(null)
  t.same(log.summary(10), { compared: 1, mismatches: 0, mismatchRate: 0, byKind: { status: 0, headers: 0, body: 0 } }, 'a 10 s window sees only the last second')
  t.equal(log.summary(60).compared, 9)
  now += 600_000
  t.same(log.summary(600).compared, 0, 'after 10 minutes everything has left the window')
})

t.test('a very long request target is cut in the sample', async (t) => {
  const log = new MismatchLog(() => 0)
  log.record({ ...sample(1), url: '/' + 'x'.repeat(5000) })
  t.equal(log.recent()[0]?.url.length, 2049)
})
