// A metric check's query: GET <url>/api/v1/query?query=… against the policy's Prometheus, read
// as one sample (a scalar, or an instant vector of one series). Bounded by its timeout and by
// MAX_ANSWER_BYTES; never throws: an error or an answer without a sample is a reading too.

import { request } from 'undici'
import type { MetricReading } from '../rollout/analysis.ts'
import type { PrometheusPlan } from '../rollout/policy.ts'

/** An instant query for one sample answers in a few hundred bytes; more is refused unread. */
const MAX_ANSWER_BYTES = 1 << 20
const EXCERPT = 200

interface QueryAnswer {
  status?: string
  error?: string
  errorType?: string
  data?: { resultType?: string; result?: unknown }
}

export async function queryPrometheus (plan: PrometheusPlan, query: string, env: NodeJS.ProcessEnv = process.env): Promise<MetricReading> {
  const url = new URL('api/v1/query', plan.url.endsWith('/') ? plan.url : `${plan.url}/`)
  url.searchParams.set('query', query)
  const headers: Record<string, string> = { ...plan.headers, accept: 'application/json', 'user-agent': 'weir-controller' }
  if (plan.bearerTokenEnv !== null) {
    const token = env[plan.bearerTokenEnv]
    if (token === undefined || token === '') return { kind: 'error', detail: `environment variable ${plan.bearerTokenEnv} (bearerTokenEnv) is not set` }
    headers.authorization = `Bearer ${token}`
  }
  const signal = AbortSignal.timeout(plan.timeoutMs)
  let status: number
  let text = ''
  try {
    const res = await request(url, { method: 'GET', headers, signal, headersTimeout: plan.timeoutMs, bodyTimeout: plan.timeoutMs })
    status = res.statusCode
    let bytes = 0
    for await (const chunk of res.body) {
      bytes += (chunk as Buffer).length
      if (bytes > MAX_ANSWER_BYTES) {
        res.body.destroy()
        return { kind: 'error', detail: `Prometheus answered more than ${MAX_ANSWER_BYTES} bytes (a check needs one sample)` }
      }
      text += (chunk as Buffer).toString('utf8')
    }
  } catch (err) {
    return { kind: 'error', detail: `Prometheus at ${plan.url}: ${signal.aborted ? `no answer within ${plan.timeoutMs} ms` : describe(err)}` }
  }
  let answer: QueryAnswer
  try {
    answer = JSON.parse(text) as QueryAnswer
  } catch {
    return { kind: 'error', detail: `Prometheus answered ${status} without JSON: ${text.trim().slice(0, EXCERPT)}` }
  }
  if (answer.status !== 'success') {
    return { kind: 'error', detail: `Prometheus answered ${status}: ${answer.errorType ?? 'error'}: ${String(answer.error ?? text.trim().slice(0, EXCERPT))}` }
  }
  return readSample(answer.data)
}

function readSample (data: QueryAnswer['data']): MetricReading {
  const type = data?.resultType
  const result = data?.result
  let sample: unknown
  if (type === 'scalar') sample = result
  else if (type === 'vector' && Array.isArray(result)) {
    if (result.length === 0) return { kind: 'empty', detail: 'the query returned no series' }
    if (result.length > 1) return { kind: 'error', detail: `the query returned ${result.length} series; a check needs one (aggregate it, e.g. with sum())` }
    sample = (result[0] as { value?: unknown }).value
  } else {
    return { kind: 'error', detail: `the query returned a ${String(type)}; a check needs a scalar or an instant vector of one series` }
  }
  const raw = Array.isArray(sample) ? sample[1] : undefined
  if (typeof raw !== 'string') return { kind: 'error', detail: 'the answer holds no sample value' }
  const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw)
  // 0/0 (a ratio over no traffic) is NaN: no data, not a value.
  if (Number.isNaN(value)) return { kind: 'empty', detail: 'the query returned NaN (e.g. a ratio over no requests)' }
  return { kind: 'value', value }
}

function describe (err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; message?: string }
  return e.cause?.code ?? e.code ?? e.message ?? String(err)
}
