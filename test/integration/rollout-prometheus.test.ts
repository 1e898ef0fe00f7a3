// Metric checks against a real Prometheus: weir serves real traffic to real upstreams, Prometheus
// scrapes its ops listener every second, and the rollout's custom check (the canary's 5xx ratio
// from weir_requests_total) decides: it promotes a healthy canary and reverts an erroring one,
// both with the route templated in and with the query exactly as written (on a second
// weir that has a single route). Prometheus also scrapes a canary upstream's own /metrics, and a
// check on its business counter (checkout_failures_total) passes while it is flat and fails the
// rollout when the upstream raises it.
// An empty answer holds; a Prometheus killed by PID holds, then fails after maxQueryErrors.
// The built-in checks and the fast guard are made lenient so that the metric check decides.

import t, { type Test } from 'tap'
import { adminClient } from '../helpers/admin.ts'
import { scrape } from '../helpers/prom-text.ts'
import { startPrometheus, untilData } from '../helpers/prometheus.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { rolloutClient, type RolloutBody } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { startUpstreams } from '../helpers/upstream.ts'

/** The canary's 5xx ratio over 30 s, written as Flagger users write it (weir's 5xx series exist at 0 from the start). */
const ERROR_RATIO = 'sum(rate(weir_requests_total{route="{{route}}",version="canary",code=~"5.."}[30s])) / ' +
  'sum(rate(weir_requests_total{route="{{route}}",version="canary"}[30s]))'

/**
 * The check exactly as written, without a route selector: right for a weir with a single
 * route (and a Prometheus in which no other weir's canary takes traffic meanwhile).
 */
const ERROR_RATIO_AS_WRITTEN = 'sum(rate(weir_requests_total{version="canary",code=~"5.."}[30s])) / sum(rate(weir_requests_total{version="canary"}[30s]))'

/** Built-in checks that pass (or at worst hold) whatever the canary does, and a guard that never trips. */
const LENIENT = {
  steps: [50, 100],
  interval: '2s',
  analysis: { minRequests: 1, maxErrorRate: 1, maxP99Ms: 10_000, p99ToleranceMs: 10_000, significance: 1e-300, failureThreshold: 1 },
  guard: { maxErrorRate: 1, minRequests: 100_000 },
}

interface MetricCheck { name: string; verdict: string; value: number | null; threshold: number | null; range?: { min: number | null; max: number | null }; queryErrors?: number; detail: string }

function metricCheck (view: RolloutBody, name: string): MetricCheck | undefined {
  return (view.rollout?.lastCheck?.checks as MetricCheck[] | undefined)?.find((c) => c.name === `metric:${name}`)
}

/** Polls GET .../rollout until `done` holds or `limitMs` passed; the last view. */
async function until (read: () => Promise<RolloutBody>, done: (view: RolloutBody) => boolean, limitMs: number): Promise<RolloutBody> {
  const deadline = Date.now() + limitMs
  let view = await read()
  while (!done(view) && Date.now() < deadline) {
    await sleep(50)
    view = await read()
  }
  return view
}

