// deploy/ against a real Prometheus: weir serves real traffic (a canary answering 30 % with 500
// that a rollout reverts, a shadow whose answers differ, a rollout whose slow canary fails its
// checks but has not reached its threshold, a host that refuses connections), Prometheus scrapes
// its ops listener every second with deploy/prometheus/weir-alerts.yaml loaded, plus a target of
// the same job that is down, and every query of the Grafana dashboard and every alert expression
// runs through Prometheus' HTTP API; Prometheus' own rule evaluation shows each alert pending or
// firing. promtool checks the exposition and the rule file.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { adminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { promtool, startPrometheus, untilData } from '../helpers/prometheus.ts'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { rolloutClient } from '../helpers/rollout-client.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { closedPort, startUpstreams } from '../helpers/upstream.ts'
import { ROOT } from '../helpers/weir-process.ts'

const ALERTS = join(ROOT, 'deploy/prometheus/weir-alerts.yaml')
const DASHBOARD = join(ROOT, 'deploy/grafana/weir-dashboard.json')

interface Panel { title: string; targets?: { expr: string }[]; panels?: Panel[] }
interface Rule { alert: string; expr: string }

/** Every query of the dashboard, with its panel's title, rows' panels included. */
function dashboardQueries (): { title: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }
  const walk = (panels: Panel[]): { title: string; expr: string }[] =>
    panels.flatMap((p) => [...(p.targets ?? []).map((q) => ({ title: p.title, expr: q.expr })), ...walk(p.panels ?? [])])
  return walk(dashboard.panels)
}

/** Grafana's variables as Grafana would fill them in for route `app` and a 1 s scrape interval. */
function substitute (expr: string): string {
  const out = expr.replaceAll('$__rate_interval', '10s').replaceAll('$__interval', '2s').replaceAll('$route', 'app')
  if (out.includes('$')) throw new Error(`an unknown variable is left in ${out}`)
  return out
}

/** Where an alert is while its condition holds: pending (or past it) during its `for:`, firing at once without one. */
type AlertState = 'pending' | 'firing'

