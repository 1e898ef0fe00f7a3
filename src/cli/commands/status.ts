// `weir status`: every route with its weights, revision and rollout, and per version the last
// minute's requests per second, error rate and p99.

import type { RolloutAnswer, RouteView, StatsAnswer } from '../api-types.ts'
import { routePath, type CommandContext } from '../context.ts'
import { phaseText, stepText } from '../describe.ts'
import { millis, percent, perSecond, table } from '../render.ts'

const WINDOW_SECONDS = 60
const ORDER = ['stable', 'canary', 'green', 'shadow']

export type RouteStatus = RouteView & { stats: StatsAnswer }

export async function status (ctx: CommandContext): Promise<void> {
  const routes = await ctx.client.get<RouteView[]>('/api/v1/routes')
  const all: RouteStatus[] = await Promise.all(routes.map(async (route) =>
    ({ ...route, stats: await ctx.client.get<StatsAnswer>(`${routePath(route.name)}/stats?window=${WINDOW_SECONDS}`) })))
  if (ctx.json) return ctx.printJson(all)
  // The route's summary has the step but not how many there are: the rollout view has both.
  const steps = await Promise.all(all.map(async (route) => route.rollout === null || route.rollout.strategy !== 'canary'
    ? undefined
    : (await ctx.client.get<RolloutAnswer>(`${routePath(route.name)}/rollout`)).rollout?.steps.length))
  const rows: string[][] = []
  all.forEach((route, i) => {
    const rollout = route.rollout === null
      ? phaseText('idle', ctx.style)
      : route.rollout.strategy === 'canary' ? `${phaseText(route.rollout.phase, ctx.style)} ${stepText(route.rollout, steps[i])}` : phaseText(route.rollout.phase, ctx.style)
    const versions = ORDER.filter((v) => route.stats.versions[v] !== undefined || route.upstreams[v as keyof RouteView['upstreams']] !== undefined)
    versions.forEach((version, j) => {
      const stats = route.stats.versions[version]
      const weight = version === 'shadow' ? `${route.shadow.percent} % copy` : String(route.weights[version as keyof RouteView['weights']] ?? 0)
      rows.push([
        j === 0 ? route.name : '', j === 0 ? String(route.revision) : '', j === 0 ? rollout : '',
        version, weight,
        stats === undefined ? '-' : perSecond(stats.requests, route.stats.window),
        percent(stats?.errorRate), millis(stats?.p99),
      ])
    })
  })
  ctx.print(table(['ROUTE', 'REV', 'ROLLOUT', 'VERSION', 'WEIGHT', 'REQ/S', 'ERRORS', 'P99 MS'], rows, ctx.style))
}
