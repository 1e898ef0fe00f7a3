// deploy/ agrees with itself and with weir: the Kubernetes manifests parse; the ConfigMap's
// weir.yaml is a valid weir config (read by weir's own loader); probes, ports, the grace period,
// the Service and the ServiceMonitor match it; the dashboard and the alerts only name metrics weir
// exports.

import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, parseAllDocuments } from 'yaml'
import { loadConfigFile } from '../../src/config/load.ts'
import type { Config } from '../../src/config/model.ts'
import { createMetrics } from '../../src/metrics/registry.ts'
import { ROOT } from '../helpers/weir-process.ts'

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: unknown }
interface Port { name?: string; containerPort?: number; port?: number; targetPort?: number | string }
interface Probe { httpGet: { path: string; port: number | string } }
interface Container {
  name: string
  args?: string[]
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[]
  ports: Port[]
  readinessProbe: Probe
  livenessProbe: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } }
  volumeMounts: { name: string; mountPath: string }[]
}
interface PodSpec { terminationGracePeriodSeconds: number; containers: Container[]; volumes: { name: string; configMap?: { name: string } }[] }
interface Deployment extends Doc { spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } }

const KUBE = join(ROOT, 'deploy/kubernetes')
const docs: Doc[] = readdirSync(KUBE).filter((f) => f.endsWith('.yaml')).sort().flatMap((file) =>
  parseAllDocuments(readFileSync(join(KUBE, file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]?.message}`)
    return d.toJS() as Doc
  }).filter((d) => d !== null))
const one = <T extends Doc>(kind: string): T => {
  const found = docs.filter((d) => d.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0] as T
}
const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined): boolean =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v)

const deployment = one<Deployment>('Deployment')
const pod = deployment.spec.template.spec
const container = pod.containers.find((c) => c.name === 'weir') as Container

/** The ConfigMap's weir.yaml, loaded by weir's own loader with the Secret's keys as the pod's environment. */
function podConfig (): Config {
  const configMap = one<Doc & { data: Record<string, string> }>('ConfigMap')
  const configEnv = container.env?.find((e) => e.name === 'WEIR_CONFIG')?.value as string
  const mount = container.volumeMounts.find((m) => configEnv.startsWith(m.mountPath + '/')) as { name: string; mountPath: string }
  const volume = pod.volumes.find((v) => v.name === mount.name)
  if (volume?.configMap?.name !== configMap.metadata.name) throw new Error(`WEIR_CONFIG ${configEnv} is not on the ConfigMap's volume`)
  const text = configMap.data[configEnv.slice(mount.mountPath.length + 1)] as string
  const file = join(mkdtempSync(join(tmpdir(), 'weir-deploy-')), 'weir.yaml')
  writeFileSync(file, text)
  const env = { WEIR_ADMIN_TOKEN: 'an-admin-token', WEIR_COOKIE_SECRET: 'a-cookie-secret-of-32-characters' }
  const loaded = loadConfigFile(file, { env })
  if (!loaded.ok) throw new Error('the ConfigMap\'s weir.yaml is not valid:\n' + loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'))
  return loaded.config
}

t.test('every manifest parses, names its kind and lives in the weir namespace', async (t) => {
  t.same(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceMonitor'])
  for (const d of docs) {
    t.ok(typeof d.apiVersion === 'string' && d.metadata.name !== '', `${d.kind} has apiVersion and name`)
    if (d.kind !== 'Namespace') t.equal(d.metadata.namespace, 'weir', `${d.kind} ${d.metadata.name} is in weir`)
  }
})

t.test('the ConfigMap holds a valid weir config: ops on every interface, the admin API on loopback', async (t) => {
  const config = podConfig()
  t.same(config.ops, { host: '0.0.0.0', port: 9902 })
  t.equal(config.listen.host, '0.0.0.0')
  t.equal(config.admin.host, '127.0.0.1')
  t.ok(config.admin.token !== undefined, 'with a token from the Secret all the same')
  t.equal(config.workers, 1, 'one process per pod')
})

t.test('probes, ports, the grace period and the preStop sleep agree with the config', async (t) => {
  const config = podConfig()
  const ops = config.ops as { port: number }
  const portOf = (p: number | string): number | undefined => typeof p === 'number' ? p : container.ports.find((c) => c.name === p)?.containerPort
  t.equal(container.ports.find((p) => p.name === 'http')?.containerPort, config.listen.port, 'the proxy\'s port')
  t.equal(container.ports.find((p) => p.name === 'ops')?.containerPort, ops.port, 'the ops port')
  t.notOk(container.ports.some((p) => p.containerPort === config.admin.port), 'the admin port is not published')
  t.same([container.readinessProbe.httpGet.path, portOf(container.readinessProbe.httpGet.port)], ['/readyz', ops.port], 'readiness: /readyz on ops')
  t.same([container.livenessProbe.httpGet.path, portOf(container.livenessProbe.httpGet.port)], ['/healthz', ops.port], 'liveness: /healthz on ops')

  const preStop = container.lifecycle?.preStop
  const command = preStop?.exec?.command ?? []
  const sleepSeconds = preStop?.sleep?.seconds ?? (command[0] === 'sleep' ? Number(command[1]) : NaN)
  t.ok(sleepSeconds > 0, `a preStop sleep (${sleepSeconds} s)`)
  const grace = pod.terminationGracePeriodSeconds
  t.ok(grace >= sleepSeconds + config.drainTimeoutMs / 1000,
    `terminationGracePeriodSeconds ${grace} covers the preStop sleep ${sleepSeconds} s and drainTimeout ${config.drainTimeoutMs / 1000} s`)

  const secret = one<Doc & { stringData: Record<string, string> }>('Secret')
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef
    if (ref === undefined) continue
    t.equal(ref.name, secret.metadata.name, `${e.name} comes from the Secret`)
    t.ok(ref.key in secret.stringData, `the Secret has ${ref.key}`)
  }
  t.ok(matches(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels), 'the Deployment selects its pods')
})

t.test('the Service, the ServiceMonitor and the PodDisruptionBudget reach the pods and the ops port', async (t) => {
  const config = podConfig()
  const labels = deployment.spec.template.metadata.labels
  const service = one<Doc & { spec: { selector: Record<string, string>; ports: Port[] } }>('Service')
  t.ok(matches(service.spec.selector, labels), 'the Service selects the pods')
  const named = (name: string): Port | undefined => service.spec.ports.find((p) => p.name === name)
  const target = (p: Port | undefined): number | undefined => typeof p?.targetPort === 'string' ? container.ports.find((c) => c.name === p.targetPort)?.containerPort : p?.targetPort
  t.equal(target(named('http')), config.listen.port, 'client traffic goes to the proxy')
  t.equal(target(named('ops')), config.ops?.port, 'the ops port')

  const monitor = one<Doc & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } }>('ServiceMonitor')
  t.equal(monitor.apiVersion, 'monitoring.coreos.com/v1')
  t.ok(matches(monitor.spec.selector.matchLabels, service.metadata.labels), 'the ServiceMonitor selects the Service')
  t.same(monitor.spec.endpoints.map((e) => [e.port, e.path]), [['ops', '/metrics']])
  t.ok(named('ops') !== undefined, 'a Service port of that name')

  const pdb = one<Doc & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget')
  t.ok(matches(pdb.spec.selector.matchLabels, labels), 'the budget covers the pods')
  t.ok(pdb.spec.minAvailable < deployment.spec.replicas, 'and leaves room for one voluntary disruption')
})

