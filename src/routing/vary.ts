// The Vary a route's responses carry: every request header its version choice reads, so a cache
// that honours Vary never serves one client's version to another. Computed once per snapshot.

import type { RouteConfig } from '../config/model.ts'
import { OVERRIDE_SECRET_HEADER } from './smoke.ts'

/**
 * `Cookie` (the bucket cookie, and a user-id, override or rule cookie), the user-id header, the
 * override header (and the secret's, when one is asked) and every header a match rule tests, in
 * that order; null when the route turns `vary` off or serves one version only (no canary or
 * green upstream: nothing to choose between). The controller's smoke header is left out: its
 * requests are the controller's own.
 */
export function varyOf (route: RouteConfig): string | null {
  if (!route.vary || (route.upstreams.canary === undefined && route.upstreams.green === undefined)) return null
  const names = ['Cookie']
  const add = (name: string | undefined): void => {
    if (name !== undefined && !names.some((n) => n.toLowerCase() === name.toLowerCase())) names.push(name)
  }
  add(route.userIdHeader)
  if (route.override !== false) {
    add(route.override.header)
    if (route.override.secret !== undefined) add(OVERRIDE_SECRET_HEADER)
  }
  for (const rule of route.rules) for (const c of rule.conditions) if (c.source === 'header') add(c.name)
  return names.join(', ')
}
