// Decides which version serves a request (docs/routing.md): the controller's smoke token or the
// route's override, then the match rules, then a bucket from the user id, the signed cookie or
// chance, then the bucket's range. Synchronous and allocation-free (a query-parameter rule reads
// the query string; a secret or `from` check hashes and parses what the client sent).

import type { IncomingHttpHeaders } from 'node:http'
import type { BlockList } from 'node:net'
import { BUCKETS, type DecisionReason, type Version } from '../vocabulary.ts'
import { readCookie } from './bucket-cookie.ts'
import type { RoutingRoute } from './route-table.ts'
import { clientAddressOf, isIn, OVERRIDE_SECRET_HEADER, secretMatches, SMOKE_HEADER, smokeVersionOf } from './smoke.ts'

/** What pickVersion writes; the proxy's per-request exchange object implements it. */
export interface Decision {
  version: Version
  decidedBy: DecisionReason
  /** The request's bucket, or -1 for an override or a rule. */
  bucket: number
  /** True when the client has no valid bucket cookie and must be sent one. */
  newCookie: boolean
}

/**
 * `peer` (the socket's address) and `trusted` (trustedProxies) matter only to an override with
 * `from`; without them such an override is never honoured.
 */
export function pickVersion (route: RoutingRoute, headers: IncomingHttpHeaders, url: string, out: Decision,
  peer?: string, trusted: BlockList | null = null): void {
  out.newCookie = false
  const cookies = headers.cookie
  if (route.smokeToken !== null && headers[SMOKE_HEADER] !== undefined) {
    const forced = servedVersion(route, smokeVersionOf(route.smokeToken, headers))
    if (forced !== undefined) {
      out.version = forced
      out.decidedBy = 'override'
      out.bucket = -1
      return
    }
  }
  if (route.overrideHeader !== undefined || route.overrideCookieEq !== undefined) {
    const forced = overrideOf(route, headers, cookies, peer, trusted)
    if (forced !== undefined) {
      out.version = forced
      out.decidedBy = 'override'
      out.bucket = -1
      return
    }
  }
  const rules = route.rules
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as RoutingRoute['rules'][number]
    if (rule.matches(headers, url)) {
      out.version = rule.version
      out.decidedBy = 'rule'
      out.bucket = -1
      return
    }
  }
  let bucket = -1
  let userId: string | undefined
  if (route.userIdHeader !== undefined) {
    const value = headers[route.userIdHeader]
    if (typeof value === 'string' && value !== '') userId = value
  }
  if (userId === undefined && route.userIdCookieEq !== undefined) userId = readCookie(cookies, route.userIdCookieEq)
  if (userId !== undefined) {
    bucket = route.userBucket(userId)
    out.decidedBy = 'user'
  } else {
    bucket = route.bucketCookie.read(cookies)
    if (bucket !== -1) {
      out.decidedBy = 'cookie'
    } else {
      bucket = Math.floor(Math.random() * BUCKETS)
      out.decidedBy = 'random'
      out.newCookie = true
    }
  }
  out.bucket = bucket
  out.version = versionOfBucket(route, bucket)
}

export function versionOfBucket (route: RoutingRoute, bucket: number): Version {
  if (bucket < route.canaryEnd) return 'canary'
  if (bucket >= route.greenStart) return 'green'
  return 'stable'
}

/**
 * The version an override names, when it has an upstream and the route's secret and `from` (if
 * any) allow it. Unknown names and "shadow" are ignored.
 */
function overrideOf (route: RoutingRoute, headers: IncomingHttpHeaders, cookies: string | undefined,
  peer: string | undefined, trusted: BlockList | null): Version | undefined {
  let named: string | undefined
  if (route.overrideHeader !== undefined) {
    const value = headers[route.overrideHeader]
    if (typeof value === 'string') named = value
  }
  if (named === undefined && route.overrideCookieEq !== undefined) named = readCookie(cookies, route.overrideCookieEq)
  if (named === undefined) return undefined
  if (route.overrideSecret !== null && !secretMatches(route.overrideSecret, headers[OVERRIDE_SECRET_HEADER])) return undefined
  if (route.overrideFrom !== null && (peer === undefined || !isIn(route.overrideFrom, clientAddressOf(peer, headers['x-forwarded-for'], trusted)))) return undefined
  return servedVersion(route, named)
}

function servedVersion (route: RoutingRoute, named: string | undefined): Version | undefined {
  switch (named) {
    case 'stable': return 'stable'
    case 'canary': return route.serves.canary ? 'canary' : undefined
    case 'green': return route.serves.green ? 'green' : undefined
    default: return undefined
  }
}