t.test('the example Prometheus config scrapes the ops port as the job the alerts name', async (t) => {
  const config = podConfig()
  const prometheus = parse(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yaml'), 'utf8')) as {
    rule_files: string[]; scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[]
  }
  t.same(prometheus.rule_files, ['weir-alerts.yaml'])
  const job = prometheus.scrape_configs[0]
  t.equal(job?.job_name, 'weir')
  t.equal(job?.metrics_path, '/metrics')
  t.match(job?.static_configs[0]?.targets[0], new RegExp(`:${config.ops?.port}$`))
  t.match(readFileSync(join(ROOT, 'deploy/prometheus/weir-alerts.yaml'), 'utf8'), /up\{job="weir"\} == 0/)
})

t.test('the dashboard and the alerts name only metrics weir exports, and the dashboard has a route variable', async (t) => {
  const metrics = createMetrics({ processDefaults: false })
  // prom-client types `type` as a numeric enum; at run time it is the text type ('histogram').
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).flatMap((m) =>
    String(m.type) === 'histogram' ? [m.name + '_bucket', m.name + '_sum', m.name + '_count'] : [m.name]))
  exported.add('up')
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/weir-dashboard.json'), 'utf8')) as {
    uid: string; templating: { list: { name: string; query: unknown }[] }; panels: { type: string; datasource?: { uid: string }; targets?: { expr: string }[] }[]
  }
  t.ok(dashboard.templating.list.some((v) => v.name === 'route'), 'a route variable')
  const alerts = readFileSync(join(ROOT, 'deploy/prometheus/weir-alerts.yaml'), 'utf8')
  const exprs = [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((q) => q.expr)), ...(parse(alerts) as { groups: { rules: { expr: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.expr))]
  t.ok(exprs.length > 15, `${exprs.length} queries`)
  const named = new Set(exprs.flatMap((e) => e.match(/\b(weir_[a-z_]+|up)\b(?=\s*[{[)]|\s*$|\s*==|\s*>)/g) ?? []))
  for (const name of named) t.ok(exported.has(name), `${name} is exported`)
  for (const name of ['weir_request_duration_seconds_bucket', 'weir_route_weight_percent', 'weir_rollout_state', 'weir_shadow_mismatches_total', 'weir_requests_total']) {
    t.ok(named.has(name), `the dashboard or the alerts read ${name}`)
  }
  for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) t.equal(panel.datasource?.uid, '${datasource}', 'each panel reads the chosen Prometheus')
})
