// `weir set-weights ROUTE stable=90 canary=10`: PUT .../weights; a version not named gets 0.

import type { CommandContext } from '../context.ts'
import { usageError } from '../exit-codes.ts'
import { routeWrite, type WriteFlags } from '../route-write.ts'
import { VERSIONS, type Version } from '../../vocabulary.ts'
import { parsePairs } from '../pairs.ts'

export async function setWeights (ctx: CommandContext, route: string, pairs: string[], flags: WriteFlags): Promise<void> {
  const weights: Record<Version, number> = { stable: 0, canary: 0, green: 0 }
  for (const [version, value] of parsePairs(pairs, VERSIONS, 'version=percent')) {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n)) throw usageError(`${version}=${value}: the weight must be a number (percent)`)
    weights[version] = n
  }
  await routeWrite(ctx, route, 'PUT', 'weights', weights, flags)
}
