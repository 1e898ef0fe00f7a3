// `weir rollout start ROUTE [--file F] [--steps 10,50,100] [--interval 30s] [--strategy S]` and
// the manual gates `weir rollout pause|resume|promote [--full]|abort ROUTE`.

import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import type { RolloutAnswer } from '../api-types.ts'
import { routePath, type CommandContext } from '../context.ts'
import { describeRollout } from '../describe.ts'
import { usageError } from '../exit-codes.ts'
import { formatWeights } from '../render.ts'
import { STRATEGIES } from '../../vocabulary.ts'

export interface StartFlags {
  file?: string
  steps?: string
  interval?: string
  strategy?: string
}

export async function rolloutStart (ctx: CommandContext, route: string, flags: StartFlags): Promise<void> {
  const policy = flags.file === undefined ? {} : await readPolicy(flags.file)
  if (flags.steps !== undefined) policy.steps = parseSteps(flags.steps)
  if (flags.interval !== undefined) policy.interval = /^[0-9]+$/.test(flags.interval) ? Number(flags.interval) : flags.interval
  if (flags.strategy !== undefined) {
    if (!(STRATEGIES as readonly string[]).includes(flags.strategy)) throw usageError(`--strategy: must be ${STRATEGIES.join(' or ')}, not ${JSON.stringify(flags.strategy)}`)
    policy.strategy = flags.strategy
  }
  show(ctx, await ctx.client.send<RolloutAnswer>('POST', `${routePath(route)}/rollout`, policy))
}

export async function rolloutGate (ctx: CommandContext, route: string, gate: 'pause' | 'resume' | 'promote' | 'abort', full = false): Promise<void> {
  show(ctx, await ctx.client.send<RolloutAnswer>('POST', `${routePath(route)}/rollout/${gate}${full ? '?full=true' : ''}`))
}

function show (ctx: CommandContext, view: RolloutAnswer): void {
  if (ctx.json) return ctx.printJson(view)
  ctx.print(`${view.route}: ${describeRollout(view, ctx.style)}\n  weights ${formatWeights(view.weights)} (revision ${view.revision})`)
}

/** A policy file: YAML or JSON by its extension, one object (a route's `rollout` key). */
async function readPolicy (file: string): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw usageError(`--file: cannot read ${file}: ${(err as Error).message}`)
  }
  let value: unknown
  try {
    value = extname(file) === '.json' ? JSON.parse(text) : (await import('yaml')).parse(text)
  } catch (err) {
    throw usageError(`--file: ${file} does not parse: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usageError(`--file: ${file} must hold one rollout policy (an object)`)
  return value as Record<string, unknown>
}

/** `10,50,100` → [10, 50, 100]. The API judges the values (increasing, at most 100, …). */
function parseSteps (text: string): number[] {
  const steps = text.split(',').map((s) => s.trim())
  for (const s of steps) if (s === '' || !Number.isFinite(Number(s))) throw usageError(`--steps: a comma-separated list of percents, like 10,50,100, not ${JSON.stringify(text)}`)
  return steps.map(Number)
}
