// Reads a config file (YAML or JSON), interpolates ${ENV}, applies schema defaults and checks
// every rule, returning either a normalized Config or the complete list of problems.

import { accessSync, constants, readFileSync } from 'node:fs'
import { dirname, extname, join, resolve } from 'node:path'
import type { BlockList } from 'node:net'
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseDocument } from 'yaml'
import { rolloutPolicyProblems } from '../controller/policy.ts'
import { ConfigSchema, UpstreamsSchema, WeightsSchema, type ConfigInput, type RolloutPolicy, type RouteInput, type ShadowInput, type Weights } from './schema.ts'
import { parseJsonPath } from '../shadow/json-path.ts'
import { byteSize, durationMs } from './units.ts'
import {
  buildTrustedProxies, checkUpstreamUrl, checkWeights, isLoopbackHost,
  type Problem, type UpstreamName, type Version, type WeightsBp,
} from './rules.ts'

export interface Timeouts { connectMs: number; headersMs: number; bodyIdleMs: number; requestBodyMs: number }

/** A route's shadow settings, normalized (CONTRACT §5). */
export interface ShadowConfig {
  /** Share of requests copied, in hundredths of a percent (0–10 000). */
  percentBp: number
  maxInFlight: number
  maxBodyBytes: number
  /** Upper-case methods that are copied. */
  methods: ReadonlySet<string>
  timeoutMs: number
  compare: boolean
  /** Lower-case response header names left out of the comparison. */
  ignoreHeaders: readonly string[]
  /** JSON paths left out of the body comparison, as written (each one parses: see json-path.ts). */
  ignoreJson: readonly string[]
}

export interface RouteConfig {
  name: string
  /** Lower-case host names; `*.example.com` entries are suffix matches. Empty: any host. */
  hosts: string[]
  pathPrefix: string
  /** Origins per version; a version without an entry has no upstream. */
  upstreams: Partial<Record<UpstreamName, string[]>>
  weights: WeightsBp
  userIdHeader: string | undefined
  userIdCookie: string | undefined
  bucketCookie: { name: string; maxAgeSeconds: number }
  override: { header: string | undefined; cookie: string | undefined } | false
  shadow: ShadowConfig
  /** The route's `shadow` object as the file gives it (defaults applied): what live settings are merged into. */
  shadowInput: ShadowInput
  failover: boolean
  passHost: boolean
  tls: { rejectUnauthorized: boolean; ca: string | undefined }
  timeouts: Timeouts
  maxBodyBytes: number
  rollout: RolloutPolicy | undefined
}

export interface Config {
  /** The file this config came from (absolute), for reloads and relative paths. */
  file: string | undefined
  listen: { host: string; port: number; tls: { cert: string; key: string } | undefined }
  admin: { host: string; port: number; token: string | undefined; tokens: AdminToken[] }
  stateFile: string
  eventsFile: string
  cookieSecret: string | undefined
  trustedProxies: BlockList
  trustedProxyList: string[]
  versionHeader: string | false
  maxHeaderBytes: number
  clientHeadersTimeoutMs: number
  clientIdleTimeoutMs: number
  drainTimeoutMs: number
  logLevel: ConfigInput['logLevel']
  routes: RouteConfig[]
}

/** A bearer token of the admin API and the name it acts under in the event log. */
export interface AdminToken { name: string; token: string }

export type LoadResult = { ok: true; config: Config } | { ok: false; problems: Problem[] }

export interface LoadOptions { env?: Readonly<Record<string, string | undefined>> }

/** Loads and validates a config file. Never throws for a bad file: problems are returned. */
export function loadConfigFile (file: string, options: LoadOptions = {}): LoadResult {
  const path = resolve(file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return { ok: false, problems: [{ path: '(file)', reason: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] }
  }
  const { text: safeText, refs } = extractEnvRefs(text)
  const parsed = parseText(safeText, extname(path).toLowerCase())
  if (!parsed.ok) return parsed
  const problems: Problem[] = []
  const interpolated = interpolate(parsed.value, refs, options.env ?? process.env, '', problems)
  if (problems.length > 0) return { ok: false, problems }
  return buildConfig(interpolated, { file: path, env: options.env ?? process.env })
}

function parseText (text: string, ext: string): { ok: true; value: unknown } | { ok: false; problems: Problem[] } {
  if (ext === '.json') {
    try {
      return { ok: true, value: JSON.parse(text) }
    } catch (err) {
      return { ok: false, problems: [{ path: '(file)', reason: `invalid JSON: ${(err as Error).message}` }] }
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true })
  if (doc.errors.length > 0) {
    // The first syntax error is the useful one; the rest usually follow from it.
    const first = doc.errors[0]?.message.split('\n')[0] ?? ''
    return { ok: false, problems: [{ path: '(file)', reason: `invalid YAML: ${first}` }] }
  }
  return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) }
}

