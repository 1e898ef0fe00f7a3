// `weir rollout watch ROUTE`: follows a rollout until it ends, from GET .../rollout and the event
// log. On a terminal it redraws one screen in place; otherwise (a CI log) it prints a line only
// when something changed. Exit: 0 succeeded, 1 failed (reverted, aborted, rolled back), 3 no
// rollout on the route, 6 --timeout passed first (docs/cli.md#exit-codes).

import { setTimeout as sleep } from 'node:timers/promises'
import type { EventRecord, EventsAnswer, RolloutAnswer } from '../api-types.ts'
import { routePath, type CommandContext } from '../context.ts'
import { checkTable, eventDetail, phaseText, stepText, verdictText } from '../describe.ts'
import { CliError, EXIT, usageError, type ExitCode } from '../exit-codes.ts'
import { clock, formatValue, formatWeights, progressBar } from '../render.ts'
import { durationMs } from '../../config/units.ts'

export interface WatchFlags {
  intervalMs?: string
  timeout?: string
}

const RECENT_EVENTS = 8
const CLEAR = '\x1b[H\x1b[2J'

export async function rolloutWatch (ctx: CommandContext, route: string, flags: WatchFlags): Promise<ExitCode> {
  const interval = Number(flags.intervalMs ?? 500)
  if (!Number.isInteger(interval) || interval < 50 || interval > 60_000) throw usageError(`--interval-ms: a whole number from 50 to 60000, not ${JSON.stringify(flags.intervalMs)}`)
  const deadline = flags.timeout === undefined ? Infinity : Date.now() + timeoutMs(flags.timeout)

  let view = await ctx.client.get<RolloutAnswer>(`${routePath(route)}/rollout`)
  if (view.rollout === null) {
    throw new CliError(EXIT.noRollout, `route ${route} has no rollout to watch (phase idle): start one with weir rollout start ${route}`)
  }
  const startedAt = view.rollout.startedAt
  const events = new EventFeed(ctx, (e) => e.route === route && e.time >= startedAt)
  await events.poll()
  let shown = ''
  for (;;) {
    if (ctx.json) {
      const line = JSON.stringify(view)
      if (line !== shown) ctx.print(line)
      shown = line
    } else if (ctx.tty) {
      process.stdout.write(CLEAR + screen(ctx, view, events.recent, interval) + '\n')
    } else {
      for (const e of events.fresh()) ctx.print(`${clock(e.time)} event #${e.id} ${e.action} by ${e.actor}${detailSuffix(e)}`)
      const line = statusLine(ctx, view)
      // The time prefix changes every poll: compare what follows it.
      if (line !== shown) ctx.print(`${clock(new Date().toISOString())} ${line}`)
      shown = line
    }
    const phase = view.rollout?.phase
    if (phase === 'succeeded' || phase === 'failed') {
      if (!ctx.json) ctx.print(finalLine(ctx, view))
      return phase === 'succeeded' ? EXIT.ok : EXIT.failed
    }
    if (Date.now() >= deadline) {
      throw new CliError(EXIT.timeout, `the rollout of ${route} had not ended after --timeout ${flags.timeout}; it is ${phase} (it goes on: this only stopped watching)`)
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())))
    view = await ctx.client.get<RolloutAnswer>(`${routePath(route)}/rollout`)
    await events.poll()
  }
}

function timeoutMs (text: string): number {
  try {
    const ms = durationMs(/^[0-9]+$/.test(text) ? Number(text) : text)
    if (ms > 0) return ms
  } catch {}
  throw usageError(`--timeout: a duration like 90s, 10m or 1h (plain numbers are milliseconds), not ${JSON.stringify(text)}`)
}

/** The route's events from the log: each poll asks only for those after the last one seen. */
class EventFeed {
  readonly recent: EventRecord[] = []
  #lastId: number | undefined
  #unseen: EventRecord[] = []
  readonly #ctx: CommandContext
  readonly #keep: (e: EventRecord) => boolean

  constructor (ctx: CommandContext, keep: (e: EventRecord) => boolean) {
    this.#ctx = ctx
    this.#keep = keep
  }

