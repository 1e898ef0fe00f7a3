// Judges a canary (or green) against stable over one check window: error rate and p99 latency,
// absolute and relative to stable, each with a test that keeps small samples from deciding on
// noise; and a custom metric check's sample against its range. Pure: histograms (or a query's
// answer) and a plan in, one verdict per check out.

import { bucketValue, type LatencyHistogram } from '../metrics/rolling-stats.ts'
import type { AnalysisPlan, MetricPlan } from './policy.ts'
import { binomialUpperTail, fisherGreater, mannWhitneyGreater } from './statistics.ts'

export type Verdict = 'pass' | 'fail' | 'hold'

/** One check's outcome, with what was measured and the limit it was held to. */
export interface CheckOutcome {
  /** `requests`, `error-rate`, `error-ratio`, `p99`, `p99-ratio`, `smoke`, `webhook:<name>`, `metric:<name>`, `guard`. */
  name: string
  verdict: Verdict
  value: number | null
  /** A metric check's: its max, or its min when it has no max (both are in `range`). */
  threshold: number | null
  /** The test's p-value when a limit was exceeded (a fail needs it below the significance level). */
  pValue?: number
  /** A metric check's thresholdRange; null for a bound left out. */
  range?: { min: number | null; max: number | null }
  /** A metric check whose query failed: the failures in a row, this one included. */
  queryErrors?: number
  detail: string
}

/** What a metric check's query gave: one sample's value, no sample (or NaN), or an error. */
export type MetricReading =
  | { kind: 'value'; value: number }
  | { kind: 'empty'; detail: string }
  | { kind: 'error'; detail: string }

/**
 * A metric check: passes when the value is within the range, fails outside it. No data holds
 * (no data means halt, not promote), and so does a query error until `maxQueryErrors` in a row
 * (`errorsBefore`: the failures in a row up to the last check), when it fails.
 */
export function judgeMetric (metric: MetricPlan, reading: MetricReading, errorsBefore: number, maxQueryErrors: number): CheckOutcome {
  const min = metric.thresholdRange.min ?? null
  const max = metric.thresholdRange.max ?? null
  const range = { min, max }
  const shown = `${min ?? ''}..${max ?? ''}`
  const base = { name: `metric:${metric.name}`, threshold: max ?? min, range }
  if (reading.kind === 'error') {
    const queryErrors = errorsBefore + 1
    const counted = `${queryErrors} of ${maxQueryErrors} query errors in a row`
    return queryErrors >= maxQueryErrors
      ? { ...base, verdict: 'fail', value: null, queryErrors, detail: `query failed (${counted}): ${reading.detail}` }
      : { ...base, verdict: 'hold', value: null, queryErrors, detail: `query failed (${counted}; holding, no data means halt): ${reading.detail}` }
  }
  if (reading.kind === 'empty') return { ...base, verdict: 'hold', value: null, detail: `no data: ${reading.detail} (no data means halt, not promote)` }
  const value = reading.value
  const shownValue = fmt(value)
  const out = { ...base, value: Number.isFinite(value) ? round(value) : null }
  if (max !== null && value > max) return { ...out, verdict: 'fail', detail: `${shownValue} is above max ${max} (range ${shown})` }
  if (min !== null && value < min) return { ...out, verdict: 'fail', detail: `${shownValue} is below min ${min} (range ${shown})` }
  return { ...out, verdict: 'pass', detail: `${shownValue} is within ${shown}` }
}

/**
 * The versions compared: `subject` is the canary (or green), `baseline` is stable over the same
 * window, or null when stable takes no traffic now (a last step of 100 %, blue/green after the
 * switch): then only the absolute limits are judged.
 */
export interface AnalysisInput {
  subject: LatencyHistogram
  baseline: LatencyHistogram | null
  /** Names for the messages: `canary` or `green`. */
  subjectName: string
  /** Seconds both histograms cover. */
  window: number
}

