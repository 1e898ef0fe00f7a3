// The analysis of canary against stable: small samples hold instead of deciding, clear
// differences fail with the measured value and the limit, equal versions pass.

import t from 'tap'
import { analyze, judgeMetric, overall, quantile } from '../../src/rollout/analysis.ts'
import type { AnalysisPlan } from '../../src/rollout/policy.ts'
import { BUCKET_COUNT, bucketOf, type LatencyHistogram } from '../../src/metrics/rolling-stats.ts'

const PLAN: AnalysisPlan = { minRequests: 50, maxErrorRate: 0.01, maxErrorRatio: 2, maxP99Ms: 500, maxP99Ratio: 1.5, p99ToleranceMs: 5, significance: 0.01, failureThreshold: 2 }

/** A histogram of `n` requests, `errors` of them failed, latencies from `latency(i)` ms. */
function hist (n: number, errors: number, latency: (i: number) => number): LatencyHistogram {
  const counts = new Float64Array(BUCKET_COUNT)
  for (let i = 0; i < n; i++) counts[bucketOf(latency(i))]! += 1
  return { requests: n, errors, counts }
}
const normal = (i: number): number => 10 + (i % 10) // 10–19 ms
const run = (subject: LatencyHistogram, baseline: LatencyHistogram, plan = PLAN) =>
  analyze({ subject, baseline, subjectName: 'canary', window: 10 }, plan)
const byName = (checks: ReturnType<typeof run>, name: string) => checks.find((c) => c.name === name)

t.test('fewer canary requests than minRequests hold every check, whatever they show', async (t) => {
  const checks = run(hist(49, 49, () => 2000), hist(1000, 0, normal))
  t.equal(checks.length, 1)
  t.match(checks[0], { name: 'requests', verdict: 'hold', value: 49, threshold: 50 })
  t.equal(overall(checks), 'hold')
})

t.test('equal versions pass every check', async (t) => {
  const checks = run(hist(200, 1, normal), hist(2000, 10, normal))
  t.same(checks.map((c) => `${c.name}:${c.verdict}`), ['error-rate:pass', 'error-ratio:pass', 'p99:pass', 'p99-ratio:pass'])
})

t.test('an error rate above the limit fails only when it is significant, else holds', async (t) => {
  // 2 of 60 (3.3 %) against a 1 % limit: P(X ≥ 2) = 0.12, not evidence.
  const few = byName(run(hist(60, 2, normal), hist(2000, 20, normal)), 'error-rate')
  t.match(few, { verdict: 'hold', value: 0.03333, threshold: 0.01 })
  t.ok((few?.pValue ?? 0) > 0.1)
  // 30 of 100: no doubt.
  const many = byName(run(hist(100, 30, normal), hist(2000, 20, normal)), 'error-rate')
  t.match(many, { verdict: 'fail', value: 0.3, threshold: 0.01 })
  t.ok((many?.pValue ?? 1) < 1e-10)
  t.match(many?.detail, /canary error rate 0\.3 \(30 of 100\) is above maxErrorRate 0\.01 \(p = .* < 0\.01\)/)
})

t.test('the error ratio to stable uses Fisher\'s exact test; one error where stable has none only holds', async (t) => {
  const one = byName(run(hist(100, 1, normal), hist(1000, 0, normal), { ...PLAN, maxErrorRate: 0.05 }), 'error-ratio')
  t.match(one, { verdict: 'hold', value: null })
  const five = byName(run(hist(100, 5, normal), hist(1000, 0, normal), { ...PLAN, maxErrorRate: 0.05 }), 'error-ratio')
  t.match(five, { verdict: 'fail', threshold: 2 })
  t.equal(byName(run(hist(100, 0, normal), hist(40, 0, normal)), 'error-ratio')?.verdict, 'hold', 'stable below minRequests: no comparison')
})

t.test('p99 checks: a 200 ms slower canary fails the ratio; tail jitter within the tolerance passes', async (t) => {
  const slow = run(hist(200, 0, (i) => normal(i) + 200), hist(2000, 0, normal))
  t.match(byName(slow, 'p99-ratio'), { verdict: 'fail', threshold: 1.5 })
  t.ok((byName(slow, 'p99-ratio')?.value ?? 0) > 10)
  t.equal(byName(slow, 'p99')?.verdict, 'pass', '219 ms is within the 500 ms absolute limit')
  const jitter = run(hist(200, 0, (i) => (i === 0 ? 22 : normal(i))), hist(2000, 0, normal))
  t.equal(byName(jitter, 'p99-ratio')?.verdict, 'pass', 'p99 22 ms vs 19 ms: within 5 ms')
  const absolute = byName(run(hist(200, 0, (i) => (i < 20 ? 900 : normal(i))), hist(2000, 0, normal)), 'p99')
  t.match(absolute, { verdict: 'fail', threshold: 500 })
})

