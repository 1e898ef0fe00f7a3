// The normalized config every layer reads: durations in ms, sizes in bytes, weights in basis
// points, header names lower-cased. Produced only by normalize.ts from a schema-valid document.

import type { BlockList } from 'node:net'
import type { UpstreamName, Version } from '../vocabulary.ts'
import type { ConfigInput, RolloutPolicy, RuleInput, ShadowInput } from './schema.ts'

/** Where and how to reach etcd (config `state.etcd`). */
export interface EtcdSettings {
  endpoints: string[]
  prefix: string
  /** Each request's deadline. */
  timeoutMs: number
  auth: { username: string; password: string } | undefined
  /** Absolute paths of PEM files. */
  tls: { ca: string; cert: string | undefined; key: string | undefined } | undefined
}

/** Weights in hundredths of a percent (basis points); they sum to 10 000. */
export interface WeightsBp { stable: number; canary: number; green: number }

export interface Timeouts { connectMs: number; headersMs: number; bodyIdleMs: number; requestBodyMs: number }

/** A route's shadow settings, normalized (see docs/routing.md, "Shadow"). */
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

/** One condition of a match rule: a header (lower-case name), cookie or query parameter, tested one way. */
export interface RuleCondition {
  source: 'header' | 'cookie' | 'query'
  name: string
  op: 'exact' | 'prefix' | 'regex' | 'present'
  /** The expected value, prefix or pattern; absent for `present`. */
  value?: string
}

export interface MatchRule {
  conditions: RuleCondition[]
  version: Version
}

/** A route's override (opt-in). `from`: the entries as the file lists them (validated). */
export interface OverrideConfig {
  header: string | undefined
  cookie: string | undefined
  secret: string | undefined
  from: string[] | undefined
}

/** Active health checks of a version's hosts (proxy/health-checker.ts). */
export interface HealthCheckConfig {
  path: string
  intervalMs: number
  timeoutMs: number
  healthyThreshold: number
  unhealthyThreshold: number
  expectedStatuses: number[]
}

/** Passive health (proxy/host-health.ts): hosts that keep failing are ejected for a while. */
export interface OutlierConfig {
  consecutiveFailures: number
  baseEjectionMs: number
  maxEjectionMs: number
  maxEjectedPercent: number
}

/** The retry budget of a version: retries on another host, at most this share of its requests (proxy/retry-budget.ts). */
export interface RetryConfig {
  budgetPercent: number
  minRetries: number
  windowMs: number
}

export type BalanceMode = 'round-robin' | 'least-request'

/** How a route's hosts within each version are balanced, checked, ejected and retried. */
export interface UpstreamPolicy {
  outlier: OutlierConfig | false
  retry: RetryConfig | false
  versions: Record<Version, { balance: BalanceMode; healthCheck: HealthCheckConfig | undefined }>
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
  override: OverrideConfig | false
  /** Match rules, before the weights; the first whose every condition holds picks the version. */
  rules: MatchRule[]
  shadow: ShadowConfig
  /** The route's `shadow` object as the file gives it (defaults applied): what live settings are merged into. */
  shadowInput: ShadowInput
  /** The route's `rules` as the file gives them ([] when none): what live rules are compared with. */
  rulesInput: RuleInput[]
  upstreamPolicy: UpstreamPolicy
  failover: boolean
  passHost: boolean
  /** Responses carry the Vary of the request headers the version choice reads (proxy-routes.ts). */
  vary: boolean
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
  /** The ops listener (healthz, readyz, metrics only); undefined: none. */
  ops: { host: string; port: number } | undefined
  stateFile: string
  /** Live state in etcd instead of the state file (docs/fleet.md); undefined: the state file. */
  etcd: EtcdSettings | undefined
  /**
   * This replica's name and the admin URL others reach it at (undefined: the admin listener's
   * address). idGiven: the file names the id (else it is derived from the host and admin port,
   * so a reload that changes only admin.port does not change the fleet the operator wrote).
   */
  fleet: { id: string; idGiven: boolean; advertise: string | undefined; leaseTtlSeconds: number }
  eventsFile: string
  cookieSecret: string | undefined
  /** Default HMAC key of webhook signatures (a webhook's own `secret` wins). */
  webhookSecret: string | undefined
  trustedProxies: BlockList
  trustedProxyList: string[]
  versionHeader: string | false
  maxHeaderBytes: number
  /** Most header fields a request may have (431 above). */
  maxHeaders: number
  /** W3C Trace Context: start a trace for requests without a valid traceparent. */
  tracing: TracingConfig
  /** Share of requests written to the access log: 0 off, 1 every request. */
  accessLogSample: number
  clientHeadersTimeoutMs: number
  clientIdleTimeoutMs: number
  drainTimeoutMs: number
  /** Data-path processes, `auto` resolved (docs/workers.md): 1 is the single-process mode. */
  workers: number
  logLevel: ConfigInput['logLevel']
  routes: RouteConfig[]
}

export interface TracingConfig { generate: boolean }

/** A bearer token of the admin API and the name it acts under in the event log. */
export interface AdminToken { name: string; token: string }
