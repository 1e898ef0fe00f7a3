// Every error weir raises or answers with: one table of codes, each with its HTTP status, its
// fixed message and whether it is expected (an operational condition: no stack trace); one error
// class; one serialiser of error bodies. Upstream transport failures map through one table so the
// client never sees an address, a parser message or a stack trace.

import type { UpstreamFailureReason } from './vocabulary.ts'

interface ErrorSpec {
  readonly status: number
  readonly message: string
  /** False only for bugs: those keep their stack trace and are logged. */
  readonly expected: boolean
}

const spec = (status: number, message: string, expected = true): ErrorSpec => ({ status, message, expected })

export const ERRORS = {
  // The data path (answered to proxy clients).
  WEIR_ERR_ROUTE_NOT_FOUND: spec(404, 'no route matches this request'),
  WEIR_ERR_BAD_REQUEST: spec(400, 'the request is malformed'),
  WEIR_ERR_HEADERS_TIMEOUT: spec(408, 'the request head did not arrive in time'),
  WEIR_ERR_BODY_TIMEOUT: spec(408, 'the request body did not arrive in time'),
  WEIR_ERR_BODY_TOO_LARGE: spec(413, 'the request body is larger than this route accepts'),
  WEIR_ERR_HEADERS_TOO_LARGE: spec(431, 'the request headers are too large'),
  WEIR_ERR_TOO_MANY_HEADERS: spec(431, 'the request has more header fields than this proxy accepts'),
  WEIR_ERR_INTERNAL: spec(500, 'the proxy failed to handle this request', false),
  WEIR_ERR_UPSTREAM_REFUSED: spec(502, 'the upstream refused the connection'),
  WEIR_ERR_UPSTREAM_RESET: spec(502, 'the upstream closed the connection before answering'),
  WEIR_ERR_UPSTREAM_BAD_RESPONSE: spec(502, 'the upstream sent an invalid response'),
  WEIR_ERR_UPSTREAM_TLS: spec(502, 'the upstream TLS handshake or certificate check failed'),
  WEIR_ERR_UPSTREAM_DNS: spec(502, 'the upstream host name could not be resolved'),
  WEIR_ERR_UPSTREAM_UNREACHABLE: spec(502, 'the upstream network is unreachable'),
  WEIR_ERR_UPSTREAM_FAILED: spec(502, 'the upstream request failed'),
  WEIR_ERR_NO_UPSTREAM: spec(503, 'no upstream is available for this request'),
  WEIR_ERR_UPSTREAM_TIMEOUT: spec(504, 'the upstream did not answer in time'),
  WEIR_ERR_UPSTREAM_CONNECT_TIMEOUT: spec(504, 'connecting to the upstream timed out'),
  // The admin server and the route operations behind it.
  WEIR_ERR_ADMIN_NOT_FOUND: spec(404, 'no such admin endpoint'),
  WEIR_ERR_ADMIN_UNAUTHORIZED: spec(401, 'a valid admin bearer token is required'),
  WEIR_ERR_ADMIN_CROSS_SITE: spec(403, 'cross-site writes to the admin API are refused'),
  WEIR_ERR_ADMIN_HOST: spec(403, 'the Host header does not name this admin server'),
  WEIR_ERR_ADMIN_INVALID: spec(400, 'the request is invalid'),
  WEIR_ERR_ADMIN_MEDIA_TYPE: spec(415, 'admin writes must be sent as application/json'),
  WEIR_ERR_ADMIN_BODY_TOO_LARGE: spec(413, 'the admin request body is larger than 64 KiB'),
  WEIR_ERR_ADMIN_ROUTE_NOT_FOUND: spec(404, 'no route has this name'),
  WEIR_ERR_ADMIN_STALE_REVISION: spec(412, 'the route changed since the revision given in If-Match'),
  WEIR_ERR_ADMIN_ROLLOUT_ACTIVE: spec(409, 'a rollout drives this route: abort it, or add ?force=true'),
  WEIR_ERR_ADMIN_ROLLOUT_STATE: spec(409, 'the rollout cannot do that in its current phase'),
  WEIR_ERR_ADMIN_STATE_WRITE_FAILED: spec(503, 'the change could not be persisted'),
  // The state store and the event log (they stop a start, or refuse a write).
  WEIR_ERR_STATE_CORRUPT: spec(500, 'the state file is not valid'),
  WEIR_ERR_STATE_UNREADABLE: spec(500, 'the state file cannot be read'),
  WEIR_ERR_STATE_VERSION: spec(500, 'the state file was written in a format this weir does not read'),
  WEIR_ERR_STATE_INVALID: spec(500, 'the new route state is not valid'),
  WEIR_ERR_STATE_WRITE_FAILED: spec(503, 'the state could not be written'),
  WEIR_ERR_STATE_CLOSED: spec(503, 'the state store is closed'),
  WEIR_ERR_STATE_UNAVAILABLE: spec(503, 'the state store (etcd) is unreachable'),
  WEIR_ERR_STATE_CONFLICT: spec(409, 'the route changed while the config was being applied'),
  WEIR_ERR_EVENTLOG_UNREADABLE: spec(500, 'the event log cannot be read'),
  WEIR_ERR_EVENTLOG_WRITE_FAILED: spec(503, 'the event could not be written'),
  WEIR_ERR_EVENTLOG_CLOSED: spec(503, 'the event log is closed'),
  // The proxy listener (proxy/listener-certificate.ts): stops a start, or refuses a reload.
  WEIR_ERR_LISTEN_TLS: spec(500, 'the certificate and key of listen.tls cannot be used'),
  // Worker processes (workers/worker-set.ts).
  WEIR_ERR_WORKER_START: spec(500, 'a worker process could not start'),
  WEIR_ERR_WORKER_APPLY: spec(500, 'a worker could not apply the new snapshot; no worker changed'),
  WEIR_ERR_WORKER_CRASH_LOOP: spec(500, 'worker processes keep crashing'),
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS

export interface UpstreamFailure {
  readonly code: ErrorCode
  readonly reason: UpstreamFailureReason
  /** True when no byte of a response can have been produced: safe to fail over an idempotent request. */
  readonly beforeResponse: boolean
}

const refused: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_REFUSED', reason: 'refused', beforeResponse: true }
const reset: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_RESET', reason: 'reset', beforeResponse: true }
const timeout: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_TIMEOUT', reason: 'timeout', beforeResponse: false }
const connectTimeout: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_CONNECT_TIMEOUT', reason: 'connect_timeout', beforeResponse: true }
const badResponse: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_BAD_RESPONSE', reason: 'bad_response', beforeResponse: false }
const tls: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }
const dns: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_DNS', reason: 'dns', beforeResponse: true }
const unreachable: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_UNREACHABLE', reason: 'unreachable', beforeResponse: true }
const poolClosed: UpstreamFailure = { code: 'WEIR_ERR_NO_UPSTREAM', reason: 'unavailable', beforeResponse: true }
const clientAbort: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_FAILED', reason: 'client_abort', beforeResponse: false }
const other: UpstreamFailure = { code: 'WEIR_ERR_UPSTREAM_FAILED', reason: 'other', beforeResponse: false }

