// What crosses the seam from the control plane to the data path: one immutable snapshot of every
// route (the config file's, with the live weights, upstreams and shadow settings applied) plus the
// settings the data path needs. Plain data (structured-clone safe), so it can be handed to
// another process as it is. Built by state/live-routes.ts; read by proxy/data-path.ts.

import type { Config, RouteConfig } from './config/model.ts'

export interface DataPathSnapshot {
  /** Every route in config order, as it serves traffic. */
  readonly routes: readonly RouteConfig[]
  /** Response header naming the version that answered; false: none. */
  readonly versionHeader: string | false
  /** Addresses and CIDRs of hops whose X-Forwarded-* headers are trusted, as the config lists them. */
  readonly trustedProxies: readonly string[]
  readonly logLevel: Config['logLevel']
  /** Most header fields a request may have (431 above). */
  readonly maxHeaders: number
  readonly tracing: Config['tracing']
  /** Share of requests written to the access log (0: off). */
  readonly accessLogSample: number
  /**
   * HMAC key of the bucket cookie, the same in every process so a cookie verifies wherever it
   * lands. Read from the first snapshot only (a change takes effect at restart).
   */
  readonly cookieSecret: string
  /**
   * The controller's smoke token (routing/smoke.ts): a request with `x-weir-smoke: <version>
   * <token>` is routed to that version on any route, override or not. Random per weir process,
   * the same in every worker; read from the first snapshot only. Never logged or shown.
   */
  readonly smokeToken: string
  /**
   * The proxy listener's settings; read from the first snapshot only (a change takes effect at
   * restart), except the TLS files, which a newer `tls.revision` has re-read.
   */
  readonly server: ServerSettings
}

export interface ServerSettings {
  /** HTTPS when set; whether it is set is read from the first snapshot only. */
  readonly tls: ListenerTls | undefined
  readonly maxHeaderBytes: number
  /** How long a client may take to send its request head. */
  readonly clientHeadersTimeoutMs: number
  /** How long an idle keep-alive connection stays open. */
  readonly clientIdleTimeoutMs: number
}

/** Where the listener's certificate and key are: file names only, never key material (the snapshot is shown and sent to workers). */
export interface ListenerTls {
  readonly cert: string
  readonly key: string
  /** Moves on with every config reload: each data path then re-reads the files (proxy/listener-certificate.ts). */
  readonly revision: number
}
