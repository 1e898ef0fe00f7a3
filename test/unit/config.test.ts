import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildConfig, loadConfigFile } from '../../src/config/load.ts'
import { formatProblems } from '../../src/config/problems.ts'
import { checkWeights } from '../../src/config/rules.ts'
import { durationMs, byteSize } from '../../src/config/units.ts'

const dir = mkdtempSync(join(tmpdir(), 'weir-config-'))
function file (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const route = { name: 'shop', upstreams: { stable: 'http://127.0.0.1:3001', canary: 'http://127.0.0.1:3002' } }
const problemsOf = (doc: unknown): string[] => {
  const r = buildConfig(doc)
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.reason}`)
}

t.test('the example config and every file in config/examples are valid', async (t) => {
  const { readdirSync } = await import('node:fs')
  const files = ['config/weir.yaml', ...readdirSync('config/examples').map((f) => `config/examples/${f}`)]
  for (const f of files) {
    const r = loadConfigFile(f, { env: {} })
    t.ok(r.ok, `${f} is valid${r.ok ? '' : ': ' + JSON.stringify(r.problems)}`)
  }
})

t.test('defaults come from the schema', async (t) => {
  const r = buildConfig({ routes: [route] })
  if (!r.ok) throw new Error('expected valid')
  const c = r.config
  t.same(c.listen, { host: '0.0.0.0', port: 8080, tls: undefined })
  t.same([c.admin.host, c.admin.port], ['127.0.0.1', 9901])
  t.same(c.routes[0]?.weights, { stable: 10000, canary: 0, green: 0 }, 'no weights means stable 100 %')
  t.same(c.routes[0]?.timeouts, { connectMs: 2000, headersMs: 30000, bodyIdleMs: 60000, requestBodyMs: 30000 })
  t.equal(c.routes[0]?.override, false, 'no override key: no override (opt-in)')
  t.same(c.routes[0]?.bucketCookie, { name: 'weir_b', maxAgeSeconds: 86400 })
  t.equal(c.routes[0]?.maxBodyBytes, 10 * 1024 * 1024)
  t.equal(c.drainTimeoutMs, 30000)
})

t.test('an override may ask for a secret and a source; a bad source is named', async (t) => {
  const ok = buildConfig({ routes: [{ ...route, override: { header: 'X-Weir-Version', secret: 'sixteen-chars-or-more', from: ['10.0.0.0/8', '127.0.0.1'] } }] })
  if (!ok.ok) throw new Error(JSON.stringify(ok.problems))
  t.same(ok.config.routes[0]?.override, { header: 'x-weir-version', cookie: undefined, secret: 'sixteen-chars-or-more', from: ['10.0.0.0/8', '127.0.0.1'] })
  const bad = buildConfig({ routes: [{ ...route, override: { header: 'x-weir-version', secret: 'short', from: ['10.0.0.0/33', 'nope'] } }] })
  t.notOk(bad.ok)
  const paths = bad.ok ? [] : bad.problems.map((p) => p.path)
  t.ok(paths.includes('routes[0].override.secret'), paths.join(', '))
  const sources = buildConfig({ routes: [{ ...route, override: { header: 'x-weir-version', from: ['10.0.0.0/33', 'nope'] } }] })
  t.same(sources.ok ? [] : sources.problems.map((p) => p.path), ['routes[0].override.from[0]', 'routes[0].override.from[1]'])
})

t.test('route timeouts fall back to the top-level ones', async (t) => {
  const r = buildConfig({ timeouts: { connect: '1s', headers: 500 }, routes: [{ ...route, timeouts: { headers: '2m' } }] })
  if (!r.ok) throw new Error('expected valid')
  t.same(r.config.routes[0]?.timeouts, { connectMs: 1000, headersMs: 120000, bodyIdleMs: 60000, requestBodyMs: 30000 })
})

t.test('three different mistakes give three problems, each with its path', async (t) => {
  const problems = problemsOf({ routes: [{ ...route, weights: { stable: 90, canary: 9 }, wieghts: {}, timeouts: { connect: 'soon' } }] })
  t.same(problems.map((p) => p.slice(0, p.indexOf(':'))).sort(), ['routes[0].timeouts.connect', 'routes[0].weights', 'routes[0].wieghts'], problems.join('\n'))
})

t.test('weights are checked like the admin API will check them', async (t) => {
  const has = (): boolean => true
  const bad: [unknown, RegExp][] = [
    [{ stable: 99 }, /must sum to 100/],
    [{ stable: 100, canary: 1 }, /must sum to 100/],
    [{ stable: -1, canary: 101 }, /between 0 and 100/],
    [{ stable: 99.995, canary: 0.005 }, /two decimals/],
    [{ stable: '100' }, /must be a number/],
    [{ stable: null }, /must be a number/],
    [{ stable: Number.NaN }, /must be a number/],
  ]
  for (const [weights, reason] of bad) {
    const { problems } = checkWeights(weights as Record<string, unknown>, has, 'weights')
    t.match(problems.map((p) => p.reason).join('; '), reason, JSON.stringify(weights))
  }
  t.same(checkWeights({ stable: 33.34, canary: 33.33, green: 33.33 }, has, 'w').bp, { stable: 3334, canary: 3333, green: 3333 })
  t.match(problemsOf({ routes: [{ ...route, weights: { stable: 90, green: 10 } }] }), ['routes[0].weights.green: must be 0: version green has no upstream'])
})

t.test('upstream URLs must be http(s) origins, listed once', async (t) => {
  const problems = problemsOf({ routes: [{ name: 'a', upstreams: { stable: ['http://h:1/path', 'http://u:p@h', 'http://h:2', 'http://h:2'] } }] })
  t.equal(problems.length, 3, problems.join('\n'))
  t.match(problems.join('\n'), /stable\[0\]: must be an origin/)
  t.match(problems.join('\n'), /stable\[1\]: must not carry credentials/)
  t.match(problems.join('\n'), /stable\[3\]: is listed twice/)
  t.same(problemsOf({ routes: [{ name: 'a', upstreams: { stable: 'ftp://h' } }] }), ['routes[0].upstreams.stable: must be an http(s):// URL or a non-empty list of them'])
})

t.test('route names are unique and well-formed; unknown keys are errors', async (t) => {
  t.match(problemsOf({ routes: [route, route] }), ['routes[1].name: duplicates route name "shop"'])
  t.match(problemsOf({ routes: [{ ...route, name: 'Shop_1' }] })[0], /^routes\[0\]\.name:/)
  t.match(problemsOf({ listen: { prot: 1 }, routes: [route] })[0], /^listen\.prot: unexpected property/)
  t.match(problemsOf({}), ['routes: expected required property'])
})

t.test('a non-loopback admin without a token is refused', async (t) => {
  t.match(problemsOf({ admin: { host: '0.0.0.0' }, routes: [route] }), ['admin.token: is required when admin.host is not a loopback address'])
  t.same(problemsOf({ admin: { host: '0.0.0.0', token: 'x' }, routes: [route] }), [])
  t.same(problemsOf({ admin: { host: '0.0.0.0', tokens: { ci: 'y' } }, routes: [route] }), [], 'a named token is a token too')
  t.match(problemsOf({ admin: { host: '127.example.com' }, routes: [route] }), ['admin.token: is required when admin.host is not a loopback address'],
    'a host name starting with 127. is not a loopback address')
  t.same(problemsOf({ admin: { host: '127.0.0.2' }, routes: [route] }), [])
})

t.test('named admin tokens: names are actors, tokens must differ and not take the name "admin"', async (t) => {
  const r = buildConfig({ admin: { token: 'main-token', tokens: { ci: 'ci-token', dash: 'dash-token' } }, routes: [route] })
  t.same(r.ok && r.config.admin.tokens, [{ name: 'admin', token: 'main-token' }, { name: 'ci', token: 'ci-token' }, { name: 'dash', token: 'dash-token' }])
  t.match(problemsOf({ admin: { token: 'same', tokens: { ci: 'same' } }, routes: [route] }), ['admin.tokens.ci: repeats another token: every token must be different'])
  t.match(problemsOf({ admin: { token: 'a', tokens: { admin: 'b' } }, routes: [route] }), ['admin.tokens.admin: is the name of admin.token; choose another name'])
  t.match(problemsOf({ admin: { tokens: { 'Bad Name': 'b' } }, routes: [route] })[0], /^admin\.tokens/)
})

t.test('${ENV} interpolation works inside YAML flow maps, with defaults, and names a missing variable', async (t) => {
  const f = file('env.yaml', 'admin: { host: 127.0.0.1, token: ${TOKEN} }\ncookieSecret: ${SECRET:-fallback-secret-123}\nlisten: { port: ${PORT} }\nroutes:\n  - name: a\n    upstreams: { stable: "http://127.0.0.1:${UP}" }\n')
  const ok = loadConfigFile(f, { env: { TOKEN: 'p@ss: {word}', PORT: '9000', UP: '3001' } })
  t.ok(ok.ok)
  if (ok.ok) {
    t.equal(ok.config.admin.token, 'p@ss: {word}', 'a secret with YAML-special characters stays a string')
    t.equal(ok.config.cookieSecret, 'fallback-secret-123')
    t.equal(ok.config.listen.port, 9000, 'a whole-number value becomes a number')
    t.same(ok.config.routes[0]?.upstreams.stable, ['http://127.0.0.1:3001'])
  }
  const missing = loadConfigFile(f, { env: { PORT: '1', UP: '2' } })
  t.match(missing.ok ? [] : missing.problems, [{ path: 'admin.token', reason: /environment variable TOKEN is not set/ }])
})

t.test('one run names every problem of a file, with the file and its line: an unset variable, a typo\'d key and weights summing to 110', async (t) => {
  const f = file('all.yaml', `listen: { host: 127.0.0.1, port: 8080 }
admin: { host: 127.0.0.1, token: \${UNSET_TOKEN} }
routes:
  - name: app
    upstreams: { stable: http://127.0.0.1:3001, canary: http://127.0.0.1:3002 }
    weights: { stable: 100, canary: 10 }
    timeuots: { connect: 2s }
`)
  const r = loadConfigFile(f, { env: {} })
  const problems = r.ok ? [] : r.problems
  t.match(problems, [
    { path: 'admin.token', reason: /UNSET_TOKEN is not set/, file: f, line: 2 },
    { path: 'routes[0].timeuots', file: f, line: 7 },
    { path: 'routes[0].weights', reason: /sum to 100 \(they sum to 110\)/, file: f, line: 6 },
  ])
  t.equal(problems.length, 3, 'and nothing that follows from the empty variable')
  t.match(formatProblems(problems), new RegExp(`^admin\\.token: .* \\(${f.replaceAll('.', '\\.')}:2\\)$`, 'm'), 'printed as path: reason (file:line)')
})

t.test('shape and rule problems print together, each once: an unknown key hides no rule of the rest of the file', async (t) => {
  const f = file('mixed.yaml', `admin: { host: 0.0.0.0 }
routes:
  - name: shop
    upstreams: { stable: http://127.0.0.1:3001, canary: http://127.0.0.1:3002 }
    timeoutz: { connect: 2s }
    shadow: { percent: 5 }
    rollout: { steps: [10, 50, 50] }
  - name: broken
    weights: { stable: 100 }
  - name: shop
    upstreams: { stable: 7 }
    weights: { stable: 90, canary: 10 }
  - name: api
    upstreams: { stable: http://127.0.0.1:3003 }
    weights: { stable: 90, canary: 10 }
`)
  const r = loadConfigFile(f, { env: {} })
  const problems = r.ok ? [] : r.problems
  const lines = problems.map((p) => `${p.path}: ${p.reason} @${p.line}`).sort()
  t.match(lines, [
    /^admin\.token: is required when admin\.host is not a loopback address @1$/,
    /^routes\[0\]\.rollout\.steps\[2\]: must be greater than the step before it \(50\) @7$/,
    /^routes\[0\]\.shadow\.percent: must be 0: the route has no shadow upstream .* @6$/,
    /^routes\[0\]\.timeoutz: unexpected property @5$/,
    /^routes\[1\]\.upstreams: expected required property @8$/,
    /^routes\[2\]\.name: duplicates route name "shop" @10$/,
    /^routes\[2\]\.upstreams\.stable: /,
    /^routes\[3\]\.weights\.canary: must be 0: version canary has no upstream @15$/,
  ], lines.join('\n'))
  t.equal(problems.length, 8, 'each once, and no version check on the route whose upstreams were refused (routes[2].weights)')
  t.equal(new Set(lines).size, lines.length)
})

t.test('a file that is only shape problems still has its top-level rules checked', async (t) => {
  t.same(problemsOf({ admin: { host: '10.0.0.1', hots: 1 }, routes: [{ name: 'Bad_Name', upstreams: {} }] }).sort(), [
    'admin.hots: unexpected property',
    'admin.token: is required when admin.host is not a loopback address',
    'routes[0].name: expected string to match \'^[a-z0-9-]+$\'',
    'routes[0].upstreams.stable: must be an http(s):// URL or a non-empty list of them',
  ].sort(), 'a route that cannot stand hides nothing else')
  t.same(problemsOf(42), ['(root): expected object'], 'nothing to check the rules on')
})

t.test('WEIR_ADMIN_TOKEN is the admin token when the file has none', async (t) => {
  const f = file('tok.yaml', 'routes: [{ name: a, upstreams: { stable: "http://127.0.0.1:1" } }]\n')
  const r = loadConfigFile(f, { env: { WEIR_ADMIN_TOKEN: 'from-env' } })
  t.equal(r.ok && r.config.admin.token, 'from-env')
})

t.test('WEIR_WEBHOOK_SECRET is the webhook signing key when the file sets no webhookSecret', async (t) => {
  const plain = file('hook.yaml', 'routes: [{ name: a, upstreams: { stable: "http://127.0.0.1:1" } }]\n')
  const fromEnv = loadConfigFile(plain, { env: { WEIR_WEBHOOK_SECRET: 'env-webhook-secret-0123' } })
  t.equal(fromEnv.ok && fromEnv.config.webhookSecret, 'env-webhook-secret-0123')
  const unset = loadConfigFile(plain, { env: { WEIR_WEBHOOK_SECRET: '' } })
  t.equal(unset.ok ? unset.config.webhookSecret : 'invalid', undefined, 'an empty value counts as unset: unsigned')
  const short = loadConfigFile(plain, { env: { WEIR_WEBHOOK_SECRET: 'too-short' } })
  t.match(short, { ok: false, problems: [{ path: 'webhookSecret', reason: 'comes from WEIR_WEBHOOK_SECRET, which must be at least 16 characters (it has 9)' }] })
  t.notMatch(JSON.stringify(short), /"too-short"/, 'the problem does not print the value')
  const inFile = file('hook-file.yaml', 'webhookSecret: file-webhook-secret-0123\nroutes: [{ name: a, upstreams: { stable: "http://127.0.0.1:1" } }]\n')
  const fileWins = loadConfigFile(inFile, { env: { WEIR_WEBHOOK_SECRET: 'short' } })
  t.equal(fileWins.ok && fileWins.config.webhookSecret, 'file-webhook-secret-0123', 'the file\'s webhookSecret wins, and the variable is not checked')
})

t.test('syntax errors and unreadable files are one clear problem', async (t) => {
  const yaml = file('bad.yaml', 'admin: {}\nroutes: [\n')
  t.match(loadConfigFile(yaml, { env: {} }), { ok: false, problems: [{ path: '(file)', reason: /invalid YAML/, file: yaml, line: 3 }] })
  const badYaml = loadConfigFile(yaml, { env: {} })
  t.match(formatProblems(badYaml.ok ? [] : badYaml.problems), new RegExp(`^\\(file\\): invalid YAML: .* \\(${yaml.replaceAll('.', '\\.')}:3\\)$`), 'the printed line names the file')
  const json = file('bad.json', '{"routes": ')
  t.match(loadConfigFile(json, { env: {} }), { ok: false, problems: [{ path: '(file)', reason: /invalid JSON/, file: json }] })
  t.match(loadConfigFile(join(dir, 'missing.yaml'), { env: {} }), { ok: false, problems: [{ path: '(file)', reason: /cannot read .*ENOENT/ }] })
  t.match(loadConfigFile(file('dup.yaml', 'routes: []\nroutes: []\n'), { env: {} }), { ok: false, problems: [{ path: '(file)', reason: /invalid YAML/ }] })
})

t.test('durations and sizes parse with their units', async (t) => {
  t.same([durationMs('250ms'), durationMs('30s'), durationMs('5m'), durationMs('1h'), durationMs('1.5s'), durationMs(42)], [250, 30000, 300000, 3600000, 1500, 42])
  t.same([byteSize('512kb'), byteSize('10mb'), byteSize('1gb'), byteSize('7b'), byteSize(9)], [524288, 10485760, 1073741824, 7, 9])
})

t.test('TLS files that cannot be read are problems, not start-up crashes', async (t) => {
  const problems = problemsOf({ listen: { tls: { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' } }, routes: [{ ...route, tls: { ca: '/nonexistent/ca.pem' } }] })
  t.same(problems.map((p) => p.slice(0, p.indexOf(':'))), ['listen.tls.cert', 'listen.tls.key', 'routes[0].tls.ca'])
  t.match(problems[0], /cannot read \/nonexistent\/cert\.pem \(ENOENT\)/)
})

t.test('shadow settings: defaults, and every mistake named by its path', async (t) => {
  const withShadow = { ...route, upstreams: { ...route.upstreams, shadow: 'http://127.0.0.1:3004' } }
  const r = buildConfig({ routes: [{ ...withShadow, shadow: { percent: 12.5 } }] })
  if (!r.ok) throw new Error('expected valid: ' + JSON.stringify(r.problems))
  const shadow = r.config.routes[0]?.shadow
  t.equal(shadow?.percentBp, 1250)
  t.same([...(shadow?.methods ?? [])], ['GET', 'HEAD', 'OPTIONS'], 'only safe methods by default')
  t.same([shadow?.maxInFlight, shadow?.maxBodyBytes, shadow?.timeoutMs, shadow?.compare], [100, 64 * 1024, 5000, false])
  t.same(buildConfig({ routes: [route] }).ok, true, 'no shadow key: percent 0, no shadow upstream needed')

  const cases: [Record<string, unknown>, string][] = [
    [{ percent: 10.001 }, 'routes[0].shadow.percent: must have at most two decimals'],
    [{ percent: 101 }, 'routes[0].shadow.percent: expected number to be less or equal to 100'],
    [{ methods: ['GET', 'TRACE'] }, 'routes[0].shadow.methods[1]: must be one of GET, HEAD, OPTIONS, PUT, DELETE, PATCH, POST'],
    [{ methods: [] }, 'routes[0].shadow.methods: expected array length to be greater or equal to 1'],
    [{ timeout: 0 }, 'routes[0].shadow.timeout: must be more than 0'],
    [{ maxInFlight: 0 }, 'routes[0].shadow.maxInFlight: expected integer to be greater or equal to 1'],
    [{ ignore: { json: ['$.ok', 'a..b'] } }, 'routes[0].shadow.ignore.json[1]: has an empty field name at character 3'],
    [{ ignore: { headers: ['bad header'] } }, 'routes[0].shadow.ignore.headers[0]'],
    [{ percnt: 5 }, 'routes[0].shadow.percnt'],
  ]
  for (const [shadowDoc, expected] of cases) {
    const problems = problemsOf({ routes: [{ ...withShadow, shadow: shadowDoc }] })
    t.ok(problems.some((p) => p.startsWith(expected)), `${JSON.stringify(shadowDoc)} → ${expected}`, { problems })
  }
  t.same(problemsOf({ routes: [{ ...route, shadow: { percent: 5 } }] }),
    ['routes[0].shadow.percent: must be 0: the route has no shadow upstream (upstreams.shadow)'])
})

t.test('a rollout policy\'s metric checks are checked: template variables, ranges, names, the Prometheus URL', async (t) => {
  const metric = (query: string, thresholdRange: Record<string, number>, name = 'm') => ({ name, query, thresholdRange })
  const analysis = (extra: Record<string, unknown>) => ({ routes: [{ ...route, rollout: { analysis: extra } }] })
  const ok = buildConfig(analysis({
    prometheus: { url: 'http://prometheus:9090' },
    metrics: [metric('sum(rate(x{route="{{ route }}",version="{{target}}"}[{{interval}}])) / {{version}}', { max: 0.01 })],
  }))
  t.ok(ok.ok, 'every known variable, spaces allowed')
  if (ok.ok) t.match(ok.config.routes[0]?.rollout?.analysis.prometheus, { url: 'http://prometheus:9090', timeout: '5s', maxQueryErrors: 3 }, 'defaults')
  t.same(problemsOf(analysis({
    prometheus: { url: 'http://u:p@prometheus:9090', timeout: 0 },
    metrics: [metric('up{job="{{job}}",ns="{{namespace}}"}', { min: 2, max: 1 }), metric('up', {}, 'm')],
  })), [
    'routes[0].rollout.analysis.prometheus.url: must not carry credentials (use bearerTokenEnv)',
    'routes[0].rollout.analysis.prometheus.timeout: must be more than 0',
    'routes[0].rollout.analysis.metrics[0].query: unknown template variables {{job}}, {{namespace}} (known: {{route}}, {{target}}, {{version}}, {{interval}})',
    'routes[0].rollout.analysis.metrics[0].thresholdRange: min (2) must not be greater than max (1)',
    'routes[0].rollout.analysis.metrics[1].name: "m" is used by another metric',
    'routes[0].rollout.analysis.metrics[1].thresholdRange: needs min, max or both',
  ])
  t.same(problemsOf(analysis({ metrics: [metric('up', { max: 1 })] })), ['routes[0].rollout.analysis.prometheus: is required by analysis.metrics (the Prometheus their queries go to)'])
  t.match(problemsOf(analysis({ prometheus: { url: 'prometheus:9090' } })), [/^routes\[0\]\.rollout\.analysis\.prometheus\.url: /], 'not an http(s) URL')
  t.same(problemsOf(analysis({ prometheus: { url: 'http://[::1' } })), ['routes[0].rollout.analysis.prometheus.url: is not a valid URL'])
})

t.test('a route\'s rollout policy gets its defaults and is checked by the rules the schema cannot express', async (t) => {
  const r = buildConfig({ routes: [{ ...route, rollout: { steps: [5, 50] } }] })
  t.ok(r.ok)
  if (r.ok) {
    t.match(r.config.routes[0]?.rollout, {
      strategy: 'canary',
      steps: [5, 50],
      interval: '30s',
      watch: '1m',
      webhooks: [],
      analysis: { minRequests: 50, maxErrorRate: 0.01, maxErrorRatio: 2, maxP99Ms: 500, maxP99Ratio: 1.5, p99ToleranceMs: 5, significance: 0.01, failureThreshold: 2 },
      guard: { maxErrorRate: 0.5, minRequests: 20 },
    })
  }
  t.same(problemsOf({ routes: [{ ...route, rollout: { steps: [50, 10.001], interval: '200ms', webhooks: [{ name: 'a', type: 'rollout', url: 'http://x/' }, { name: 'a', type: 'rollback', url: 'http://u:p@y/' }] } }] }), [
    'routes[0].rollout.steps[1]: must have at most two decimals',
    'routes[0].rollout.steps[1]: must be greater than the step before it (50)',
    'routes[0].rollout.interval: must be at least 1s (stats are kept per second)',
    'routes[0].rollout.webhooks[1].name: "a" is used by another webhook',
    'routes[0].rollout.webhooks[1].url: must not carry credentials (use a token in metadata or the query)',
  ])
  t.match(problemsOf({ routes: [{ ...route, rollout: { analysis: { maxErrorRatio: 0.5 } } }] }), ['routes[0].rollout.analysis.maxErrorRatio: expected number to be greater or equal to 1'])
})

t.test('a notification webhook takes a secret of 16 characters or more and a json or slack format; webhookSecret is the default', async (t) => {
  const hook = { name: 'tell', type: 'event', url: 'https://hooks.example/x' }
  const ok = buildConfig({ webhookSecret: 'a-default-secret-0123', routes: [{ ...route, rollout: { webhooks: [{ ...hook, secret: 'a-webhook-secret-0123', format: 'slack' }, { ...hook, name: 'plain' }] } }] })
  t.ok(ok.ok)
  if (ok.ok) {
    t.equal(ok.config.webhookSecret, 'a-default-secret-0123')
    t.match(ok.config.routes[0]?.rollout?.webhooks, [{ secret: 'a-webhook-secret-0123', format: 'slack' }, { format: 'json' }])
  }
  t.same(problemsOf({ webhookSecret: 'short', routes: [{ ...route, rollout: { webhooks: [{ ...hook, secret: 'short', format: 'xml' }] } }] }), [
    'webhookSecret: expected string length greater or equal to 16',
    'routes[0].rollout.webhooks[0].secret: expected string length greater or equal to 16',
    'routes[0].rollout.webhooks[0].format: must be json or slack',
  ])
})

t.test('workers: auto is the default and resolves to the CPUs this process may use; a number is 1–256', async (t) => {
  const defaults = buildConfig({ routes: [route] })
  t.ok(defaults.ok && defaults.config.workers === availableParallelism(), 'auto by default')
  const two = buildConfig({ workers: 2, routes: [route] })
  t.ok(two.ok && two.config.workers === 2)
  for (const bad of [0, 257, 1.5, 'many']) t.ok(problemsOf({ workers: bad, routes: [route] }).some((p) => p.startsWith('workers')), `workers: ${bad} is refused`)
})

t.test('state.etcd: endpoints, prefix and timeout defaults; a fleet needs a shared cookieSecret; credentials go together', async (t) => {
  const ok = buildConfig({ cookieSecret: 'a-fleet-wide-secret', state: { etcd: { endpoints: ['http://127.0.0.1:2379/'] } }, fleet: { id: 'edge-1', advertise: 'http://10.0.0.5:9901/' }, routes: [route] })
  t.ok(ok.ok)
  if (ok.ok) {
    t.same(ok.config.etcd, { endpoints: ['http://127.0.0.1:2379'], prefix: '/weir/', timeoutMs: 2000, auth: undefined, tls: undefined })
    t.same(ok.config.fleet, { id: 'edge-1', idGiven: true, advertise: 'http://10.0.0.5:9901', leaseTtlSeconds: 5 })
  }
  const ttl = buildConfig({ cookieSecret: 'a-fleet-wide-secret', state: { etcd: { endpoints: ['http://127.0.0.1:2379'] } }, fleet: { leaseTtl: '2s' }, routes: [route] })
  t.ok(!ttl.ok && ttl.problems.some((p) => p.path === 'fleet.leaseTtl'), 'a lease under 3 s is refused')
  const long = buildConfig({ cookieSecret: 'a-fleet-wide-secret', state: { etcd: { endpoints: ['http://127.0.0.1:2379'] } }, fleet: { leaseTtl: '10s' }, routes: [route] })
  t.equal(long.ok && long.config.fleet.leaseTtlSeconds, 10, 'fleet.leaseTtl in whole seconds')
  t.match(problemsOf({ state: { etcd: { endpoints: ['http://127.0.0.1:2379'] } }, routes: [route] }), [/^cookieSecret: is required with state.etcd/])
  t.match(problemsOf({ cookieSecret: 'a-fleet-wide-secret', state: { etcd: { endpoints: ['http://127.0.0.1:2379'], username: 'weir' } }, routes: [route] }), ['state.etcd: username and password go together'])
  t.ok(problemsOf({ cookieSecret: 'a-fleet-wide-secret', state: { etcd: { endpoints: [] } }, routes: [route] }).some((p) => p.startsWith('state.etcd.endpoints')), 'no endpoint is refused')
  t.ok(problemsOf({ cookieSecret: 'a-fleet-wide-secret', state: { etcd: { endpoints: ['127.0.0.1:2379'] } }, routes: [route] }).some((p) => p.startsWith('state.etcd.endpoints')), 'an endpoint needs its scheme')
})

t.test('ops is optional; given, it listens on 0.0.0.0:9902 unless told otherwise', async (t) => {
  const none = buildConfig({ routes: [route] })
  t.equal(none.ok && none.config.ops, undefined, 'absent: no ops listener')
  const given = buildConfig({ ops: {}, routes: [route] })
  t.same(given.ok && given.config.ops, { host: '0.0.0.0', port: 9902 })
  t.match(problemsOf({ ops: { port: 9902, path: '/x' }, routes: [route] }), [/^ops/], 'unknown keys are refused')
})

t.test('an ops port that another listener of weir takes is refused with its path', async (t) => {
  t.same(problemsOf({ listen: { port: 9000 }, ops: { port: 9000 }, routes: [route] }),
    ['ops.port: must differ from listen.port (9000 on 0.0.0.0)'])
  t.same(problemsOf({ ops: { host: '127.0.0.1', port: 9901 }, routes: [route] }),
    ['ops.port: must differ from admin.port (9901 on 127.0.0.1)'])
  t.same(problemsOf({ ops: { host: '0.0.0.0', port: 9901 }, routes: [route] }),
    ['ops.port: must differ from admin.port (9901 on 127.0.0.1)'], '0.0.0.0 takes the port on loopback too')
  t.same(problemsOf({ listen: { host: '10.0.0.1', port: 9000 }, ops: { host: '10.0.0.2', port: 9000 }, routes: [route] }), [], 'other addresses may share a port')
  t.same(problemsOf({ listen: { port: 0 }, admin: { port: 0 }, ops: { port: 0 }, routes: [route] }), [], 'ephemeral ports never conflict')
})

t.test('upstreamPolicy: ejection, retries and round-robin by default; checks and least-request per version; every mistake named by its path', async (t) => {
  const r = buildConfig({ routes: [route] })
  if (!r.ok) throw new Error('expected valid')
  const policy = r.config.routes[0]!.upstreamPolicy
  t.same(policy.outlier, { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 })
  t.same(policy.retry, { budgetPercent: 20, minRetries: 3, windowMs: 10_000 })
  t.same(policy.versions.stable, { balance: 'round-robin', healthCheck: undefined })

  const set = buildConfig({ routes: [{ ...route, upstreamPolicy: { balance: 'least-request', outlierDetection: false, retry: false, canary: { balance: 'round-robin', healthCheck: { path: '/healthz' } } } }] })
  if (!set.ok) throw new Error(JSON.stringify(set.problems))
  const p = set.config.routes[0]!.upstreamPolicy
  t.equal(p.outlier, false)
  t.equal(p.retry, false)
  t.equal(p.versions.stable.balance, 'least-request', 'the route\'s balance for every version')
  t.equal(p.versions.canary.balance, 'round-robin', 'unless the version says otherwise')
  t.same(p.versions.canary.healthCheck, { path: '/healthz', intervalMs: 5000, timeoutMs: 2000, healthyThreshold: 2, unhealthyThreshold: 3, expectedStatuses: [200] })

  const problems = problemsOf({
    routes: [{
      ...route,
      upstreamPolicy: {
        outlierDetection: { baseEjectionTime: '1m', maxEjectionTime: '30s' },
        retry: { window: '500ms' },
        stable: { healthCheck: { path: '/h', interval: '50ms', timeout: '1s' } },
      },
    }],
  })
  t.same(problems.sort(), [
    'routes[0].upstreamPolicy.outlierDetection.maxEjectionTime: must be at least baseEjectionTime',
    'routes[0].upstreamPolicy.retry.window: must be between 1s and 10m',
    'routes[0].upstreamPolicy.stable.healthCheck.interval: must be at least 100ms',
    'routes[0].upstreamPolicy.stable.healthCheck.timeout: must be at least 1ms and at most the interval',
  ])
  t.ok(problemsOf({ routes: [{ ...route, upstreamPolicy: { balance: 'random' } }] }).some((p) => p.startsWith('routes[0].upstreamPolicy.balance')), 'an unknown balance is named')
  t.ok(problemsOf({ routes: [{ ...route, upstreamPolicy: { shadow: {} } }] }).length > 0, 'the shadow has no host policy')
  t.ok(problemsOf({ routes: [{ ...route, upstreamPolicy: { stable: { healthCheck: { path: 'healthz' } } } }] }).some((p) => p.includes('healthCheck.path')), 'a check path starts with /')
})