/** Validates an already-parsed, interpolated config document. */
export function buildConfig (input: unknown, options: LoadOptions & { file?: string } = {}): LoadResult {
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(input))
  const problems = schemaProblems(ConfigSchema, withDefaults)
  const baseDir = options.file !== undefined ? dirname(options.file) : process.cwd()
  if (problems.length > 0) {
    reportRouteRules(withDefaults, problems)
    return { ok: false, problems }
  }

  const doc = withDefaults as ConfigInput
  const config = normalize(doc, baseDir, options.env?.WEIR_ADMIN_TOKEN, problems)
  if (problems.length > 0) return { ok: false, problems }
  config.file = options.file
  return { ok: true, config }
}

/**
 * Every schema violation of `value`, one per path (a union reports each branch's failure too),
 * with paths like `routes[0].weights.canary` under `prefix`. Shared with the admin API so a
 * value is judged the same way in a file and in a request.
 */
export function schemaProblems (schema: TSchema, value: unknown, prefix = ''): Problem[] {
  const problems: Problem[] = []
  for (const error of Value.Errors(schema, value)) {
    const rel = pointerToPath(error.path)
    const path = prefix === '' ? rel : rel === '(root)' ? prefix : rel.startsWith('[') ? prefix + rel : `${prefix}.${rel}`
    if (problems.some((p) => p.path === path)) continue
    const custom = (error.schema as { errorMessage?: string }).errorMessage
    problems.push({ path, reason: custom ?? lowerFirst(error.message) })
  }
  return problems
}

/**
 * When the schema failed somewhere, still report the cross-field problems of the parts that
 * passed it, so one `weir validate` run lists every mistake.
 */
function reportRouteRules (doc: unknown, problems: Problem[]): void {
  const { routes } = (doc ?? {}) as { routes?: unknown }
  if (!Array.isArray(routes)) return
  routes.forEach((route: { upstreams?: unknown; weights?: unknown } | null, i) => {
    if (route === null || typeof route !== 'object' || !Value.Check(UpstreamsSchema, route.upstreams)) return
    const path = `routes[${i}]`
    const upstreams = normalizeUpstreams(route.upstreams, path, problems)
    if (route.weights === undefined || Value.Check(WeightsSchema, route.weights)) normalizeWeights(route.weights, upstreams, path, problems)
  })
}