t.test('quantile reads the nearest rank of a histogram', async (t) => {
  const h = hist(100, 0, (i) => (i < 99 ? 1 : 100))
  t.ok(Math.abs(quantile(h, 0.99) - 1) < 0.03)
  t.ok(Math.abs(quantile(h, 1) - 100) < 2)
})

t.test('while stable takes no traffic only the absolute limits are judged; the ratios say why they are not', async (t) => {
  const checks = analyze({ subject: hist(200, 0, (i) => normal(i) + 200), baseline: null, subjectName: 'canary', window: 10 }, PLAN)
  t.same(checks.map((c) => `${c.name}:${c.verdict}`), ['error-rate:pass', 'error-ratio:pass', 'p99:pass', 'p99-ratio:pass'])
  t.match(byName(checks, 'p99-ratio'), { value: null, detail: /^not judged: stable takes no traffic now/ })
  const slow = analyze({ subject: hist(200, 0, () => 900), baseline: null, subjectName: 'green', window: 10 }, PLAN)
  t.equal(byName(slow, 'p99')?.verdict, 'fail', 'an absolute limit still fails')
})

t.test('a metric check passes within its range and fails outside either bound', async (t) => {
  const ratio = { name: 'error-ratio', query: 'q', thresholdRange: { max: 0.01 } }
  t.match(judgeMetric(ratio, { kind: 'value', value: 0.004 }, 0, 3), { name: 'metric:error-ratio', verdict: 'pass', value: 0.004, threshold: 0.01, range: { min: null, max: 0.01 }, detail: '0.004 is within ..0.01' })
  t.match(judgeMetric(ratio, { kind: 'value', value: 0.01 }, 0, 3), { verdict: 'pass' }, 'a bound is inside the range')
  t.match(judgeMetric(ratio, { kind: 'value', value: 0.3 }, 0, 3), { verdict: 'fail', value: 0.3, threshold: 0.01, detail: '0.3 is above max 0.01 (range ..0.01)' })
  const band = { name: 'rps', query: 'q', thresholdRange: { min: 10, max: 100 } }
  t.match(judgeMetric(band, { kind: 'value', value: 5 }, 0, 3), { verdict: 'fail', threshold: 100, range: { min: 10, max: 100 }, detail: '5 is below min 10 (range 10..100)' })
  t.match(judgeMetric(band, { kind: 'value', value: Infinity }, 0, 3), { verdict: 'fail', value: null })
  const floor = { name: 'success', query: 'q', thresholdRange: { min: 0.99 } }
  t.match(judgeMetric(floor, { kind: 'value', value: 0.995 }, 0, 3), { verdict: 'pass', threshold: 0.99, range: { min: 0.99, max: null } })
})

t.test('a metric check without data holds; query errors hold until maxQueryErrors in a row, then fail', async (t) => {
  const m = { name: 'x', query: 'q', thresholdRange: { max: 1 } }
  t.match(judgeMetric(m, { kind: 'empty', detail: 'the query returned no series' }, 2, 3), { verdict: 'hold', value: null, detail: /^no data: the query returned no series/ })
  t.notOk('queryErrors' in judgeMetric(m, { kind: 'empty', detail: 'none' }, 2, 3), 'no data is not a query error: the count starts again')
  const error = { kind: 'error', detail: 'ECONNREFUSED' } as const
  t.match(judgeMetric(m, error, 0, 3), { verdict: 'hold', queryErrors: 1, detail: /^query failed \(1 of 3 query errors in a row; holding/ })
  t.match(judgeMetric(m, error, 1, 3), { verdict: 'hold', queryErrors: 2 })
  t.match(judgeMetric(m, error, 2, 3), { verdict: 'fail', queryErrors: 3, detail: 'query failed (3 of 3 query errors in a row): ECONNREFUSED' })
  t.match(judgeMetric(m, error, 0, 1), { verdict: 'fail', queryErrors: 1 }, 'maxQueryErrors 1 fails on the first')
})
