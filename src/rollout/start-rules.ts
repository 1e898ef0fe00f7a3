// What a route must be for a rollout to start on it, pure: the version the strategy moves has an
// upstream, the other one carries no weight, and a blue/green rollout has a way to check green
// (a smoke path inside the route, or a pre-rollout webhook) before the switch.

import type { RouteConfig, WeightsBp } from '../config/model.ts'
import type { RolloutPolicy } from '../config/schema.ts'
import type { Problem } from '../errors.ts'
import type { UpstreamName } from '../vocabulary.ts'

export function startProblems (
  policy: RolloutPolicy, route: RouteConfig, upstreams: Partial<Record<UpstreamName, readonly string[]>>, weights: Readonly<WeightsBp>
): Problem[] {
  const target = policy.strategy === 'canary' ? 'canary' : 'green'
  const other = target === 'canary' ? 'green' : 'canary'
  const problems: Problem[] = []
  if (upstreams[target] === undefined) problems.push({ path: 'rollout.strategy', reason: `a ${policy.strategy} rollout needs upstreams.${target}: set it with PUT .../upstreams first` })
  if (weights[other] !== 0) problems.push({ path: 'rollout.strategy', reason: `a ${policy.strategy} rollout needs ${other} at weight 0 (it is ${weights[other] / 100})` })
  if (policy.strategy === 'bluegreen') {
    if (policy.smoke === undefined && !policy.webhooks.some((h) => h.type === 'pre-rollout')) {
      problems.push({ path: 'rollout.smoke', reason: 'a bluegreen rollout needs smoke.path or a pre-rollout webhook to check green before the switch' })
    }
    if (policy.smoke !== undefined && !policy.smoke.path.startsWith(route.pathPrefix)) {
      problems.push({ path: 'rollout.smoke.path', reason: `must start with the route's pathPrefix ${route.pathPrefix}` })
    }
  }
  return problems
}
