import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERRORS, classifyUpstreamError } from '../../src/errors.ts'

t.test('every error code is unique, has a 4xx/5xx status and is documented in the README', async (t) => {
  const readme = readFileSync('README.md', 'utf8')
  for (const [code, { status }] of Object.entries(ERRORS)) {
    t.match(code, /^WEIR_ERR_[A-Z_]+$/)
    t.ok(status >= 400 && status < 600, `${code} has an error status`)
    t.ok(readme.includes(code), `${code} is in the README`)
  }
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
