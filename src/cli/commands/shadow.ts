// `weir shadow ROUTE --percent 5 [--compare|--no-compare]`: PUT .../shadow with the settings
// given; the API keeps the others as they are.

import type { CommandContext } from '../context.ts'
import { usageError } from '../exit-codes.ts'
import { routeWrite, type WriteFlags } from '../route-write.ts'

export interface ShadowFlags extends WriteFlags {
  percent?: string
  compare?: boolean
}

export async function shadow (ctx: CommandContext, route: string, flags: ShadowFlags): Promise<void> {
  const body: { percent?: number; compare?: boolean } = {}
  if (flags.percent !== undefined) {
    const n = Number(flags.percent)
    if (flags.percent.trim() === '' || !Number.isFinite(n)) throw usageError(`--percent: must be a number from 0 to 100, not ${JSON.stringify(flags.percent)}`)
    body.percent = n
  }
  if (flags.compare !== undefined) body.compare = flags.compare
  if (Object.keys(body).length === 0) throw usageError('shadow: give --percent N, --compare or --no-compare')
  await routeWrite(ctx, route, 'PUT', 'shadow', body, flags.ifMatch === undefined ? {} : { ifMatch: flags.ifMatch })
}
