// The failover rule (src/proxy/failover.ts), table-tested: only a canary or green attempt of an
// idempotent request without a body, on a route that allows it, may fail over to stable, and only
// for a failure that happened before any byte of a response.

import t from 'tap'
import { classifyUpstreamError } from '../../src/errors.ts'
import { failsOver, mayFailOver } from '../../src/proxy/failover.ts'

t.test('which attempts may fail over', async (t) => {
  const cases: [Parameters<typeof mayFailOver>, boolean, string][] = [
    [['canary', true, 'GET', false], true, 'a bodiless canary GET'],
    [['green', true, 'HEAD', false], true, 'a green HEAD'],
    [['canary', true, 'PUT', false], true, 'PUT is idempotent'],
    [['canary', true, 'DELETE', false], true, 'DELETE is idempotent'],
    [['stable', true, 'GET', false], false, 'stable has nothing to fail over to'],
    [['canary', false, 'GET', false], false, 'the route turned failover off'],
    [['canary', true, 'POST', false], false, 'POST is not idempotent'],
    [['canary', true, 'PATCH', false], false, 'PATCH is not idempotent'],
    [['canary', true, 'PUT', true], false, 'a request body cannot be sent twice'],
  ]
  for (const [args, expected, what] of cases) t.equal(mayFailOver(...args), expected, what)
})

t.test('which failures fail over: those before any response byte', async (t) => {
  const failure = (code: string): ReturnType<typeof classifyUpstreamError> => classifyUpstreamError(Object.assign(new Error(code), { code }))
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'UND_ERR_CLOSED', 'DEPTH_ZERO_SELF_SIGNED_CERT']) {
    t.ok(failsOver(failure(code)), `${code} fails over`)
  }
  for (const code of ['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'HPE_INVALID_CONSTANT', 'UND_ERR_ABORTED', 'SOMETHING_ELSE']) {
    t.notOk(failsOver(failure(code)), `${code} does not fail over (the upstream may have acted on the request)`)
  }
})
