import t from 'tap'
import { ERRORS, classifyUpstreamError, type ErrorCode, type UpstreamFailure } from '../../src/errors.ts'

const codes = Object.keys(ERRORS) as ErrorCode[]

t.test('every error code is WEIR_ERR_ and upper-case words, with a whole 4xx/5xx status and a message of its own', async (t) => {
  t.ok(codes.length > 0, 'the table is not empty')
  const byMessage = new Map<string, ErrorCode[]>()
  for (const code of codes) {
    const { status, message } = ERRORS[code]
    t.match(code, /^WEIR_ERR_[A-Z]+(_[A-Z]+)*$/, `${code}: the code's form`)
    t.ok(Number.isInteger(status) && status >= 400 && status < 600, `${code}: ${status} is an error status`)
    t.ok(message.trim() !== '' && message === message.trim(), `${code}: the message is not empty or padded`)
    byMessage.set(message, [...(byMessage.get(message) ?? []), code])
  }
  // Two codes with one message would tell a client two different things the same way.
  t.same([...byMessage.values()].filter((shared) => shared.length > 1), [], 'no two codes share a message')
})

// Every transport code weir knows, with what it must become. A failure class is one reason; the
// status of its code is always a 5xx (the upstream failed, not the client).
const TRANSPORT: Array<[transportCode: string, expected: UpstreamFailure]> = [
  ['ECONNREFUSED', { code: 'WEIR_ERR_UPSTREAM_REFUSED', reason: 'refused', beforeResponse: true }],
  ['ECONNRESET', { code: 'WEIR_ERR_UPSTREAM_RESET', reason: 'reset', beforeResponse: true }],
  ['EPIPE', { code: 'WEIR_ERR_UPSTREAM_RESET', reason: 'reset', beforeResponse: true }],
  ['UND_ERR_SOCKET', { code: 'WEIR_ERR_UPSTREAM_RESET', reason: 'reset', beforeResponse: true }],
  ['UND_ERR_CLOSED', { code: 'WEIR_ERR_NO_UPSTREAM', reason: 'unavailable', beforeResponse: true }],
  ['UND_ERR_DESTROYED', { code: 'WEIR_ERR_NO_UPSTREAM', reason: 'unavailable', beforeResponse: true }],
  ['UND_ERR_CONNECT_TIMEOUT', { code: 'WEIR_ERR_UPSTREAM_CONNECT_TIMEOUT', reason: 'connect_timeout', beforeResponse: true }],
  ['ETIMEDOUT', { code: 'WEIR_ERR_UPSTREAM_CONNECT_TIMEOUT', reason: 'connect_timeout', beforeResponse: true }],
  // The request may have reached the upstream and had effects: never safe to repeat.
  ['UND_ERR_HEADERS_TIMEOUT', { code: 'WEIR_ERR_UPSTREAM_TIMEOUT', reason: 'timeout', beforeResponse: false }],
  ['UND_ERR_BODY_TIMEOUT', { code: 'WEIR_ERR_UPSTREAM_TIMEOUT', reason: 'timeout', beforeResponse: false }],
  ['ENOTFOUND', { code: 'WEIR_ERR_UPSTREAM_DNS', reason: 'dns', beforeResponse: true }],
  ['EAI_AGAIN', { code: 'WEIR_ERR_UPSTREAM_DNS', reason: 'dns', beforeResponse: true }],
  ['EHOSTUNREACH', { code: 'WEIR_ERR_UPSTREAM_UNREACHABLE', reason: 'unreachable', beforeResponse: true }],
  ['ENETUNREACH', { code: 'WEIR_ERR_UPSTREAM_UNREACHABLE', reason: 'unreachable', beforeResponse: true }],
  ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', { code: 'WEIR_ERR_UPSTREAM_BAD_RESPONSE', reason: 'bad_response', beforeResponse: false }],
  ['UND_ERR_INFO', { code: 'WEIR_ERR_UPSTREAM_BAD_RESPONSE', reason: 'bad_response', beforeResponse: false }],
  ['FST_REPLY_FROM_BAD_GATEWAY', { code: 'WEIR_ERR_UPSTREAM_BAD_RESPONSE', reason: 'bad_response', beforeResponse: false }],
  ['HPE_INVALID_CONSTANT', { code: 'WEIR_ERR_UPSTREAM_BAD_RESPONSE', reason: 'bad_response', beforeResponse: false }],
  ['UND_ERR_ABORTED', { code: 'WEIR_ERR_UPSTREAM_FAILED', reason: 'client_abort', beforeResponse: false }],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['SELF_SIGNED_CERT_IN_CHAIN', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['CERT_HAS_EXPIRED', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['ERR_TLS_CERT_ALTNAME_INVALID', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['ERR_SSL_WRONG_VERSION_NUMBER', { code: 'WEIR_ERR_UPSTREAM_TLS', reason: 'tls', beforeResponse: true }],
  ['SOMETHING_ELSE', { code: 'WEIR_ERR_UPSTREAM_FAILED', reason: 'other', beforeResponse: false }],
]

t.test('each transport failure maps to its reason and to a 5xx code in ERRORS, one code per reason', async (t) => {
  const codeOfReason = new Map<string, Set<string>>()
  for (const [transportCode, expected] of TRANSPORT) {
    const failure = classifyUpstreamError(Object.assign(new Error('x'), { code: transportCode }))
    t.same(failure, expected, `${transportCode} → ${expected.reason}`)
    t.ok(Object.hasOwn(ERRORS, failure.code), `${transportCode}: ${failure.code} is in the table`)
    const status = ERRORS[failure.code]?.status ?? 0
    t.ok(status >= 500 && status < 600 && status !== 500, `${transportCode}: ${failure.code} is a 5xx other than 500 (${status})`)
    codeOfReason.set(failure.reason, (codeOfReason.get(failure.reason) ?? new Set()).add(failure.code))
  }
  t.same([...codeOfReason].filter(([, c]) => c.size > 1), [], 'every reason has one error code')
  t.same([...codeOfReason.keys()].sort(), ['bad_response', 'client_abort', 'connect_timeout', 'dns', 'other', 'refused', 'reset', 'timeout', 'tls', 'unavailable', 'unreachable'],
    'every failure class is covered')
})

t.test('upstream failures map through the table, deepest known cause first, never to 500', async (t) => {
  const wrap = (code: string): Error => Object.assign(new Error('wrapped'), { code: 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR', cause: Object.assign(new Error('x'), { code }) })
  t.match(classifyUpstreamError(wrap('ECONNREFUSED')), { code: 'WEIR_ERR_UPSTREAM_REFUSED', reason: 'refused', beforeResponse: true })
  t.match(classifyUpstreamError(wrap('UND_ERR_HEADERS_TIMEOUT')), { code: 'WEIR_ERR_UPSTREAM_TIMEOUT', reason: 'timeout' })
  t.match(classifyUpstreamError(wrap('UND_ERR_CONNECT_TIMEOUT')), { code: 'WEIR_ERR_UPSTREAM_CONNECT_TIMEOUT' })
  t.match(classifyUpstreamError(Object.assign(new Error(), { code: 'UND_ERR_SOCKET', cause: Object.assign(new Error(), { code: 'ECONNRESET' }) })), { reason: 'reset' })
  t.match(classifyUpstreamError(Object.assign(new Error(), { name: 'HTTPParserError' })), { reason: 'bad_response' })
  t.match(classifyUpstreamError(wrap('DEPTH_ZERO_SELF_SIGNED_CERT')), { code: 'WEIR_ERR_UPSTREAM_TLS' })
  t.match(classifyUpstreamError(wrap('UND_ERR_CLOSED')), { code: 'WEIR_ERR_NO_UPSTREAM', reason: 'unavailable', beforeResponse: true })
  t.match(classifyUpstreamError(new Error('mystery')), { code: 'WEIR_ERR_UPSTREAM_FAILED', reason: 'other' })
  t.match(classifyUpstreamError('not even an error'), { code: 'WEIR_ERR_UPSTREAM_FAILED' })
})
