// weir_request_duration_seconds is read from plain bucket cells at scrape time; it must expose
// exactly what a prom-client Histogram fed the same observations would. Also checks the strict
// exposition parser the integration tests rely on.

import { Histogram, Registry } from 'prom-client'
import t from 'tap'
import { countResponse, DURATION_BUCKETS_MS } from '../../src/metrics/cells.ts'
import { createRecorder } from '../../src/metrics/recorder.ts'
import { createMetrics } from '../../src/metrics/registry.ts'
import { StatsRegistry } from '../../src/metrics/rolling-stats.ts'
import { parsePromText } from '../helpers/prom-text.ts'

t.test('the duration histogram exposes what a prom-client Histogram would for the same latencies', async (t) => {
  const metrics = createMetrics({ processDefaults: false })
  const cells = createRecorder(metrics, null).route('r', ['stable'], false).versions.stable
  const reference = new Histogram({
    name: 'weir_request_duration_seconds',
    help: 'reference',
    labelNames: ['route', 'version'] as const,
    buckets: DURATION_BUCKETS_MS.map((ms) => ms / 1000),
    registers: [new Registry()],
  })
  // Every bound exactly (le is inclusive), just above each, 0, and beyond the last bound.
  const latencies = [0, 0.0001, ...DURATION_BUCKETS_MS, ...DURATION_BUCKETS_MS.map((ms) => ms * 1.0001), 12_345, 60_000]
  let seed = 7
  for (let i = 0; i < 1000; i++) {
    seed = (seed * 48271) % 2147483647
    latencies.push(Math.exp((seed / 2147483647) * 12 - 4)) // log-uniform, 0.02 ms to 3 s
  }
  for (const ms of latencies) {
    countResponse(cells, 200, ms)
    reference.observe({ route: 'r', version: 'stable' }, ms / 1000)
  }
  // Parsed strictly: buckets cumulative and monotonic, +Inf equal to _count.
  const ours = parsePromText(await metrics.registry.metrics())
  const refValues = (await reference.get()).values
  for (const v of refValues) {
    const name = (v as { metricName?: string }).metricName as string
    const labels = Object.fromEntries(Object.entries(v.labels).map(([k, value]) => [k, String(value)]))
    const got = ours.value(name, labels)
    if (name.endsWith('_sum')) t.ok(Math.abs((got as number) - v.value) < 1e-9, `${name} ${got} ≈ ${v.value}`)
    else t.equal(got, v.value, `${name} ${JSON.stringify(labels)}`)
  }
  t.equal(ours.value('weir_request_duration_seconds_count', { route: 'r', version: 'stable' }), latencies.length)
  t.equal(ours.value('weir_request_duration_seconds_count', { route: 'r', version: 'canary' }), 0, 'versions without traffic are at 0')
  t.equal(ours.value('weir_requests_total', { route: 'r', version: 'stable', code: '200' }), latencies.length)

  metrics.registry.resetMetrics()
  const reset = parsePromText(await metrics.registry.metrics())
  t.equal(reset.value('weir_request_duration_seconds_count', { route: 'r', version: 'stable' }), 0, 'resetMetrics empties it')
})

t.test('binding a route again returns the same cells and never drops a version\'s stats', async (t) => {
  const metrics = createMetrics({ processDefaults: false })
  const stats = new StatsRegistry()
  const first = createRecorder(metrics, stats).route('r', ['stable', 'canary'], false)
  const again = createRecorder(metrics, stats).route('r', ['stable'], false)
  t.equal(again, first)
  t.equal(again.versions.canary.window, stats.get('r', 'canary'))
  t.equal(again.versions.green.window, null, 'a version that never had an upstream has no stats')
  t.same(Object.keys(stats.forRoute('r', 60).versions), ['stable', 'canary'])
})

t.test('the exposition parser rejects what Prometheus would', async (t) => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 3\n\n# TYPE h histogram\n' +
    'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3.5\nh_count 2\n'
  t.equal(parsePromText(ok).value('h_count'), 2)
  t.equal(parsePromText('# TYPE g gauge\ng{v="a\\"b\\\\c\\nd"} -Inf\n').select('g')[0]?.labels.v, 'a"b\\c\nd')
  const bad: Record<string, string> = {
    'no trailing newline': '# TYPE a gauge\na 1',
    'a bad value': '# TYPE a gauge\na one\n',
    'a bad label': '# TYPE a gauge\na{1x="1"} 1\n',
    'an unquoted label value': '# TYPE a gauge\na{x=1} 1\n',
    'a bad escape': '# TYPE a gauge\na{x="\\t"} 1\n',
    'a duplicate series': '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
    'a family split in two groups': '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n',
    'two TYPE lines': '# TYPE a gauge\n# TYPE a gauge\na 1\n',
    'TYPE after samples': 'a 1\n# TYPE a gauge\n',
    'a negative counter': '# TYPE a counter\na -1\n',
    'buckets that go down': '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    'no +Inf bucket': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    '_count unlike +Inf': '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n',
    'no _sum': '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
  }
  for (const [what, text] of Object.entries(bad)) t.throws(() => parsePromText(text), `rejects ${what}`)
})
