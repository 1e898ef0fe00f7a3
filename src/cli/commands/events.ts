// `weir events [--since ID] [--route R] [--follow]`: the event log, oldest first; --follow
// keeps asking for newer ones until interrupted.

import { setTimeout as sleep } from 'node:timers/promises'
import type { EventRecord, EventsAnswer } from '../api-types.ts'
import type { CommandContext } from '../context.ts'
import { eventDetail } from '../describe.ts'
import { usageError } from '../exit-codes.ts'
import { table } from '../render.ts'

export interface EventsFlags {
  since?: string
  route?: string
  follow?: boolean
  intervalMs?: string
}

export async function events (ctx: CommandContext, flags: EventsFlags): Promise<void> {
  if (flags.since !== undefined && !/^[0-9]{1,15}$/.test(flags.since)) throw usageError(`--since: an event id (a whole number), not ${JSON.stringify(flags.since)}`)
  const interval = Number(flags.intervalMs ?? 1000)
  if (!Number.isInteger(interval) || interval < 50) throw usageError(`--interval-ms: a whole number of at least 50, not ${JSON.stringify(flags.intervalMs)}`)
  const keep = (e: EventRecord): boolean => flags.route === undefined || e.route === flags.route
  let since = flags.since
  let first = true
  for (;;) {
    const page = await ctx.client.get<EventsAnswer>(`/api/v1/events${since === undefined ? '' : `?since=${since}`}`)
    const shown = page.events.filter(keep)
    if (ctx.json && !flags.follow) {
      ctx.printJson({ ...page, events: shown })
    } else if (ctx.json) {
      // --follow -o json: one event a line (JSON Lines), for a pipe.
      for (const e of shown) ctx.print(JSON.stringify(e))
    } else if (shown.length > 0 || (first && !flags.follow)) {
      const rows = shown.map((e) => [String(e.id), e.time, e.actor, e.route ?? '-', e.action, eventDetail(e)])
      // A followed table prints its header once; later pages only add rows.
      const text = table(['ID', 'TIME', 'ACTOR', 'ROUTE', 'ACTION', 'DETAIL'], rows, ctx.style)
      ctx.print(first ? text : text.split('\n').slice(1).join('\n'))
      first = false
    }
    if (flags.follow !== true) return
    since = String(page.events.at(-1)?.id ?? page.lastId)
    await sleep(interval)
  }
}