/** The five checks, or the one `requests` check that holds them all when the subject has too few requests. */
export function analyze (input: AnalysisInput, plan: AnalysisPlan): CheckOutcome[] {
  const { subject, baseline, subjectName: name } = input
  if (subject.requests < plan.minRequests) {
    return [{
      name: 'requests',
      verdict: 'hold',
      value: subject.requests,
      threshold: plan.minRequests,
      detail: `${name} had ${subject.requests} requests in ${input.window}s; a check needs ${plan.minRequests} (no data means halt, not promote)`,
    }]
  }
  const alpha = plan.significance
  const out: CheckOutcome[] = [errorRate(subject, name, plan, alpha), p99(subject, name, plan, alpha)]
  if (baseline === null) {
    // Stable's traffic from before would be a comparison across time: load, time of day and the
    // machine's other work change between the two, and a ratio would judge those.
    const why = 'not judged: stable takes no traffic now, so nothing runs beside it to compare with (the absolute limits apply)'
    out.splice(1, 0, { name: 'error-ratio', verdict: 'pass', value: null, threshold: plan.maxErrorRatio, detail: why })
    out.push({ name: 'p99-ratio', verdict: 'pass', value: null, threshold: plan.maxP99Ratio, detail: why })
    return out
  }
  if (baseline.requests < plan.minRequests) {
    const why = `stable had ${baseline.requests} requests in ${input.window}s; a comparison needs ${plan.minRequests}`
    out.splice(1, 0, { name: 'error-ratio', verdict: 'hold', value: null, threshold: plan.maxErrorRatio, detail: why })
    out.push({ name: 'p99-ratio', verdict: 'hold', value: null, threshold: plan.maxP99Ratio, detail: why })
    return out
  }
  out.splice(1, 0, errorRatio(subject, baseline, name, plan, alpha))
  out.push(p99Ratio(subject, baseline, name, plan, alpha))
  return out
}

/** Fail > hold > pass: the verdict of a set of checks. */
export function overall (checks: readonly CheckOutcome[]): Verdict {
  if (checks.some((c) => c.verdict === 'fail')) return 'fail'
  if (checks.some((c) => c.verdict === 'hold')) return 'hold'
  return 'pass'
}

function errorRate (s: LatencyHistogram, name: string, plan: AnalysisPlan, alpha: number): CheckOutcome {
  const rate = s.errors / s.requests
  const base = { name: 'error-rate', value: round(rate), threshold: plan.maxErrorRate }
  const measured = `${name} error rate ${fmt(rate)} (${s.errors} of ${s.requests})`
  if (rate <= plan.maxErrorRate) return { ...base, verdict: 'pass', detail: `${measured} is within maxErrorRate ${plan.maxErrorRate}` }
  // H0: the true rate is at most the limit. Only a count of errors unlikely under it fails.
  const p = binomialUpperTail(s.errors, s.requests, plan.maxErrorRate)
  return judged(base, p, alpha, `${measured} is above maxErrorRate ${plan.maxErrorRate}`)
}

function errorRatio (s: LatencyHistogram, b: LatencyHistogram, name: string, plan: AnalysisPlan, alpha: number): CheckOutcome {
  const rate = s.errors / s.requests
  const baseRate = b.errors / b.requests
  const ratio = baseRate === 0 ? (rate === 0 ? 1 : Infinity) : rate / baseRate
  const base = { name: 'error-ratio', value: Number.isFinite(ratio) ? round(ratio) : null, threshold: plan.maxErrorRatio }
  const measured = `${name} error rate ${fmt(rate)} vs stable ${fmt(baseRate)} (${b.errors} of ${b.requests})`
  if (rate <= plan.maxErrorRatio * baseRate) return { ...base, verdict: 'pass', detail: `${measured}: within maxErrorRatio ${plan.maxErrorRatio}` }
  // Fisher's exact test: is the canary's rate higher than stable's at all, given both counts?
  const p = fisherGreater(s.errors, s.requests, b.errors, b.requests)
  return judged(base, p, alpha, `${measured}: ${Number.isFinite(ratio) ? `${fmt(ratio)}×` : 'errors where stable has none'}, above maxErrorRatio ${plan.maxErrorRatio}`)
}

