// `weir set-upstream ROUTE canary=URL[,URL]`: PUT .../upstreams; `none` takes a version's upstream away.

import type { CommandContext } from '../context.ts'
import { parsePairs } from '../pairs.ts'
import { routeWrite, type WriteFlags } from '../route-write.ts'
import { UPSTREAM_NAMES } from '../../vocabulary.ts'

export async function setUpstream (ctx: CommandContext, route: string, pairs: string[], flags: WriteFlags): Promise<void> {
  const body: Record<string, string[] | null> = {}
  for (const [version, value] of parsePairs(pairs, UPSTREAM_NAMES, 'version=URL[,URL]')) {
    body[version] = value === 'none' ? null : value.split(',').map((url) => url.trim()).filter((url) => url !== '')
  }
  await routeWrite(ctx, route, 'PUT', 'upstreams', body, flags)
}
