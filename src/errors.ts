// Every error weir itself answers with: one code, one HTTP status, one fixed message.
// Upstream transport failures map through one table so the client never sees an address,
// a parser message or a stack trace.

export const ERRORS = {
  WEIR_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'no route matches this request' },
  WEIR_ERR_BAD_REQUEST: { status: 400, message: 'the request is malformed' },
  WEIR_ERR_ADMIN_NOT_FOUND: { status: 404, message: 'no such admin endpoint' },
  WEIR_ERR_ADMIN_UNAUTHORIZED: { status: 401, message: 'a valid admin bearer token is required' },
  WEIR_ERR_ADMIN_CROSS_SITE: { status: 403, message: 'cross-site writes to the admin API are refused' },
  WEIR_ERR_ADMIN_HOST: { status: 403, message: 'the Host header does not name this admin server' },
  WEIR_ERR_ADMIN_INVALID: { status: 400, message: 'the request is invalid' },
  WEIR_ERR_ADMIN_MEDIA_TYPE: { status: 415, message: 'admin writes must be sent as application/json' },
  WEIR_ERR_ADMIN_BODY_TOO_LARGE: { status: 413, message: 'the admin request body is larger than 64 KiB' },
  WEIR_ERR_ADMIN_ROUTE_NOT_FOUND: { status: 404, message: 'no route has this name' },
  WEIR_ERR_ADMIN_STALE_REVISION: { status: 412, message: 'the route changed since the revision given in If-Match' },
  WEIR_ERR_ADMIN_ROLLOUT_ACTIVE: { status: 409, message: 'a rollout drives this route: abort it, or add ?force=true' },
  WEIR_ERR_ADMIN_ROLLOUT_STATE: { status: 409, message: 'the rollout cannot do that in its current phase' },
  WEIR_ERR_ADMIN_STATE_WRITE_FAILED: { status: 503, message: 'the change could not be persisted' },
  WEIR_ERR_BODY_TIMEOUT: { status: 408, message: 'the request body did not arrive in time' },
  WEIR_ERR_BODY_TOO_LARGE: { status: 413, message: 'the request body is larger than this route accepts' },
  WEIR_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'the request headers are too large' },
  WEIR_ERR_INTERNAL: { status: 500, message: 'the proxy failed to handle this request' },
  WEIR_ERR_UPSTREAM_REFUSED: { status: 502, message: 'the upstream refused the connection' },
  WEIR_ERR_UPSTREAM_RESET: { status: 502, message: 'the upstream closed the connection before answering' },
  WEIR_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, message: 'the upstream sent an invalid response' },
  WEIR_ERR_UPSTREAM_TLS: { status: 502, message: 'the upstream TLS handshake or certificate check failed' },
  WEIR_ERR_UPSTREAM_DNS: { status: 502, message: 'the upstream host name could not be resolved' },
  WEIR_ERR_UPSTREAM_UNREACHABLE: { status: 502, message: 'the upstream network is unreachable' },
  WEIR_ERR_UPSTREAM_FAILED: { status: 502, message: 'the upstream request failed' },
  WEIR_ERR_NO_UPSTREAM: { status: 503, message: 'no upstream is available for this request' },
  WEIR_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream did not answer in time' },
  WEIR_ERR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'connecting to the upstream timed out' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

/** Label values of `weir_upstream_errors_total{reason}`. */
export type UpstreamFailureReason =
  | 'refused' | 'reset' | 'timeout' | 'connect_timeout' | 'bad_response'
  | 'tls' | 'dns' | 'unreachable' | 'unavailable' | 'client_abort' | 'other'

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

/** The JSON body of an error weir answers itself. `requestId` is already safe to embed. */
export function errorBody (code: ErrorCode, requestId: string): string {
  return '{"error":"' + code + '","message":"' + ERRORS[code].message + '","requestId":' + JSON.stringify(requestId) + '}'
}

/** An error body with its own message (and any extra fields, such as `problems`). */
export function errorJson (code: ErrorCode, requestId: string, message: string = ERRORS[code].message, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ error: code, message, ...extra, requestId })
}

/**
 * Base of expected operational errors (a corrupt state file, a closed store): the message is
 * the whole story, so no stack trace is captured.
 */
export class OperationalError<Code extends string> extends Error {
  readonly code: Code

  constructor (code: Code, message: string, options?: ErrorOptions) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message, options)
    Error.stackTraceLimit = limit
    this.code = code
  }
}