function p99 (s: LatencyHistogram, name: string, plan: AnalysisPlan, alpha: number): CheckOutcome {
  const value = quantile(s, 0.99)
  const base = { name: 'p99', value: round(value), threshold: plan.maxP99Ms }
  const measured = `${name} p99 ${fmt(value)} ms`
  if (value <= plan.maxP99Ms) return { ...base, verdict: 'pass', detail: `${measured} is within maxP99Ms ${plan.maxP99Ms}` }
  // p99 ≤ limit ⇔ at most 1 % of requests are slower than the limit: a binomial test on that count.
  const slower = countAbove(s, plan.maxP99Ms)
  const p = binomialUpperTail(slower, s.requests, 0.01)
  return judged(base, p, alpha, `${measured} is above maxP99Ms ${plan.maxP99Ms} (${slower} of ${s.requests} requests slower)`)
}

function p99Ratio (s: LatencyHistogram, b: LatencyHistogram, name: string, plan: AnalysisPlan, alpha: number): CheckOutcome {
  const value = quantile(s, 0.99)
  const baseValue = quantile(b, 0.99)
  const ratio = baseValue > 0 ? value / baseValue : Infinity
  const base = { name: 'p99-ratio', value: Number.isFinite(ratio) ? round(ratio) : null, threshold: plan.maxP99Ratio }
  const measured = `${name} p99 ${fmt(value)} ms vs stable ${fmt(baseValue)} ms`
  // The canary may be this slow: the ratio, or the tolerance for sub-millisecond jitter.
  const limit = Math.max(plan.maxP99Ratio * baseValue, baseValue + plan.p99ToleranceMs)
  if (value <= limit) {
    return { ...base, verdict: 'pass', detail: `${measured}: within maxP99Ratio ${plan.maxP99Ratio} (or p99ToleranceMs ${plan.p99ToleranceMs})` }
  }
  // Two tests, each at α/2 (Bonferroni): the tail the limit is about (are more canary requests
  // slower than the limit than stable requests are? Fisher's exact test on those counts: a
  // quantile test) and the whole distribution (Mann–Whitney: are canary latencies larger?).
  const slower = countAbove(s, limit)
  const stableSlower = countAbove(b, limit)
  const tail = fisherGreater(slower, s.requests, stableSlower, b.requests)
  const shift = mannWhitneyGreater(s.counts, b.counts).p
  const p = Math.min(1, 2 * Math.min(tail, shift))
  const counts = `${slower} of ${s.requests} ${name} and ${stableSlower} of ${b.requests} stable requests slower than ${fmt(limit)} ms`
  return judged(base, p, alpha, `${measured}: ${Number.isFinite(ratio) ? `${fmt(ratio)}×` : 'stable p99 is 0'}, above maxP99Ratio ${plan.maxP99Ratio}; ${counts}`)
}

/** Requests whose latency reads back above `ms`. */
function countAbove (h: LatencyHistogram, ms: number): number {
  let n = 0
  for (let i = 0; i < h.counts.length; i++) if (bucketValue(i) > ms) n += h.counts[i] as number
  return n
}

function judged (base: Pick<CheckOutcome, 'name' | 'value' | 'threshold'>, p: number, alpha: number, what: string): CheckOutcome {
  const pValue = Number(p.toPrecision(3))
  return p < alpha
    ? { ...base, verdict: 'fail', pValue, detail: `${what} (p = ${pValue} < ${alpha})` }
    : { ...base, verdict: 'hold', pValue, detail: `${what}, but not significantly yet (p = ${pValue} ≥ ${alpha}): holding for more data` }
}

/** Nearest-rank quantile of a histogram, in ms (its bucket's read-back value). */
export function quantile (h: LatencyHistogram, q: number): number {
  const rank = Math.max(1, Math.ceil(h.requests * q))
  let seen = 0
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i] as number
    if (seen >= rank) return bucketValue(i)
  }
  return 0
}

function round (x: number): number {
  return Number(x.toPrecision(4))
}

function fmt (x: number): string {
  return String(round(x))
}
