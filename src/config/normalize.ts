// From a schema-valid config document (defaults applied) to the normalized Config: units
// converted, names lower-cased, paths resolved, and every cross-field rule checked, each broken
// one appended as a problem with its path.

import { accessSync, constants } from 'node:fs'
import { availableParallelism, hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import type { Problem } from '../errors.ts'
import { parseJsonPath } from '../shadow/json-path.ts'
import { VERSIONS, type UpstreamName, type Version } from '../vocabulary.ts'
import type { AdminToken, Config, EtcdSettings, UpstreamPolicy, MatchRule, RouteConfig, ShadowConfig, WeightsBp } from './model.ts'
import { rolloutPolicyProblems } from './rollout-policy-rules.ts'
import { buildTrustedProxies, checkUpstreamUrl, checkWeights, hasAtMostTwoDecimals, isLoopbackHost, ruleConditions, TWO_DECIMALS } from './rules.ts'
import { WEBHOOK_SECRET_MIN_LENGTH, type ConfigInput, type RouteInput, type RuleInput, type ShadowInput, type Weights } from './schema.ts'
import { byteSize, durationMs } from './units.ts'

/**
 * A field the schema gives a default: Value.Default has filled it in before validation, so it is
 * always there, though TypeBox types it optional. Throws (a bug) if that ever stops being true.
 */
function withDefaults<T> (value: T | undefined, path: string): T {
  if (value === undefined) throw new TypeError(`${path}: the schema's default was not applied`)
  return value
}

/** The environment's fallbacks for secrets the file leaves out (an empty value counts as unset). */
export interface SecretsFromEnv {
  /** WEIR_ADMIN_TOKEN */
  adminToken: string | undefined
  /** WEIR_WEBHOOK_SECRET */
  webhookSecret: string | undefined
}

export function normalize (doc: ConfigInput, baseDir: string, env: SecretsFromEnv, problems: Problem[]): Config {
  const trusted = buildTrustedProxies(doc.trustedProxies, 'trustedProxies')
  problems.push(...trusted.problems)
  // The file's token wins; WEIR_ADMIN_TOKEN is the fallback so secrets can stay out of files.
  const given = doc.admin.token ?? env.adminToken
  const token = given !== undefined && given !== '' ? given : undefined
  const tokens: AdminToken[] = token === undefined ? [] : [{ name: 'admin', token }]
  for (const [name, value] of Object.entries(doc.admin.tokens ?? {})) {
    if (name === 'admin' && token !== undefined) problems.push({ path: 'admin.tokens.admin', reason: 'is the name of admin.token; choose another name' })
    else if (tokens.some((t) => t.token === value)) problems.push({ path: `admin.tokens.${name}`, reason: 'repeats another token: every token must be different' })
    else tokens.push({ name, token: value })
  }
  if (tokens.length === 0 && !isLoopbackHost(doc.admin.host)) {
    problems.push({ path: 'admin.token', reason: 'is required when admin.host is not a loopback address' })
  }
  if (doc.admin.host === doc.listen.host && doc.admin.port === doc.listen.port && doc.listen.port !== 0) {
    problems.push({ path: 'admin.port', reason: 'must differ from listen.port' })
  }
  if (doc.ops !== undefined) {
    for (const [name, other] of [['listen', doc.listen], ['admin', doc.admin]] as const) {
      if (doc.ops.port !== 0 && doc.ops.port === other.port && hostsOverlap(doc.ops.host, other.host)) {
        problems.push({ path: 'ops.port', reason: `must differ from ${name}.port (${other.port} on ${other.host})` })
      }
    }
  }
  if (doc.listen.tls !== undefined) {
    checkReadable(resolve(baseDir, doc.listen.tls.cert), 'listen.tls.cert', problems)
    checkReadable(resolve(baseDir, doc.listen.tls.key), 'listen.tls.key', problems)
  }
  const top = doc.timeouts
  const seen = new Set<string>()
  const routes = doc.routes.map((route, i) => {
    const path = `routes[${i}]`
    if (seen.has(route.name)) problems.push({ path: `${path}.name`, reason: `duplicates route name "${route.name}"` })
    seen.add(route.name)
    return normalizeRoute(route, path, top, doc.maxBodyBytes, baseDir, problems)
  })
  return {
    file: undefined,
    listen: {
      host: doc.listen.host,
      port: doc.listen.port,
      tls: doc.listen.tls && { cert: resolve(baseDir, doc.listen.tls.cert), key: resolve(baseDir, doc.listen.tls.key) },
    },
    admin: { host: doc.admin.host, port: doc.admin.port, token, tokens },
    ops: doc.ops === undefined ? undefined : { host: doc.ops.host, port: doc.ops.port },
    stateFile: resolve(baseDir, doc.state.file),
    etcd: etcdSettings(doc, baseDir, problems),
    fleet: {
      // An ephemeral admin port (0) says nothing: the pid keeps two such replicas on one host apart.
      id: doc.fleet.id ?? `${hostname()}-${doc.admin.port === 0 ? `pid${process.pid}` : doc.admin.port}`,
      idGiven: doc.fleet.id !== undefined,
      advertise: doc.fleet.advertise?.replace(/\/$/, ''),
      leaseTtlSeconds: leaseTtlSeconds(doc.fleet.leaseTtl, problems),
    },
    eventsFile: doc.state.events === undefined
      ? join(dirname(resolve(baseDir, doc.state.file)), 'events.jsonl')
      : resolve(baseDir, doc.state.events),
    cookieSecret: doc.cookieSecret,
    webhookSecret: webhookSecret(doc.webhookSecret, env.webhookSecret, problems),
    trustedProxies: trusted.list,
    trustedProxyList: doc.trustedProxies,
    versionHeader: doc.versionHeader === false ? false : doc.versionHeader.toLowerCase(),
    maxHeaderBytes: doc.maxHeaderBytes,
    maxHeaders: doc.maxHeaders,
    tracing: { generate: doc.tracing.generate },
    accessLogSample: doc.accessLog === 'off' ? 0 : doc.accessLog === 'on' ? 1 : doc.accessLog.sample,
    clientHeadersTimeoutMs: durationMs(doc.timeouts.clientHeaders),
    clientIdleTimeoutMs: durationMs(doc.timeouts.clientIdle),
    drainTimeoutMs: durationMs(doc.drainTimeout),
    workers: doc.workers === 'auto' ? availableParallelism() : doc.workers,
    logLevel: doc.logLevel,
    routes,
  }
}

/**
 * `fleet.leaseTtl` in whole seconds (etcd's unit), 3 s to 60 s: how long a stopped or cut-off
 * replica keeps its membership and leadership. Shorter fails over faster; longer rides out
 * longer pauses. Default 5 s.
 */
function leaseTtlSeconds (value: string | number | undefined, problems: Problem[]): number {
  if (value === undefined) return 5
  const seconds = Math.ceil(durationMs(value) / 1000)
  if (seconds < 3 || seconds > 60) problems.push({ path: 'fleet.leaseTtl', reason: 'must be from 3s to 60s' })
  return seconds
}

/** `state.etcd`, with its files resolved and checked; a fleet must share one cookie secret. */
function etcdSettings (doc: ConfigInput, baseDir: string, problems: Problem[]): EtcdSettings | undefined {
  const etcd = doc.state.etcd
  if (etcd === undefined) return undefined
  if (doc.cookieSecret === undefined) {
    problems.push({ path: 'cookieSecret', reason: 'is required with state.etcd: every replica of a fleet must sign bucket cookies with the same secret' })
  }
  if ((etcd.username === undefined) !== (etcd.password === undefined)) {
    problems.push({ path: 'state.etcd', reason: 'username and password go together' })
  }
  let tls: EtcdSettings['tls']
  if (etcd.tls !== undefined) {
    const file = (path: string | undefined, at: string): string | undefined => {
      if (path === undefined) return undefined
      const absolute = resolve(baseDir, path)
      checkReadable(absolute, at, problems)
      return absolute
    }
    tls = { ca: file(etcd.tls.ca, 'state.etcd.tls.ca') as string, cert: file(etcd.tls.cert, 'state.etcd.tls.cert'), key: file(etcd.tls.key, 'state.etcd.tls.key') }
  }
  return {
    endpoints: etcd.endpoints.map((e) => e.replace(/\/$/, '')),
    prefix: etcd.prefix.endsWith('/') ? etcd.prefix : etcd.prefix + '/',
    timeoutMs: durationMs(etcd.timeout),
    auth: etcd.username === undefined || etcd.password === undefined ? undefined : { username: etcd.username, password: etcd.password },
    tls,
  }
}

/** Origins per version, reporting bad and repeated URLs. */
export function normalizeUpstreams (input: Partial<RouteInput['upstreams']>, path: string, problems: Problem[]): Partial<Record<UpstreamName, string[]>> {
  const upstreams: Partial<Record<UpstreamName, string[]>> = {}
  for (const [name, value] of Object.entries(input) as [UpstreamName, string | string[] | undefined][]) {
    if (value === undefined) continue
    const list = Array.isArray(value) ? value : [value]
    const origins: string[] = []
    list.forEach((raw, j) => {
      const base = path === '' ? `upstreams.${name}` : `${path}.upstreams.${name}`
      const itemPath = Array.isArray(value) ? `${base}[${j}]` : base
      const { origin, problem } = checkUpstreamUrl(raw, itemPath)
      if (problem !== undefined) problems.push(problem)
      else if (origins.includes(origin as string)) problems.push({ path: itemPath, reason: 'is listed twice' })
      else origins.push(origin as string)
    })
    upstreams[name] = origins
  }
  return upstreams
}

/**
 * Normalizes schema-valid shadow settings: at most two decimals of percent, a shadow upstream
 * when percent > 0, ignore paths that parse. Shared with the admin API.
 */
export function normalizeShadow (
  input: ShadowInput, upstreams: Partial<Record<UpstreamName, readonly string[]>>, path: string, problems: Problem[]
): ShadowConfig {
  const percentBp = Math.round(input.percent * 100)
  if (!hasAtMostTwoDecimals(input.percent)) problems.push({ path: `${path}.percent`, reason: TWO_DECIMALS })
  else if (percentBp > 0 && (upstreams.shadow === undefined || upstreams.shadow.length === 0)) {
    problems.push({ path: `${path}.percent`, reason: 'must be 0: the route has no shadow upstream (upstreams.shadow)' })
  }
  const timeoutMs = durationMs(input.timeout)
  if (timeoutMs === 0) problems.push({ path: `${path}.timeout`, reason: 'must be more than 0' })
  input.ignore.json.forEach((text, i) => {
    const parsed = parseJsonPath(text)
    if (!parsed.ok) problems.push({ path: `${path}.ignore.json[${i}]`, reason: parsed.reason })
  })
  return {
    percentBp,
    maxInFlight: input.maxInFlight,
    maxBodyBytes: byteSize(input.maxBodyBytes),
    methods: new Set(input.methods),
    timeoutMs,
    compare: input.compare,
    ignoreHeaders: input.ignore.headers.map((h) => h.toLowerCase()),
    ignoreJson: input.ignore.json,
  }
}

function normalizeWeights (input: Weights, upstreams: Partial<Record<UpstreamName, string[]>>, path: string, problems: Problem[]): WeightsBp {
  const { bp, problems: weightProblems } = checkWeights(input, (v: Version) => upstreams[v] !== undefined, `${path}.weights`)
  problems.push(...weightProblems)
  return bp
}

function normalizeRoute (
  route: RouteInput, path: string, top: ConfigInput['timeouts'], topMaxBody: string | number,
  baseDir: string, problems: Problem[]
): RouteConfig {
  const upstreams = normalizeUpstreams(route.upstreams, path, problems)
  const bp = normalizeWeights(withDefaults(route.weights, 'weights'), upstreams, path, problems)

  const hosts = route.match?.host === undefined ? [] : (Array.isArray(route.match.host) ? route.match.host : [route.match.host])
  hosts.forEach((host, j) => {
    if (!/^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(host)) {
      problems.push({ path: `${path}.match.host${Array.isArray(route.match?.host) ? `[${j}]` : ''}`, reason: 'must be a host name, optionally starting with "*."' })
    }
  })
  const shadow = normalizeShadow(route.shadow, upstreams, `${path}.shadow`, problems)
  if (route.rollout !== undefined) rolloutPolicyProblems(route.rollout, `${path}.rollout`, problems)
  if (route.tls?.ca !== undefined) checkReadable(resolve(baseDir, route.tls.ca), `${path}.tls.ca`, problems)
  const t = route.timeouts ?? {}
  const cookie = withDefaults(route.stickiness.cookie, 'stickiness.cookie')
  const override = route.override === undefined || route.override === false
    ? false as const
    : { header: route.override.header?.toLowerCase(), cookie: route.override.cookie, secret: route.override.secret, from: route.override.from }
  if (override !== false && override.header === undefined && override.cookie === undefined) {
    problems.push({ path: `${path}.override`, reason: 'must name a header or a cookie (or be false)' })
  }
  if (override !== false && override.from !== undefined) problems.push(...buildTrustedProxies(override.from, `${path}.override.from`).problems)
  const rules = normalizeRules(route.rules ?? [], upstreams, `${path}.rules`, problems)
  return {
    name: route.name,
    hosts: hosts.map((h) => h.toLowerCase()),
    pathPrefix: withDefaults(route.match, 'match').pathPrefix,
    upstreams,
    weights: bp,
    userIdHeader: route.stickiness.userId?.header?.toLowerCase(),
    userIdCookie: route.stickiness.userId?.cookie,
    bucketCookie: { name: cookie.name, maxAgeSeconds: cookie.maxAge },
    override,
    rules,
    shadow,
    shadowInput: route.shadow,
    rulesInput: route.rules ?? [],
    upstreamPolicy: normalizeUpstreamPolicy(withDefaults(route.upstreamPolicy, 'upstreamPolicy'), `${path}.upstreamPolicy`, problems),
    failover: route.failover,
    passHost: route.passHost,
    vary: route.vary,
    tls: {
      rejectUnauthorized: !(route.tls?.insecureSkipVerify ?? false),
      ca: route.tls?.ca === undefined ? undefined : resolve(baseDir, route.tls.ca),
    },
    timeouts: {
      connectMs: durationMs(t.connect ?? top.connect),
      headersMs: durationMs(t.headers ?? top.headers),
      bodyIdleMs: durationMs(t.bodyIdle ?? top.bodyIdle),
      requestBodyMs: durationMs(t.requestBody ?? top.requestBody),
    },
    maxBodyBytes: byteSize(route.maxBodyBytes ?? topMaxBody),
    rollout: route.rollout,
  }
}

/** A route's host policy, with every default filled in and durations in ms. */
function normalizeUpstreamPolicy (input: NonNullable<RouteInput['upstreamPolicy']>, path: string, problems: Problem[]): UpstreamPolicy {
  const outlier = input.outlierDetection ?? {}
  const retry = input.retry ?? {}
  const versions = {} as UpstreamPolicy['versions']
  for (const version of VERSIONS) {
    const own = input[version]
    const check = own?.healthCheck
    let healthCheck
    if (check !== undefined) {
      healthCheck = {
        path: check.path,
        intervalMs: durationMs(check.interval ?? '5s'),
        timeoutMs: durationMs(check.timeout ?? '2s'),
        healthyThreshold: check.healthyThreshold ?? 2,
        unhealthyThreshold: check.unhealthyThreshold ?? 3,
        expectedStatuses: check.expectedStatuses ?? [200],
      }
      if (healthCheck.intervalMs < 100) problems.push({ path: `${path}.${version}.healthCheck.interval`, reason: 'must be at least 100ms' })
      if (healthCheck.timeoutMs < 1 || healthCheck.timeoutMs > healthCheck.intervalMs) {
        problems.push({ path: `${path}.${version}.healthCheck.timeout`, reason: 'must be at least 1ms and at most the interval' })
      }
    }
    versions[version] = { balance: own?.balance ?? input.balance ?? 'round-robin', healthCheck }
  }
  const normalized: UpstreamPolicy = {
    outlier: outlier === false
      ? false
      : {
          consecutiveFailures: outlier.consecutiveFailures ?? 5,
          baseEjectionMs: durationMs(outlier.baseEjectionTime ?? '30s'),
          maxEjectionMs: durationMs(outlier.maxEjectionTime ?? '5m'),
          maxEjectedPercent: outlier.maxEjectedPercent ?? 50,
        },
    retry: retry === false
      ? false
      : { budgetPercent: retry.budgetPercent ?? 20, minRetries: retry.minRetries ?? 3, windowMs: durationMs(retry.window ?? '10s') },
    versions,
  }
  if (normalized.outlier !== false) {
    if (normalized.outlier.baseEjectionMs < 1) problems.push({ path: `${path}.outlierDetection.baseEjectionTime`, reason: 'must be more than 0' })
    if (normalized.outlier.maxEjectionMs < normalized.outlier.baseEjectionMs) {
      problems.push({ path: `${path}.outlierDetection.maxEjectionTime`, reason: 'must be at least baseEjectionTime' })
    }
  }
  if (normalized.retry !== false && (normalized.retry.windowMs < 1000 || normalized.retry.windowMs > 600_000)) {
    problems.push({ path: `${path}.retry.window`, reason: 'must be between 1s and 10m' })
  }
  return normalized
}

/** Two listen hosts that would take the same port: the same host, or either one every address (0.0.0.0, ::). */
function hostsOverlap (a: string, b: string): boolean {
  const any = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === ''
  return a === b || any(a) || any(b)
}

function checkReadable (file: string, path: string, problems: Problem[]): void {
  try {
    accessSync(file, constants.R_OK)
  } catch (err) {
    problems.push({ path, reason: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})` })
  }
}

/**
 * A route's match rules: each needs at least one condition, each condition exactly one test, a
 * regex that runs in linear time and cannot backtrack exponentially, and a version that has an
 * upstream.
 */
export function normalizeRules (input: readonly RuleInput[], upstreams: Partial<Record<UpstreamName, string[]>>, path: string, problems: Problem[]): MatchRule[] {
  return input.map((rule, i) => {
    const at = `${path}[${i}]`
    const conditions = ruleConditions(rule.match, `${at}.match`, problems)
    if (upstreams[rule.version] === undefined) problems.push({ path: `${at}.version`, reason: `version ${rule.version} has no upstream` })
    return { conditions, version: rule.version }
  })
}

/**
 * The default webhook signing key: the file's webhookSecret, else WEIR_WEBHOOK_SECRET (so the
 * secret can stay out of the file without a ${VAR} in it), held to the same length.
 */
function webhookSecret (fromFile: string | undefined, fromEnv: string | undefined, problems: Problem[]): string | undefined {
  if (fromFile !== undefined) return fromFile
  if (fromEnv === undefined || fromEnv === '') return undefined
  if (fromEnv.length < WEBHOOK_SECRET_MIN_LENGTH) {
    problems.push({ path: 'webhookSecret', reason: `comes from WEIR_WEBHOOK_SECRET, which must be at least ${WEBHOOK_SECRET_MIN_LENGTH} characters (it has ${fromEnv.length})` })
  }
  return fromEnv
}