  async poll (): Promise<void> {
    const page = await this.#ctx.client.get<EventsAnswer>(`/api/v1/events${this.#lastId === undefined ? '' : `?since=${this.#lastId}`}`)
    const mine = page.events.filter(this.#keep)
    this.recent.push(...mine)
    this.recent.splice(0, Math.max(0, this.recent.length - RECENT_EVENTS))
    this.#unseen.push(...mine)
    // A full page may stop short of the newest: continue from the last event it holds.
    this.#lastId = page.events.at(-1)?.id ?? page.lastId
  }

  /** The events not handed out yet. */
  fresh (): EventRecord[] {
    const out = this.#unseen
    this.#unseen = []
    return out
  }
}

const detailSuffix = (e: EventRecord): string => {
  const detail = eventDetail(e)
  return detail === '' ? '' : `: ${detail}`
}

function where (ctx: CommandContext, view: RolloutAnswer): string {
  const r = view.rollout
  if (r === null) return phaseText(view.phase, ctx.style)
  const subject = r.strategy === 'bluegreen' ? 'green' : 'canary'
  const steps = r.strategy === 'canary' ? ` step ${stepText(r, r.steps.length)} ${progressBar(r.step + 1, r.steps.length)}` : ''
  return `${phaseText(r.phase, ctx.style)}${steps} ${subject} ${r.weight} %`
}

function checkSummary (ctx: CommandContext, view: RolloutAnswer): string {
  const check = view.rollout?.lastCheck
  if (check === null || check === undefined) return 'no check yet'
  const each = check.checks.map((c) => `${c.name} ${formatValue(c.value)} vs ${formatValue(c.threshold)} ${verdictText(c.verdict, ctx.style)}`)
  return `check ${verdictText(check.verdict, ctx.style)}: ${each.join(', ')}`
}

/** One line for a log: phase, step and bar, weights, the last check. */
function statusLine (ctx: CommandContext, view: RolloutAnswer): string {
  return `${where(ctx, view)} | ${formatWeights(view.weights)} | ${checkSummary(ctx, view)}`
}

/** The whole screen of a terminal. */
function screen (ctx: CommandContext, view: RolloutAnswer, recent: readonly EventRecord[], interval: number): string {
  const r = view.rollout
  const s = ctx.style
  const lines = [
    `${s.bold(`weir rollout watch ${view.route}`)}  ${s.dim(`every ${interval} ms, at ${clock(new Date().toISOString())} UTC; Ctrl-C stops watching, not the rollout`)}`,
    '',
    `rollout   ${r === null ? '-' : `${r.strategy} ${r.id}, started by ${r.startedBy} at ${clock(r.startedAt)}`}`,
    `phase     ${where(ctx, view)}`,
    `weights   ${formatWeights(view.weights)} (revision ${view.revision})`,
  ]
  if (r !== null) {
    if (r.failures > 0) lines.push(`failures  ${s.red(`${r.failures}/${r.failureThreshold}`)} failed checks before a revert`)
    if (r.reason !== null) lines.push(`reason    ${r.reason}`)
    if (r.nextCheckAt !== null) lines.push(`next      check at ${clock(r.nextCheckAt)}`)
    if (r.lastCheck !== null) lines.push('', `last check at ${clock(r.lastCheck.at)}: ${verdictText(r.lastCheck.verdict, s)}`, checkTable(r.lastCheck, s))
  }
  lines.push('', s.bold('events'))
  for (const e of recent) lines.push(`  ${clock(e.time)}  #${e.id}  ${e.action.padEnd(22)} ${e.actor}${detailSuffix(e)}`)
  if (recent.length === 0) lines.push(s.dim('  none yet'))
  return lines.join('\n')
}

function finalLine (ctx: CommandContext, view: RolloutAnswer): string {
  const r = view.rollout
  if (r?.phase === 'succeeded') return ctx.style.green(`${view.route}: rollout ${r.id} succeeded`) + ` (${formatWeights(view.weights)})`
  return ctx.style.red(`${view.route}: rollout ${r?.id ?? ''} failed`) + `${r?.reason === null || r?.reason === undefined ? '' : `: ${r.reason}`} (${formatWeights(view.weights)})`
}
