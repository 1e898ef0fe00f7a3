// When a failed request is sent again (docs/proxying.md, "Failover" and "Hosts"): to another host
// of its version, once, budget permitting (retry-budget.ts); to stable, once, only for a canary or
// green attempt on a route that allows it. Either only for an idempotent request without a body,
// and only when the attempt failed before any byte of a response could have been produced.

import type { UpstreamFailure } from '../errors.ts'
import type { Version } from '../vocabulary.ts'

/** RFC 9110 §9.2.2. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/**
 * Whether an attempt may fail over at all (decided before it is sent); `allowed` is the route's
 * `failover` setting. Positional arguments: it runs once per proxied request and allocates nothing.
 */
export function mayFailOver (version: Version, allowed: boolean, method: string, hasBody: boolean): boolean {
  return version !== 'stable' && allowed && mayRetry(method, hasBody)
}

/** Whether an attempt may be retried on another host of its version (the route has a retry budget). */
export function mayRetry (method: string, hasBody: boolean): boolean {
  return !hasBody && IDEMPOTENT.has(method)
}

/** Whether this failure of such an attempt is one to fail over: nothing of a response can have reached the client. */
export function failsOver (failure: UpstreamFailure): boolean {
  return failure.beforeResponse
}
