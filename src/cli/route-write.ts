// A write to one route (weights, upstreams, switch, rollback, shadow): --force and --if-match,
// the route after the change printed, and a refusal because a rollout drives the route told
// with the rollout that holds it and how to take over.

import type { RolloutAnswer, RouteView } from './api-types.ts'
import { routePath, type CommandContext } from './context.ts'
import { describeRollout, describeRoute } from './describe.ts'
import { CliError, usageError } from './exit-codes.ts'
import { buildStyle } from './render.ts'

export interface WriteFlags {
  force?: boolean
  ifMatch?: string
}

export async function routeWrite (ctx: CommandContext, route: string, method: 'PUT' | 'POST', path: string, body: unknown, flags: WriteFlags = {}): Promise<void> {
  const headers: Record<string, string> = {}
  if (flags.ifMatch !== undefined) {
    if (!/^[0-9]{1,15}$/.test(flags.ifMatch)) throw usageError(`--if-match: must be a route revision (a whole number), not ${JSON.stringify(flags.ifMatch)}`)
    headers['if-match'] = flags.ifMatch
  }
  let written: RouteView
  try {
    written = await ctx.client.send<RouteView>(method, `${routePath(route)}/${path}${flags.force === true ? '?force=true' : ''}`, body, headers)
  } catch (err) {
    throw await withHolder(ctx, route, err)
  }
  if (ctx.json) return ctx.printJson(written)
  ctx.print(describeRoute(written))
}

/** A 409 "a rollout drives this route" gains a line naming that rollout; any other error is as it was. */
async function withHolder (ctx: CommandContext, route: string, err: unknown): Promise<unknown> {
  if (!(err instanceof CliError) || err.apiCode !== 'WEIR_ERR_ADMIN_ROLLOUT_ACTIVE') return err
  let view: RolloutAnswer
  try {
    view = await ctx.client.get<RolloutAnswer>(`${routePath(route)}/rollout`)
  } catch {
    return err
  }
  if (view.rollout === null) return err
  const by = `started by ${view.rollout.startedBy} at ${view.rollout.startedAt}`
  return new CliError(err.exitCode, `${err.message}\n  the route is held by the rollout ${describeRollout(view, buildStyle(false))} (${by})` +
    `\n  pause it (weir rollout pause ${route}), abort it (weir rollout abort ${route}), or pass --force`, err.apiCode)
}
