// A metric check's query as it goes on the wire, against a real HTTP server standing in for a
// Prometheus-compatible API: the path, the bearer token from the environment, the extra
// headers, and how each kind of answer reads (one sample, NaN, ±Inf, no JSON, too slow).

import t from 'tap'
import { queryPrometheus } from '../../src/controller/prometheus-query.ts'
import type { PrometheusPlan } from '../../src/rollout/policy.ts'
import { startUpstreams } from '../helpers/upstream.ts'

const plan = (url: string, extra: Partial<PrometheusPlan> = {}): PrometheusPlan =>
  ({ url, timeoutMs: 1000, maxQueryErrors: 3, bearerTokenEnv: null, headers: {}, ...extra })

const answer = (resultType: string, result: unknown) => JSON.stringify({ status: 'success', data: { resultType, result } })

t.test('the query goes to <url>/api/v1/query with the token of bearerTokenEnv and the policy\'s headers', async (t) => {
  const [prom] = await startUpstreams(t, 'prometheus')
  prom!.handle((_req, res) => res.end(answer('vector', [{ metric: {}, value: [1, '0.25'] }])))
  const reading = await queryPrometheus(plan(`${prom!.url}/prefix`, { bearerTokenEnv: 'PROM_TOKEN', headers: { 'X-Scope-OrgID': 'team-a' } }), 'up{job="weir"}', { PROM_TOKEN: 's3cret' })
  t.same(reading, { kind: 'value', value: 0.25 })
  const got = prom!.received[0]
  t.equal(got?.method, 'GET')
  t.equal(got?.url, `/prefix/api/v1/query?query=${encodeURIComponent('up{job="weir"}').replaceAll('%20', '+')}`)
  t.equal(got?.headers.authorization, 'Bearer s3cret')
  t.equal(got?.headers['x-scope-orgid'], 'team-a')
  t.match(await queryPrometheus(plan(prom!.url, { bearerTokenEnv: 'PROM_TOKEN' }), 'up', {}), { kind: 'error', detail: 'environment variable PROM_TOKEN (bearerTokenEnv) is not set' })
  t.equal(prom!.received.length, 1, 'no query without its token')
})

t.test('each kind of answer reads as a value, no data or an error', async (t) => {
  const [prom] = await startUpstreams(t, 'prometheus')
  let next = ''
  let status = 200
  prom!.handle((_req, res) => {
    res.statusCode = status
    res.end(next)
  })
  const read = async (body: string, code = 200) => {
    next = body
    status = code
    return await queryPrometheus(plan(prom!.url), 'q')
  }
  t.same(await read(answer('scalar', [1, '3'])), { kind: 'value', value: 3 })
  t.same(await read(answer('vector', [{ metric: {}, value: [1, '+Inf'] }])), { kind: 'value', value: Infinity })
  t.match(await read(answer('vector', [{ metric: {}, value: [1, 'NaN'] }])), { kind: 'empty' })
  t.match(await read(answer('vector', [])), { kind: 'empty', detail: 'the query returned no series' })
  t.match(await read(answer('matrix', [])), { kind: 'error', detail: /returned a matrix/ })
  t.match(await read(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }), 400), { kind: 'error', detail: 'Prometheus answered 400: bad_data: parse error' })
  t.match(await read('<html>bad gateway</html>', 502), { kind: 'error', detail: 'Prometheus answered 502 without JSON: <html>bad gateway</html>' })
  prom!.handle(() => {})
  t.match(await queryPrometheus(plan(prom!.url, { timeoutMs: 200 }), 'q'), { kind: 'error', detail: /no answer within 200 ms/ })
})