function normalize (doc: ConfigInput, baseDir: string, envToken: string | undefined, problems: Problem[]): Config {
  const trusted = buildTrustedProxies(doc.trustedProxies, 'trustedProxies')
  problems.push(...trusted.problems)
  // The file's token wins; WEIR_ADMIN_TOKEN is the fallback so secrets can stay out of files.
  const given = doc.admin.token ?? envToken
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
    stateFile: resolve(baseDir, doc.state.file),
    eventsFile: doc.state.events === undefined
      ? join(dirname(resolve(baseDir, doc.state.file)), 'events.jsonl')
      : resolve(baseDir, doc.state.events),
    cookieSecret: doc.cookieSecret,
    trustedProxies: trusted.list,
    trustedProxyList: doc.trustedProxies,
    versionHeader: doc.versionHeader === false ? false : doc.versionHeader.toLowerCase(),
    maxHeaderBytes: doc.maxHeaderBytes,
    clientHeadersTimeoutMs: durationMs(doc.timeouts.clientHeaders),
    clientIdleTimeoutMs: durationMs(doc.timeouts.clientIdle),
    drainTimeoutMs: durationMs(doc.drainTimeout),
    logLevel: doc.logLevel,
    routes,
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
  input: ShadowInput, upstreams: Partial<Record<UpstreamName, readonly string[]>>, path: string, problems: Problem[],
): ShadowConfig {
  const percentBp = Math.round(input.percent * 100)
  if (Math.abs(input.percent * 100 - percentBp) > 1e-6) problems.push({ path: `${path}.percent`, reason: 'must have at most two decimals' })
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

function normalizeWeights (input: Weights | undefined, upstreams: Partial<Record<UpstreamName, string[]>>, path: string, problems: Problem[]): WeightsBp {
  const { bp, problems: weightProblems } = checkWeights(input ?? { stable: 100 }, (v: Version) => upstreams[v] !== undefined, `${path}.weights`)
  problems.push(...weightProblems)
  return bp
}

function normalizeRoute (
  route: RouteInput, path: string, top: ConfigInput['timeouts'], topMaxBody: string | number,
  baseDir: string, problems: Problem[],
): RouteConfig {
  const upstreams = normalizeUpstreams(route.upstreams, path, problems)
  const bp = normalizeWeights(route.weights, upstreams, path, problems)

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
  const override = route.override === false
    ? false as const
    : { header: route.override.header?.toLowerCase(), cookie: route.override.cookie }
  if (override !== false && override.header === undefined && override.cookie === undefined) {
    problems.push({ path: `${path}.override`, reason: 'must name a header or a cookie (or be false)' })
  }
  return {
    name: route.name,
    hosts: hosts.map((h) => h.toLowerCase()),
    pathPrefix: route.match?.pathPrefix ?? '/',
    upstreams,
    weights: bp,
    userIdHeader: route.stickiness.userId?.header?.toLowerCase(),
    userIdCookie: route.stickiness.userId?.cookie,
    bucketCookie: {
      name: route.stickiness.cookie?.name ?? 'weir_b',
      maxAgeSeconds: route.stickiness.cookie?.maxAge ?? 86400,
    },
    override,
    shadow,
    shadowInput: route.shadow,
    failover: route.failover,
    passHost: route.passHost,
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

function checkReadable (file: string, path: string, problems: Problem[]): void {
  try {
    accessSync(file, constants.R_OK)
  } catch (err) {
    problems.push({ path, reason: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})` })
  }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$/g
const PLACEHOLDER = /__weir_env_([0-9]+)__/g
const WHOLE_PLACEHOLDER = /^__weir_env_([0-9]+)__$/

interface EnvRef { name: string | undefined; fallback: string | undefined }

/**
 * Swaps each ${NAME}, ${NAME:-default} and $$ for a plain-scalar placeholder before parsing,
 * so `{ token: ${TOKEN} }` is valid YAML even inside a flow map and a secret's characters can
 * never change the document's structure.
 */
function extractEnvRefs (text: string): { text: string; refs: EnvRef[] } {
  const refs: EnvRef[] = []
  const replaced = text.replace(ENV_REF, (_whole, name: string | undefined, fallback: string | undefined) => {
    refs.push({ name, fallback })
    return `__weir_env_${refs.length - 1}__`
  })
  return { text: replaced, refs }
}

/** Replaces the placeholders in every string value; a value that is one whole number or boolean keeps that type. */
function interpolate (value: unknown, refs: EnvRef[], env: Readonly<Record<string, string | undefined>>, path: string, problems: Problem[]): unknown {
  if (typeof value === 'string') {
    const resolveRef = (index: string): string => {
      const ref = refs[Number(index)]
      if (ref === undefined) return `__weir_env_${index}__`
      if (ref.name === undefined) return '$'
      const found = env[ref.name]
      if (found !== undefined) return found
      if (ref.fallback !== undefined) return ref.fallback
      problems.push({ path: path === '' ? '(root)' : path, reason: `environment variable ${ref.name} is not set (write \${${ref.name}:-} to allow it empty)` })
      return ''
    }
    const whole = WHOLE_PLACEHOLDER.exec(value)
    if (whole !== null) {
      const resolved = resolveRef(whole[1] as string)
      if (/^-?[0-9]+(\.[0-9]+)?$/.test(resolved)) return Number(resolved)
      if (resolved === 'true' || resolved === 'false') return resolved === 'true'
      return resolved
    }
    return value.replace(PLACEHOLDER, (_m, index: string) => resolveRef(index))
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, refs, env, `${path}[${i}]`, problems))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[key] = interpolate(item, refs, env, path === '' ? key : `${path}.${key}`, problems)
    return out
  }
  return value
}

/** "/routes/0/weights/stable" → "routes[0].weights.stable" */
function pointerToPath (pointer: string): string {
  if (pointer === '') return '(root)'
  let out = ''
  for (const raw of pointer.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    out += /^[0-9]+$/.test(part) ? `[${part}]` : (out === '' ? part : `.${part}`)
  }
  return out
}

function lowerFirst (text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1)
}