t.test('metric checks on a real Prometheus', async (t) => {
  const [stable, good, bad, canary, checkout] = await startUpstreams(t, 'stable', 'good', 'bad', 'canary', 'checkout')
  // The checkout canary's own metrics, scraped by Prometheus straight from it: a business counter
  // that it raises for every checkout it fails while still answering 200.
  let failingCheckouts = false
  let checkoutFailures = 0
  checkout!.handle((req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', 'text/plain; version=0.0.4')
      res.end(`# HELP checkout_failures_total Checkouts that failed.\n# TYPE checkout_failures_total counter\ncheckout_failures_total ${checkoutFailures}\n`)
      return
    }
    if (failingCheckouts) checkoutFailures++
    res.end('checkout')
  })
  let n = 0
  bad!.handle((_req, res) => {
    n++
    res.statusCode = n % 10 < 3 ? 500 : 200
    res.end('bad')
  })
  const route = (name: string, canaryUrl: string) => ({ name, match: { pathPrefix: `/${name}` }, upstreams: { stable: stable!.url, canary: canaryUrl }, rollout: LENIENT })
  const ops = { ops: { host: '127.0.0.1', port: 0 } }
  const proxy = await startProxy(configDoc([
    route('good', good!.url), route('bad', bad!.url), route('empty', canary!.url), route('down', canary!.url), route('checkout', checkout!.url),
  ], ops))
  t.teardown(() => proxy.close())
  // A second weir with one route, for the check written without a route selector.
  const solo = await startProxy(configDoc([route('solo', good!.url)], ops))
  t.teardown(() => solo.close())
  const weirs = [proxy, solo]
  const prometheus = await startPrometheus(t, {
    job: 'weir',
    targets: weirs.map((w) => new URL(w.opsUrl as string).host),
    moreJobs: [{ job: 'checkout', targets: [new URL(checkout!.url).host] }],
  })
  t.equal((await untilData(prometheus, 'count(up{job="weir"} == 1) == 2', 20_000)).data?.result.length, 1, 'Prometheus scrapes both weirs')
  t.ok((await untilData(prometheus, 'checkout_failures_total{job="checkout"}', 20_000)).data?.result.length, 'and the checkout upstream\'s own metrics')
  const admin = adminClient(proxy.adminUrl)
  /** Starts a rollout of route `name` with one metric check against the Prometheus above (the body merges over LENIENT). */
  const start = async (t: Test, name: string, metric: Record<string, unknown>, prom: Record<string, unknown> = {}, on = admin): Promise<void> => {
    const started = await on.call('POST', `/api/v1/routes/${name}/rollout`, { analysis: { prometheus: { url: prometheus.url, timeout: '1s', ...prom }, metrics: [metric] } })
    if (!t.equal(started.status, 201, 'the rollout starts')) t.comment(started.body)
  }
  const run = async (name: string, during: () => Promise<void>, through = proxy): Promise<void> => {
    const traffic = startTraffic(`${through.url}/${name}`, { rate: 100, maxMs: 30_000 })
    try {
      await during()
    } finally {
      await traffic.stop()
    }
  }

  // These two run first: until the first weir's canaries take traffic, its canary series are all
  // 0, so the sum over every weir Prometheus scrapes is the solo weir's.
  await t.test('the issue\'s 5xx-ratio check as written, on a weir with one route: a healthy canary is promoted, an erroring one reverted', async (t) => {
    const soloAdmin = adminClient(solo.adminUrl)
    const { rollout, leaves } = rolloutClient(soloAdmin, 'solo')
    const check = { name: 'error-ratio', query: ERROR_RATIO_AS_WRITTEN, thresholdRange: { max: 0.01 } }
    await run('solo', async () => {
      await start(t, 'solo', check, {}, soloAdmin)
      let done = await leaves('progressing', 20_000)
      done = await until(rollout, (v) => v.phase !== 'promoting', 2000)
      t.equal(done.phase, 'succeeded', done.rollout?.reason ?? '')
      t.match(metricCheck(done, 'error-ratio'), { verdict: 'pass', value: 0, threshold: 0.01 }, 'the healthy canary\'s ratio is 0')
    }, solo)
    // The promotion kept the canary's upstream; the next canary answers 500 to 3 requests in 10.
    t.equal((await soloAdmin.call('PUT', '/api/v1/routes/solo/upstreams', { canary: bad!.url })).status, 200, 'the canary is the erroring upstream')
    await run('solo', async () => {
      await start(t, 'solo', check, {}, soloAdmin)
      const done = await leaves('progressing', 20_000)
      t.equal(done.phase, 'failed')
      t.match(done.rollout?.reason, /^check failed 1 of 1 allowed: metric:error-ratio: 0\.\d+ is above max 0\.01/)
      t.same(done.weights, { stable: 100, canary: 0, green: 0 }, 'reverted')
    }, solo)
    const others = await prometheus.query('sum(rate(weir_requests_total{version="canary",route!="solo"}[30s]))')
    t.equal(others.data?.result[0]?.value[1], '0', 'meanwhile no other canary took traffic, so the query without a route was the solo weir\'s')
  })

  await t.test('a healthy canary passes the 5xx-ratio check and is promoted', async (t) => {
    await run('good', async () => {
      await start(t, 'good', { name: 'error-ratio', query: ERROR_RATIO, thresholdRange: { max: 0.01 } })
      const { rollout, leaves } = rolloutClient(admin, 'good')
      let done = await leaves('progressing', 20_000)
      done = await until(rollout, (v) => v.phase !== 'promoting', 2000)
      t.equal(done.phase, 'succeeded', done.rollout?.reason ?? '')
      const check = metricCheck(done, 'error-ratio')
      t.match(check, { verdict: 'pass', value: 0, threshold: 0.01, range: { min: null, max: 0.01 } }, 'the last check judged the metric')
      t.match(check?.detail, /is within \.\.0\.01/)
    })
  })

  await t.test('an erroring canary fails the 5xx-ratio check and is reverted, with the metric check named in the reason', async (t) => {
    await run('bad', async () => {
      await start(t, 'bad', { name: 'error-ratio', query: ERROR_RATIO, thresholdRange: { max: 0.01 } })
      const { leaves, event } = rolloutClient(admin, 'bad')
      const done = await leaves('progressing', 20_000)
      t.equal(done.phase, 'failed')
      t.match(done.rollout?.reason, /^check failed 1 of 1 allowed: metric:error-ratio: 0\.\d+ is above max 0\.01/)
      t.same(done.weights, { stable: 100, canary: 0, green: 0 }, 'reverted')
      const check = metricCheck(done, 'error-ratio')
      t.equal(check?.verdict, 'fail')
      t.ok((check?.value ?? 0) > 0.1 && (check?.value ?? 1) < 0.5, `the ratio Prometheus computed: ${check?.value}`)
      t.match((await event('rollout.failed'))?.reason, { check: 'metric:error-ratio', threshold: 0.01 })
      const built = done.rollout?.lastCheck?.checks.filter((c) => !c.name.startsWith('metric:')) ?? []
      t.ok(built.every((c) => c.verdict !== 'fail'), 'no built-in check failed')
      const m = await scrape(proxy.adminUrl)
      const labels = { route: 'bad', check: 'metric:error-ratio' }
      t.equal(m.value('weir_rollout_check_value', labels), check?.value, 'the sample is exported')
      t.equal(m.value('weir_rollout_check_threshold', labels), 0.01, 'its max is the threshold')
      t.equal(m.value('weir_rollout_check_threshold_max', labels), 0.01)
      t.equal(m.value('weir_rollout_check_threshold_min', labels), undefined, 'no min, no series')
    })
  })

  // A business metric the HTTP status does not show: the checkout canary answers 200 either way.
  const checkoutFailuresCheck = { name: 'checkout-failures', query: 'sum(increase(checkout_failures_total{job="checkout"}[10s]))', thresholdRange: { max: 0 } }

  await t.test('a check on the upstream\'s own counter passes while it stays flat', async (t) => {
    await run('checkout', async () => {
      await start(t, 'checkout', checkoutFailuresCheck)
      const { rollout } = rolloutClient(admin, 'checkout')
      const advanced = await until(rollout, (v) => v.phase !== 'progressing' || (v.rollout?.step ?? 0) >= 1, 10_000)
      t.equal(advanced.rollout?.step, 1, 'the first check passed: the rollout took its next step')
      t.match(metricCheck(advanced, 'checkout-failures'), { verdict: 'pass', value: 0, threshold: 0 })
      t.equal((await admin.call('POST', '/api/v1/routes/checkout/rollout/abort', {})).status, 200)
    })
    t.equal(checkoutFailures, 0)
  })

  await t.test('the same check fails the canary once the upstream raises its counter, though every answer is 200', async (t) => {
    failingCheckouts = true
    await run('checkout', async () => {
      await start(t, 'checkout', checkoutFailuresCheck)
      const done = await rolloutClient(admin, 'checkout').leaves('progressing', 10_000)
      t.equal(done.phase, 'failed')
      t.match(done.rollout?.reason, /^check failed 1 of 1 allowed: metric:checkout-failures: \d+(\.\d+)? is above max 0/)
      t.ok((metricCheck(done, 'checkout-failures')?.value ?? 0) > 0, 'Prometheus saw the counter rise')
      t.same(done.weights, { stable: 100, canary: 0, green: 0 }, 'reverted')
      const built = done.rollout?.lastCheck?.checks.filter((c) => !c.name.startsWith('metric:')) ?? []
      t.ok(built.every((c) => c.verdict !== 'fail'), 'no built-in check failed: only the business metric saw it')
    })
    t.ok(checkoutFailures > 0)
  })

  await t.test('a query without a sample holds the rollout (no data means halt)', async (t) => {
    await run('empty', async () => {
      await start(t, 'empty', { name: 'teapots', query: 'sum(rate(weir_requests_total{route="{{route}}",version="{{target}}",code="418"}[{{interval}}]))', thresholdRange: { min: 0 } })
      const { rollout } = rolloutClient(admin, 'empty')
      const held = await until(rollout, (v) => metricCheck(v, 'teapots') !== undefined, 10_000)
      t.equal(held.phase, 'progressing')
      t.equal(held.rollout?.step, 0, 'still at the first step')
      t.match(metricCheck(held, 'teapots'), { verdict: 'hold', value: null, threshold: 0, range: { min: 0, max: null } })
      t.match(held.rollout?.reason, /^holding: metric:teapots: no data: the query returned no series/)
      t.equal((await admin.call('POST', '/api/v1/routes/empty/rollout/abort', {})).status, 200)
    })
  })

  await t.test('a query Prometheus refuses, or one that returns several series, holds with Prometheus\' reason', async (t) => {
    await run('empty', async () => {
      await start(t, 'empty', { name: 'typo', query: 'sum(rate(weir_requests_total{route="{{route}}"}[{{interval}}])', thresholdRange: { max: 1 } })
      const { rollout } = rolloutClient(admin, 'empty')
      let held = await until(rollout, (v) => metricCheck(v, 'typo') !== undefined, 10_000)
      t.match(metricCheck(held, 'typo'), { verdict: 'hold', queryErrors: 1, detail: /Prometheus answered 400: bad_data: / })
      t.equal((await admin.call('POST', '/api/v1/routes/empty/rollout/abort', {})).status, 200)
      await start(t, 'empty', { name: 'per-code', query: 'sum by (version) (weir_requests_total{route="{{route}}"})', thresholdRange: { min: 0 } })
      held = await until(rollout, (v) => metricCheck(v, 'per-code') !== undefined, 10_000)
      t.match(metricCheck(held, 'per-code'), { verdict: 'hold', detail: /the query returned [2-9] series; a check needs one/ })
      t.equal((await admin.call('POST', '/api/v1/routes/empty/rollout/abort', {})).status, 200)
    })
  })

  await t.test('with Prometheus stopped the check holds on the query error, then fails after maxQueryErrors', async (t) => {
    await prometheus.stop()
    await run('down', async () => {
      await start(t, 'down', { name: 'error-ratio', query: ERROR_RATIO, thresholdRange: { max: 0.01 } }, { maxQueryErrors: 2 })
      const { rollout, leaves } = rolloutClient(admin, 'down')
      const held = await until(rollout, (v) => metricCheck(v, 'error-ratio') !== undefined, 10_000)
      t.equal(held.phase, 'progressing', 'holds')
      t.match(metricCheck(held, 'error-ratio'), { verdict: 'hold', value: null, queryErrors: 1 })
      t.match(held.rollout?.reason, /^holding: metric:error-ratio: query failed \(1 of 2 query errors in a row; holding, no data means halt\): Prometheus at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/)
      const done = await leaves('progressing', 10_000)
      t.equal(done.phase, 'failed')
      t.match(metricCheck(done, 'error-ratio'), { verdict: 'fail', queryErrors: 2 })
      t.match(done.rollout?.reason, /^check failed 1 of 1 allowed: metric:error-ratio: query failed \(2 of 2 query errors in a row\)/)
    })
  })
})