t.test('every dashboard query and alert expression answers with data from a real weir scraped by a real Prometheus, and every alert is pending or firing', async (t) => {
  const [stable, canary, shadow, slow] = await startUpstreams(t, 'stable', 'canary', 'shadow', 'slow')
  let n = 0
  canary!.handle((_req, res) => {
    n++
    res.statusCode = n % 10 < 3 ? 500 : 200
    res.end('canary')
  })
  // The canary of route checks answers well, but slower than its rollout's maxP99Ms.
  slow!.handle((_req, res) => { setTimeout(() => res.end('slow'), 30) })
  const refusing = `http://127.0.0.1:${await closedPort()}`
  const proxy = await startProxy(configDoc([
    {
      // Every check fails (p99 over 5 ms) and none is an error, so neither the threshold nor the
      // fast guard ends it during the test: weir_rollout_failed_checks > 0 while it progresses.
      name: 'checks',
      match: { pathPrefix: '/checks/' },
      upstreams: { stable: stable!.url, canary: slow!.url },
      rollout: { steps: [50, 100], interval: '1s', analysis: { minRequests: 5, maxP99Ms: 5, failureThreshold: 1000 } },
    },
    {
      // A second stable host that refuses: five failed attempts in a row eject it (docs/proxying.md#hosts).
      name: 'hosts',
      match: { pathPrefix: '/hosts/' },
      upstreams: { stable: [stable!.url, refusing] },
    },
    {
      name: 'app',
      upstreams: { stable: stable!.url, canary: canary!.url, shadow: shadow!.url },
      shadow: { percent: 100, compare: true },
      rollout: { steps: [50, 100], interval: '1s', analysis: { minRequests: 20, failureThreshold: 2 } },
    },
  ], { ops: { host: '127.0.0.1', port: 0 } }))
  t.teardown(() => proxy.close())
  const ops = new URL(proxy.opsUrl as string)
  // A second instance of the job where nothing listens: a weir that is down, as Prometheus sees one.
  const down = `127.0.0.1:${await closedPort()}`
  const prometheus = await startPrometheus(t, { job: 'weir', targets: [ops.host, down], ruleFiles: [ALERTS] })

  const traffic = startTraffic(proxy.url, { rate: 100, maxMs: 60_000 })
  t.teardown(() => traffic.stop())
  const checksTraffic = startTraffic(proxy.url, { rate: 40, maxMs: 60_000, path: '/checks/' })
  t.teardown(() => checksTraffic.stop())
  const hostsTraffic = startTraffic(proxy.url, { rate: 20, maxMs: 60_000, path: '/hosts/' })
  t.teardown(() => hostsTraffic.stop())
  // Prometheus' first scrape comes a few seconds after its start (target discovery is throttled):
  // the rollout starts once it scrapes, so the canary's counts rise under its eyes.
  t.ok((await untilData(prometheus, 'up{job="weir"} == 1', 20_000)).data?.result.length, 'Prometheus scrapes weir\'s ops address')
  await sleep(2000)
  const admin = adminClient(proxy.adminUrl)
  const checks = await admin.call('POST', '/api/v1/routes/checks/rollout', {})
  t.equal(checks.status, 201, checks.body)
  const started = await admin.call('POST', '/api/v1/routes/app/rollout', {})
  t.equal(started.status, 201, started.body)
  const { leaves } = rolloutClient(admin)
  t.equal((await leaves('progressing', 20_000)).phase, 'failed', 'the analysis reverts the failing canary')

  // Scraped, with the failed rollout and a few seconds of rates in the TSDB.
  t.ok((await untilData(prometheus, 'weir_rollout_state{route="app",phase="failed"} == 1', 20_000)).data?.result.length, 'Prometheus has scraped the failed rollout')
  t.ok((await untilData(prometheus, 'count_over_time(weir_build_info[1m]) >= 8', 20_000)).data?.result.length, 'eight scrapes or more')

  for (const { title, expr } of dashboardQueries()) {
    const answer = await prometheus.query(substitute(expr))
    t.equal(answer.status, 'success', `${title}: ${expr} ${answer.error ?? ''}`)
    t.ok((answer.data?.result.length ?? 0) > 0, `${title}: ${expr} has data`)
  }

  const rules = (parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules)
  t.same(rules.map((r) => r.alert).sort(), ['WeirCanaryErrorRateHigh', 'WeirDown', 'WeirRolloutChecksFailing', 'WeirRolloutFailed', 'WeirShadowMismatchRateHigh', 'WeirUpstreamHostOut'])
  // Each alert's condition is real here, and its expression names what it is about.
  const about: Record<string, { labels: Record<string, string>; state: AlertState }> = {
    WeirDown: { labels: { instance: down }, state: 'pending' },
    WeirCanaryErrorRateHigh: { labels: { route: 'app' }, state: 'pending' },
    WeirRolloutFailed: { labels: { route: 'app' }, state: 'firing' },
    WeirRolloutChecksFailing: { labels: { route: 'checks' }, state: 'firing' },
    WeirShadowMismatchRateHigh: { labels: { route: 'app' }, state: 'pending' },
    WeirUpstreamHostOut: { labels: { route: 'hosts', version: 'stable', host: refusing }, state: 'pending' },
  }
  const matches = (metric: Record<string, string>, labels: Record<string, string>): boolean =>
    Object.entries(labels).every(([k, v]) => metric[k] === v)
  for (const rule of rules) {
    const want = about[rule.alert] as { labels: Record<string, string> }
    const answer = await untilData(prometheus, rule.expr, 10_000)
    t.equal(answer.status, 'success', `${rule.alert} parses and runs ${answer.error ?? ''}`)
    const result = answer.data?.result ?? []
    t.ok(result.some((r) => matches(r.metric, want.labels)), `${rule.alert} has data for ${JSON.stringify(want.labels)}: ${rule.expr} → ${JSON.stringify(result.map((r) => r.metric))}`)
  }
  t.same((await prometheus.query('up{job="weir"} == 1')).data?.result.map((r) => r.metric.instance), [ops.host], 'and only the down target: weir itself is up')
  const view = (await admin.get('/api/v1/routes/checks/rollout')).json<{ phase: string; rollout: { failures: number } }>()
  t.ok(view.phase === 'progressing' && view.rollout.failures > 0, `the checks route's rollout still progresses with failed checks (${view.phase}, ${view.rollout.failures})`)

  // Prometheus itself evaluates the rule file without errors, and holds every alert: pending
  // while its `for:` runs, firing for the rules without one.
  interface Alert { labels: Record<string, string>; state: string }
  const deadline = Date.now() + 15_000
  let alerts: Alert[] = []
  let health: string[] = []
  const held = (name: string): Alert | undefined => {
    const want = about[name] as { labels: Record<string, string>; state: AlertState }
    // A slow run may outlast a `for:` (WeirDown's is 1 m): pending or past it, then.
    const states = want.state === 'firing' ? ['firing'] : ['pending', 'firing']
    return alerts.find((a) => a.labels.alertname === name && states.includes(a.state) && matches(a.labels, want.labels))
  }
  while (Date.now() < deadline) {
    const loaded = await prometheus.get<{ data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } }>('/api/v1/rules')
    health = loaded.data.groups.flatMap((g) => g.rules.map((r) => `${r.name} ${r.health}${r.lastError === undefined || r.lastError === '' ? '' : ' ' + r.lastError}`))
    alerts = (await prometheus.get<{ data: { alerts: Alert[] } }>('/api/v1/alerts')).data.alerts
    if (health.every((h) => h.endsWith(' ok')) && rules.every((r) => held(r.alert) !== undefined)) break
    await sleep(250)
  }
  t.same(health.filter((h) => !h.endsWith(' ok')), [], 'every rule evaluates')
  t.equal(health.length, rules.length)
  for (const rule of rules) {
    const want = about[rule.alert] as { state: AlertState }
    t.ok(held(rule.alert), `Prometheus holds ${rule.alert} ${want.state} (${alerts.map((a) => `${a.labels.alertname} ${a.state}`).join(', ')})`)
  }

  await Promise.all([traffic.stop(), checksTraffic.stop(), hostsTraffic.stop()])
  const exposition = (await send(proxy.opsUrl + '/metrics')).body
  t.match(exposition, /^weir_rollout_check_value\{route="app",check="error-rate"\} /m)
  const metrics = promtool(['check', 'metrics'], exposition)
  t.same(metrics, { status: 0, output: '' }, 'promtool check metrics is clean')
})

t.test('promtool check rules passes deploy/prometheus/weir-alerts.yaml', async (t) => {
  const rules = promtool(['check', 'rules', ALERTS])
  t.equal(rules.status, 0, rules.output)
  t.match(rules.output, /SUCCESS: 6 rules found/)
})
