// GET /api/v1/routes/:route/cohort: the version the proxy would give a user id (or a bucket
// cookie) right now, from the snapshot the data path runs on and through pickVersion itself,
// so an app that must agree with the proxy can ask instead of re-implementing the hash. The
// override and the match rules are not applied: they read a request this endpoint does not have.

import { WeirError } from '../errors.ts'
import { createBucketSigner } from '../routing/bucket-cookie.ts'
import { pickVersion, type Decision } from '../routing/pick-version.ts'
import { compileRouting } from '../routing/route-table.ts'
import type { DataPathSnapshot } from '../snapshot.ts'
import type { Version } from '../vocabulary.ts'

export interface Cohort {
  route: string
  userId: string | null
  bucket: number
  version: Version
  reason: 'user' | 'cookie'
}

const MAX_PARAM = 1024

/** The cohort of `query.userId` or `query.cookie` (exactly one) on the route as the snapshot serves it. */
export function cohortOf (snapshot: DataPathSnapshot, routeName: string, query: Record<string, unknown>): Cohort {
  const config = snapshot.routes.find((r) => r.name === routeName)
  if (config === undefined) throw new WeirError('WEIR_ERR_ADMIN_ROUTE_NOT_FOUND', `no route is named ${JSON.stringify(routeName)}`)
  const userId = query.userId
  const cookie = query.cookie
  if ((userId === undefined) === (cookie === undefined)) throw invalid('query', 'needs exactly one of userId or cookie')
  for (const [name, value] of [['userId', userId], ['cookie', cookie]] as const) {
    if (value !== undefined && (typeof value !== 'string' || value === '' || value.length > MAX_PARAM)) {
      throw invalid(name, `must be one non-empty value of at most ${MAX_PARAM} characters`)
    }
  }
  // The route without its override and rules: what is left of pickVersion is the bucket and its range.
  const routing = { ...compileRouting(config, createBucketSigner(snapshot.cookieSecret)), rules: [], overrideHeader: undefined, overrideCookieEq: undefined, smokeToken: null }
  const headers: Record<string, string> = {}
  if (typeof userId === 'string') {
    if (routing.userIdHeader !== undefined) headers[routing.userIdHeader] = userId
    else if (config.userIdCookie !== undefined) headers.cookie = `${config.userIdCookie}=${userId}`
    else throw invalid('userId', `route ${routeName} has no user-id stickiness (stickiness.userId)`)
  } else {
    headers.cookie = `${config.bucketCookie.name}=${cookie as string}`
  }
  const out: Decision = { version: 'stable', decidedBy: 'random', bucket: -1, newCookie: false }
  pickVersion(routing, headers, '/', out)
  if (out.decidedBy !== 'user' && out.decidedBy !== 'cookie') {
    throw invalid('cookie', `is not a valid bucket cookie of route ${routeName} (the proxy would ignore it and pick a random bucket)`)
  }
  return { route: routeName, userId: typeof userId === 'string' ? userId : null, bucket: out.bucket, version: out.version, reason: out.decidedBy }
}

function invalid (path: string, reason: string): WeirError {
  return new WeirError('WEIR_ERR_ADMIN_INVALID', `${path}: ${reason}`, { problems: [{ path, reason }] })
}
