// Every event weir appends is also one structured log line, so an operator reading the log sees
// what happened (a step, a hold and why, a revert, who changed the weights) without asking the
// admin API. The line carries the whole event under `event`; its message says it in words.

import type { EventInput, EventLog, StagedEvent, WeirEvent } from './event-log.ts'

export interface EventLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
}

/** Events an operator should notice: something was reverted, refused or replaced. */
const WARN_ACTIONS = new Set(['rollout.failed', 'rollout.aborted', 'rollback', 'rejected', 'rollout.webhook-failed', 'worker.crashed', 'worker.unresponsive'])

/** `events`, with a log line for each event once it is written. */
export function loggedEventLog (events: EventLog, log: EventLogger): EventLog {
  const logged = (event: WeirEvent): WeirEvent => {
    const line = { event }
    if (WARN_ACTIONS.has(event.action)) log.warn(line, describeEvent(event))
    else log.info(line, describeEvent(event))
    return event
  }
  const stage = events.stage
  return {
    get path () { return events.path },
    get lastId () { return events.lastId },
    append: async (input: EventInput): Promise<WeirEvent> => logged(await events.append(input)),
    // An event a state store writes with its change is logged once that transaction is written.
    ...(stage === undefined
      ? {}
      : {
          stage: (input: EventInput): StagedEvent => {
            const staged = stage.call(events, input)
            return { key: staged.key, value: staged.value, committed: (revision) => logged(staged.committed(revision)) }
          },
        }),
    since: (afterId, limit) => events.since(afterId, limit),
    close: () => events.close(),
  }
}

/** `event rollout.failed: route app, by controller: guard: canary error rate 0.6 …; weights now stable 100 % / canary 0 % / green 0 %` */
export function describeEvent (event: WeirEvent): string {
  const parts = [`event ${event.action}:`]
  if (event.route !== undefined) parts.push(`route ${event.route},`)
  parts.push(`by ${event.actor}${event.replica === undefined ? '' : ` on ${event.replica}`}`)
  const reason = reasonText(event.reason)
  const weights = weightsText((event.new as { weights?: unknown } | undefined)?.weights)
  return parts.join(' ') + (reason === '' ? '' : `: ${reason}`) + (weights === '' ? '' : `; weights now ${weights}`)
}

function reasonText (reason: unknown): string {
  if (typeof reason === 'string') return reason
  if (typeof reason !== 'object' || reason === null) return ''
  const r = reason as { check?: unknown; detail?: unknown; message?: unknown; status?: unknown; error?: unknown }
  if (typeof r.detail === 'string') return typeof r.check === 'string' ? `${r.check}: ${r.detail}` : r.detail
  if (typeof r.message === 'string') return `${typeof r.status === 'number' ? `${r.status} ` : ''}${typeof r.error === 'string' ? `${r.error} ` : ''}${r.message}`
  return ''
}

function weightsText (weights: unknown): string {
  if (typeof weights !== 'object' || weights === null) return ''
  return Object.entries(weights as Record<string, unknown>).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${String(v)} %`).join(' / ')
}
