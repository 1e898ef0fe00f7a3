// What a rollout webhook is sent, pure: weir's JSON payload, and the same in words as a Slack
// incoming-webhook body (`format: slack`).

import type { WeightsBp } from '../config/model.ts'
import type { RolloutState } from '../rollout/step.ts'
import type { Phase, WebhookType } from '../vocabulary.ts'

/** An `event` notification's extra fields: which change it tells. */
export interface PhaseChange {
  /** The rollout's phase before (null: the rollout just started). */
  previousPhase: Phase | null
  /** The event-log action of the change: rollout.started, rollout.failed, rollback, ... */
  action: string
  /** Epoch ms. */
  at: number
}

export interface WebhookPayload {
  route: string
  type: WebhookType
  rollout: string
  strategy: RolloutState['strategy']
  phase: Phase
  step: number
  weight: number
  /** The route's weights in percent after the change (null: the route has no live state). */
  weights: { stable: number; canary: number; green: number } | null
  failures: number
  reason: string | null
  lastCheck: RolloutState['lastCheck']
  metadata: Record<string, string>
  previousPhase?: Phase | null
  action?: string
  /** ISO time of the change. */
  at?: string
}

export function webhookPayload (route: string, rollout: RolloutState, type: WebhookType, metadata: Record<string, string>,
  weights: Readonly<WeightsBp> | undefined, change?: PhaseChange): WebhookPayload {
  return {
    route,
    type,
    rollout: rollout.id,
    strategy: rollout.strategy,
    phase: rollout.phase,
    step: rollout.step,
    weight: rollout.weight,
    weights: weights === undefined ? null : { stable: weights.stable / 100, canary: weights.canary / 100, green: weights.green / 100 },
    failures: rollout.failures,
    reason: rollout.reason,
    lastCheck: rollout.lastCheck,
    metadata,
    ...(change === undefined ? {} : { previousPhase: change.previousPhase, action: change.action, at: new Date(change.at).toISOString() }),
  }
}

const HEADLINES: Record<WebhookType, string> = {
  'pre-rollout': 'asks its pre-rollout check',
  rollout: 'asks its step check',
  'confirm-promotion': 'asks to promote',
  'confirm-rollout': 'asks to start',
  'confirm-traffic-increase': 'asks to raise the canary\'s weight',
  'post-rollout': 'finished',
  rollback: 'was reverted',
  event: 'changed phase',
}

const MARKS: Partial<Record<Phase, string>> = { succeeded: ':white_check_mark:', failed: ':x:', paused: ':double_vertical_bar:' }

/** The payload as a Slack incoming-webhook body: one line of text, and blocks with the details. */
export function slackMessage (p: WebhookPayload): { text: string; blocks: unknown[] } {
  // Slack reads <...> as links and mentions: the reason (a check's detail) is escaped.
  const reason = p.reason === null ? null : p.reason.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  const phase = p.previousPhase === undefined ? p.phase : `${p.previousPhase ?? 'started'} → ${p.phase}`
  const mark = MARKS[p.phase] ?? ':arrows_counterclockwise:'
  const text = `${mark} Route ${p.route}: ${p.strategy} rollout ${p.rollout} ${HEADLINES[p.type]} (${phase})${reason === null ? '' : `: ${reason}`}`
  const where = p.step < 0 ? 'before the first step' : `step ${p.step + 1}, ${p.strategy === 'canary' ? 'canary' : 'green'} at ${p.weight} %`
  const weights = p.weights === null ? 'unknown' : `stable ${p.weights.stable} %, canary ${p.weights.canary} %, green ${p.weights.green} %`
  const context = [`rollout \`${p.rollout}\``, where, `weights: ${weights}`]
  if (p.failures > 0) context.push(`failed checks: ${p.failures}`)
  if (p.at !== undefined) context.push(p.at)
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `${mark} *${p.route}*: ${p.strategy} rollout ${HEADLINES[p.type]} (*${phase}*)${reason === null ? '' : `\n${reason}`}` } },
      { type: 'context', elements: context.map((c) => ({ type: 'mrkdwn', text: c })) },
    ],
  }
}
