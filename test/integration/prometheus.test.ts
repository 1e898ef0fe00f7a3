// deploy/ against a real Prometheus: weir serves real traffic (a canary answering 30 % with 500
// that a rollout reverts, a shadow whose answers differ), Prometheus scrapes its ops listener
// every second with deploy/prometheus/weir-alerts.yaml loaded, and every query of the Grafana
// dashboard and every alert expression runs through Prometheus' HTTP API. promtool checks the
// exposition and the rule file.

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
import { startUpstreams } from '../helpers/upstream.ts'
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

t.test('every dashboard query and alert expression answers with data from a real weir scraped by a real Prometheus', async (t) => {
  const [stable, canary, shadow] = await startUpstreams(t, 'stable', 'canary', 'shadow')
  let n = 0
  canary!.handle((_req, res) => {
    n++
    res.statusCode = n % 10 < 3 ? 500 : 200
    res.end('canary')
  })
  const proxy = await startProxy(configDoc([{
    name: 'app',
    upstreams: { stable: stable!.url, canary: canary!.url, shadow: shadow!.url },
    shadow: { percent: 100, compare: true },
    rollout: { steps: [50, 100], interval: '1s', analysis: { minRequests: 20, failureThreshold: 2 } },
  }], { ops: { host: '127.0.0.1', port: 0 } }))
  t.teardown(() => proxy.close())
  const ops = new URL(proxy.opsUrl as string)
  const prometheus = await startPrometheus(t, { job: 'weir', targets: [ops.host], ruleFiles: [ALERTS] })

  const traffic = startTraffic(proxy.url, { rate: 100, maxMs: 60_000 })
  t.teardown(() => traffic.stop())
  // Prometheus' first scrape comes a few seconds after its start (target discovery is throttled):
  // the rollout starts once it scrapes, so the canary's counts rise under its eyes.
  t.ok((await untilData(prometheus, 'up{job="weir"} == 1', 20_000)).data?.result.length, 'Prometheus scrapes weir\'s ops address')
  await sleep(2000)
  const admin = adminClient(proxy.adminUrl)
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
  // WeirDown needs weir down; WeirRolloutChecksFailing a rollout still running with failed checks;
  // WeirUpstreamHostOut a host out of rotation.
  const emptyHere = new Set(['WeirDown', 'WeirRolloutChecksFailing', 'WeirUpstreamHostOut'])
  t.same(rules.map((r) => r.alert).sort(), ['WeirCanaryErrorRateHigh', 'WeirDown', 'WeirRolloutChecksFailing', 'WeirRolloutFailed', 'WeirShadowMismatchRateHigh', 'WeirUpstreamHostOut'])
  for (const rule of rules) {
    const answer = await prometheus.query(rule.expr)
    t.equal(answer.status, 'success', `${rule.alert} parses and runs ${answer.error ?? ''}`)
    if (!emptyHere.has(rule.alert)) t.ok((answer.data?.result.length ?? 0) > 0, `${rule.alert} has data: ${rule.expr}`)
  }

  // Prometheus itself evaluates the rule file without errors, and the rule without `for` fires.
  const deadline = Date.now() + 10_000
  let firing: string[] = []
  let health: string[] = []
  while (Date.now() < deadline) {
    const loaded = await prometheus.get<{ data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } }>('/api/v1/rules')
    health = loaded.data.groups.flatMap((g) => g.rules.map((r) => `${r.name} ${r.health}${r.lastError === undefined || r.lastError === '' ? '' : ' ' + r.lastError}`))
    const alerts = await prometheus.get<{ data: { alerts: { labels: { alertname: string }; state: string }[] } }>('/api/v1/alerts')
    firing = alerts.data.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname)
    if (health.every((h) => h.endsWith(' ok')) && firing.includes('WeirRolloutFailed')) break
    await sleep(250)
  }
  t.same(health.filter((h) => !h.endsWith(' ok')), [], 'every rule evaluates')
  t.equal(health.length, rules.length)
  t.ok(firing.includes('WeirRolloutFailed'), `WeirRolloutFailed fires (${firing.join(', ')})`)

  await traffic.stop()
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
