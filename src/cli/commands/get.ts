// `weir get ROUTE`: one route, its upstreams, weights, shadow and the rollout driving it (or the
// last one), with the rollout's last check.

import type { RolloutAnswer, RouteView } from '../api-types.ts'
import { routePath, type CommandContext } from '../context.ts'
import { checkTable, describeRollout, verdictText } from '../describe.ts'
import { formatWeights } from '../render.ts'

export async function get (ctx: CommandContext, route: string): Promise<void> {
  const view = await ctx.client.get<RouteView>(routePath(route))
  if (ctx.json) return ctx.printJson(view)
  const rollout = await ctx.client.get<RolloutAnswer>(`${routePath(route)}/rollout`)
  const lines = [
    `route      ${ctx.style.bold(view.name)}`,
    `revision   ${view.revision} (${view.source}${view.updatedAt === null ? '' : `, updated ${view.updatedAt}`})`,
    `weights    ${formatWeights(view.weights)}`,
    ...Object.entries(view.upstreams).map(([version, urls], i) => `${i === 0 ? 'upstreams' : '         '}  ${version.padEnd(7)} ${(urls ?? []).join(', ')}`),
    `shadow     ${view.shadow.percent} %${view.shadow.compare === true ? ', compared' : ''}`,
    `rollout    ${describeRollout(rollout, ctx.style)}`,
  ]
  const check = rollout.rollout?.lastCheck
  if (check !== null && check !== undefined) lines.push(`last check ${check.at} ${verdictText(check.verdict, ctx.style)}`, checkTable(check, ctx.style))
  ctx.print(lines.join('\n'))
}
