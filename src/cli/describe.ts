// One-line descriptions of a route's state and its rollout, shared by the commands that print
// them (get, status, the writes, the rollout commands, watch).

import type { EventRecord, RolloutAnswer, RouteView } from './api-types.ts'
import { formatValue, formatWeights, table, type Style } from './render.ts'

type Summary = NonNullable<RouteView['rollout']>

/** The phase, coloured by how it stands: green done, red failed, yellow waiting on someone. */
export function phaseText (phase: string, style: Style): string {
  if (phase === 'succeeded') return style.green(phase)
  if (phase === 'failed') return style.red(phase)
  if (phase === 'paused' || phase === 'idle') return style.yellow(phase)
  return style.cyan(phase)
}

/** `2/3` for the canary step the rollout is at (1-based), `-` before the first. */
export function stepText (summary: Pick<Summary, 'step'>, steps: number | undefined): string {
  const at = summary.step < 0 ? '-' : String(summary.step + 1)
  return steps === undefined ? at : `${at}/${steps}`
}

/** `progressing, step 2/3, canary 50 %: holding: …` of a rollout view; `no rollout` when none ran. */
export function describeRollout (view: RolloutAnswer, style: Style): string {
  const r = view.rollout
  if (r === null) return 'no rollout'
  const subject = r.strategy === 'bluegreen' ? 'green' : 'canary'
  const parts = [`${r.strategy} ${r.id}`, phaseText(r.phase, style)]
  if (r.strategy === 'canary') parts.push(`step ${stepText(r, r.steps.length)}`)
  parts.push(`${subject} ${r.weight} %`)
  if (r.failures > 0) parts.push(`failed checks ${r.failures}/${r.failureThreshold}`)
  return parts.join(', ') + (r.reason === null ? '' : `: ${r.reason}`)
}

/** `app: stable 90  canary 10  green 0 (revision 4)`: what a write leaves. */
export function describeRoute (route: RouteView): string {
  return `${route.name}: ${formatWeights(route.weights)} (revision ${route.revision})`
}

type Check = NonNullable<NonNullable<RolloutAnswer['rollout']>['lastCheck']>

export function verdictText (verdict: string, style: Style): string {
  return verdict === 'pass' ? style.green(verdict) : verdict === 'fail' ? style.red(verdict) : style.yellow(verdict)
}

/** Each check of a rollout's last check: its name, the value measured against its threshold, its verdict. */
export function checkTable (check: Check, style: Style): string {
  return table(['  CHECK', 'VALUE', 'THRESHOLD', 'VERDICT'],
    check.checks.map((c) => [`  ${c.name}`, formatValue(c.value), formatValue(c.threshold), verdictText(c.verdict, style)]), style)
}

/** What an event did, in a few words: its reason's detail or message, else the weights it left. */
export function eventDetail (event: EventRecord): string {
  const reason = event.reason
  if (reason !== null && reason !== undefined) {
    if (typeof reason.detail === 'string') return reason.detail
    if (typeof reason.message === 'string') return `${typeof reason.status === 'number' ? reason.status + ' ' : ''}${reason.message}`
  }
  const after = event.new as { weights?: Record<string, number>; rollout?: { phase?: string } | null } | undefined
  if (after?.weights !== undefined) return formatWeights(after.weights)
  return ''
}
