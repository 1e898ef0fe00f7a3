// Decides which version serves a request (docs/routing.md): override, then the match rules, then
// a bucket from the user id, the signed cookie or chance, then the bucket's range. Synchronous
// and allocation-free (a query-parameter rule reads the query string).

import type { IncomingHttpHeaders } from 'node:http'
import { BUCKETS, type DecisionReason, type Version } from '../vocabulary.ts'
import { readCookie } from './bucket-cookie.ts'
import type { RoutingRoute } from './route-table.ts'

/** What pickVersion writes; the proxy's per-request exchange object implements it. */
export interface Decision {
  version: Version
  decidedBy: DecisionReason
  /** The request's bucket, or -1 for an override or a rule. */
  bucket: number
  /** True when the client has no valid bucket cookie and must be sent one. */
  newCookie: boolean
}

export function pickVersion (route: RoutingRoute, headers: IncomingHttpHeaders, url: string, out: Decision): void {
  out.newCookie = false
  const cookies = headers.cookie
  if (route.overrideHeader !== undefined || route.overrideCookieEq !== undefined) {
    const forced = overrideOf(route, headers, cookies)
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

/** The version an override names, when it has an upstream. Unknown names and "shadow" are ignored. */
function overrideOf (route: RoutingRoute, headers: IncomingHttpHeaders, cookies: string | undefined): Version | undefined {
  let named: string | undefined
  if (route.overrideHeader !== undefined) {
    const value = headers[route.overrideHeader]
    if (typeof value === 'string') named = value
  }
  if (named === undefined && route.overrideCookieEq !== undefined) named = readCookie(cookies, route.overrideCookieEq)
  switch (named) {
    case 'stable': return 'stable'
    case 'canary': return route.serves.canary ? 'canary' : undefined
    case 'green': return route.serves.green ? 'green' : undefined
    default: return undefined
  }
}