/** Transport error code (undici, node:net, OpenSSL) → what the client is told. */
const UPSTREAM_FAILURES: Readonly<Record<string, UpstreamFailure>> = {
  ECONNREFUSED: refused,
  ECONNRESET: reset,
  EPIPE: reset,
  UND_ERR_SOCKET: reset,
  // The pool was closed (a reload retired this upstream) before the request could be sent.
  UND_ERR_CLOSED: poolClosed,
  UND_ERR_DESTROYED: poolClosed,
  UND_ERR_CONNECT_TIMEOUT: connectTimeout,
  UND_ERR_HEADERS_TIMEOUT: timeout,
  UND_ERR_BODY_TIMEOUT: timeout,
  ETIMEDOUT: connectTimeout,
  ENOTFOUND: dns,
  EAI_AGAIN: dns,
  EHOSTUNREACH: unreachable,
  ENETUNREACH: unreachable,
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: badResponse,
  UND_ERR_INFO: badResponse,
  FST_REPLY_FROM_BAD_GATEWAY: badResponse,
  UND_ERR_ABORTED: clientAbort,
  DEPTH_ZERO_SELF_SIGNED_CERT: tls,
  SELF_SIGNED_CERT_IN_CHAIN: tls,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: tls,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: tls,
  CERT_HAS_EXPIRED: tls,
  ERR_TLS_CERT_ALTNAME_INVALID: tls,
  ERR_SSL_WRONG_VERSION_NUMBER: tls,
}

interface ErrorLike { code?: unknown; name?: unknown; cause?: unknown }

/**
 * Classifies a failed upstream request. Wrappers (reply-from, undici) keep the original
 * error in `cause`; the deepest known code wins because it is the most specific.
 */
export function classifyUpstreamError (err: unknown): UpstreamFailure {
  let found: UpstreamFailure | undefined
  let e = err as ErrorLike | undefined
  for (let depth = 0; e != null && typeof e === 'object' && depth < 5; depth++) {
    const code = e.code
    if (typeof code === 'string') {
      const known = UPSTREAM_FAILURES[code] ?? (code.startsWith('HPE_') ? badResponse : undefined)
      if (known !== undefined) found = known
    } else if (e.name === 'HTTPParserError') {
      // undici's parser errors carry a code only for some llhttp failures.
      found = badResponse
    }
    e = e.cause as ErrorLike | undefined
  }
  return found ?? other
}

/** A path in a document (config file, request body) and what is wrong there. */
export interface Problem {
  readonly path: string
  readonly reason: string
  /** Where a config file's problem is: the file as given, and the line when the file has one for the path. */
  readonly file?: string
  readonly line?: number
}

/**
 * weir's one error class. `code` picks the status and the default message from ERRORS;
 * `problems` name the fields of a refused input. Expected errors capture no stack: the message
 * is the whole story.
 */
export class WeirError extends Error {
  override readonly name = 'WeirError'
  readonly code: ErrorCode
  readonly problems: readonly Problem[]
  /** The file concerned (a state file, an event log), when there is one. */
  readonly file: string | undefined

  constructor (code: ErrorCode, message: string = ERRORS[code].message, options: ErrorOptions & { problems?: readonly Problem[]; file?: string } = {}) {
    const limit = Error.stackTraceLimit
    if (ERRORS[code].expected) Error.stackTraceLimit = 0
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    Error.stackTraceLimit = limit
    this.code = code
    this.problems = options.problems ?? []
    this.file = options.file
  }

  get status (): number {
    return ERRORS[this.code].status
  }
}

/**
 * The JSON body of an error weir answers itself: `{error, message, ...extra, requestId}`.
 * `requestId` is embedded as JSON. Without a message or extra fields the body is concatenated
 * (the proxy's error replies are on the hot path; table messages need no escaping).
 */
export function errorBody (code: ErrorCode, requestId: string, message?: string, extra?: Readonly<Record<string, unknown>>): string {
  if (message === undefined && extra === undefined) {
    return '{"error":"' + code + '","message":"' + ERRORS[code].message + '","requestId":' + JSON.stringify(requestId) + '}'
  }
  return JSON.stringify({ error: code, message: message ?? ERRORS[code].message, ...extra, requestId })
}
