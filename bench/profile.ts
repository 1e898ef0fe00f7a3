// Summarizes V8 .cpuprofiles (from `node --cpu-prof`): self time per function and per package
// group (fastify, reply-from/http-proxy, undici, weir src, node internals...), over a time window,
// and compares two profiles per request. Usage: node bench/profile.ts <file.cpuprofile> [top]

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { median } from './median.ts'

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; startTime: number; samples: number[]; timeDeltas: number[] }

export interface SummaryOptions {
  /** How many top self-time functions to list. */
  top?: number
  /** Only samples in [fromUs, toUs] (CLOCK_MONOTONIC µs, as process.hrtime.bigint() / 1000n). */
  fromUs?: number
  toUs?: number
  /** Requests served in the window: adds µs per request to every figure. */
  requests?: number
}

export interface FunctionCost { name: string; group: string; location: string; ms: number; pct: number; usPerReq: number | null }
export interface GroupCost { group: string; ms: number; pct: number; usPerReq: number | null }
export interface ProfileSummary {
  busyMs: number
  idleMs: number
  /** Main-thread busy time per request (null without `requests`). */
  busyUsPerReq: number | null
  groups: GroupCost[]
  topSelf: FunctionCost[]
  /**
   * Time attributable to weir's own code: samples whose stack, from the deepest weir frame to
   * the leaf, holds only weir, node-internal, prom-client or native frames (so a hook that calls
   * fastify's `done()` is not charged for the rest of the request). Per weir function.
   */
  weirOwn: FunctionCost[]
  weirOwnPct: number
  /** The node-internals group split by module (native functions by name). */
  nodeInternals: GroupCost[]
}

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const GROUP_OF_PACKAGE: Record<string, string> = {
  fastify: 'fastify',
  'find-my-way': 'fastify',
  avvio: 'fastify',
  'light-my-request': 'fastify',
  'fast-json-stringify': 'fastify',
  'abstract-logging': 'fastify',
  '@fastify/error': 'fastify',
  '@fastify/fast-json-stringify-compiler': 'fastify',
  '@fastify/ajv-compiler': 'fastify',
  'fastify-plugin': 'fastify',
  'process-warning': 'fastify',
  'fast-decode-uri-component': 'fastify',
  'fast-querystring': 'fastify',
  'safe-regex2': 'fastify',
  ret: 'fastify',
  rfdc: 'fastify',
  'toad-cache': 'reply-from/http-proxy',
  '@fastify/reply-from': 'reply-from/http-proxy',
  '@fastify/http-proxy': 'reply-from/http-proxy',
  'end-of-stream': 'reply-from/http-proxy',
  'fast-content-type-parse': 'reply-from/http-proxy',
  undici: 'undici',
  pino: 'pino (logger)',
  'sonic-boom': 'pino (logger)',
  'thread-stream': 'pino (logger)',
  'pino-std-serializers': 'pino (logger)',
  'quick-format-unescaped': 'pino (logger)',
  'atomic-sleep': 'pino (logger)',
  'on-exit-leak-free': 'pino (logger)',
  'prom-client': 'prom-client',
  tdigest: 'prom-client',
  bintrees: 'prom-client',
}

function packageOf (url: string): string | null {
  const at = url.lastIndexOf('/node_modules/')
  if (at === -1) return null
  const parts = url.slice(at + '/node_modules/'.length).split('/')
  const first = parts[0] ?? ''
  return first.startsWith('@') ? `${first}/${parts[1] ?? ''}` : first
}

export function groupOf (frame: CallFrame): string {
  const url = frame.url
  if (url === '') {
    if (frame.functionName === '(garbage collector)') return 'gc'
    if (frame.functionName === '(program)') return '(program)'
    if (frame.functionName === '(idle)') return '(idle)'
    return 'node internals'
  }
  if (url.startsWith('node:')) return 'node internals'
  const pkg = packageOf(url)
  if (pkg !== null) return GROUP_OF_PACKAGE[pkg] ?? pkg
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  if (path.startsWith(ROOT + 'src/') || path.startsWith(ROOT + 'bin/')) return 'weir src'
  if (path.startsWith(ROOT + 'bench/')) return 'bench servers'
  return 'other'
}

function locationOf (frame: CallFrame): string {
  const url = frame.url
  if (url === '') return '(native)'
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const short = path.startsWith(ROOT) ? path.slice(ROOT.length) : path
  return `${short.replace(/^.*node_modules\//, '')}:${frame.lineNumber + 1}`
}

const OWNED_BY_WEIR = new Set(['weir src', 'node internals', 'prom-client', 'gc', '(program)'])

interface Tally { frame: CallFrame; us: number }

/** Raw per-function self time (and weir-owned time) over the window. */
interface Analysis {
  busyUs: number
  idleUs: number
  requests: number | null
  self: Map<string, Tally>
  own: Map<string, Tally>
  ownUs: number
}

const keyOf = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'}\u0000${locationOf(frame)}`

function analyze (profile: CpuProfile, options: SummaryOptions): Analysis {
  const fromUs = options.fromUs ?? -Infinity
  const toUs = options.toUs ?? Infinity
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const result: Analysis = { busyUs: 0, idleUs: 0, requests: options.requests ?? null, self: new Map(), own: new Map(), ownUs: 0 }
  const { samples, timeDeltas } = profile
  // Every sample counts as one sampling interval. Weighting samples by the time to the next
  // one would charge whole scheduler time slices (on a busy machine) to whatever ran last.
  const interval = median(timeDeltas.filter((d) => d > 0), 'upper') ?? 0
  let at = profile.startTime
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i] ?? 0
    const node = byId.get(samples[i] as number)
    if (node === undefined || at < fromUs || at > toUs) continue
    if (node.callFrame.functionName === '(idle)') {
      result.idleUs += interval
      continue
    }
    result.busyUs += interval
    const key = keyOf(node.callFrame)
    const entry = result.self.get(key) ?? { frame: node.callFrame, us: 0 }
    entry.us += interval
    result.self.set(key, entry)
    // Walk up from the leaf while frames are weir's or what weir calls directly; charge the
    // deepest weir frame met before the first frame of another package.
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = (byId.get(id) as ProfileNode).callFrame
      const group = groupOf(frame)
      if (group === 'weir src') {
        const k = keyOf(frame)
        const owned = result.own.get(k) ?? { frame, us: 0 }
        owned.us += interval
        result.own.set(k, owned)
        result.ownUs += interval
        break
      }
      if (!OWNED_BY_WEIR.has(group)) break
    }
  }
  return result
}

function groupTotals (a: Analysis): Map<string, number> {
  const groups = new Map<string, number>()
  for (const { frame, us } of a.self.values()) groups.set(groupOf(frame), (groups.get(groupOf(frame)) ?? 0) + us)
  return groups
}

const round1 = (n: number): number => Math.round(n * 10) / 10

export function summarizeProfile (profile: CpuProfile, options: SummaryOptions = {}): ProfileSummary {
  const a = analyze(profile, options)
  const top = options.top ?? 10
  const pct = (us: number): number => (a.busyUs === 0 ? 0 : round1((us / a.busyUs) * 100))
  const ms = (us: number): number => round1(us / 1000)
  const perReq = (us: number): number | null => (a.requests === null || a.requests === 0 ? null : Math.round((us / a.requests) * 100) / 100)
  const internals = new Map<string, number>()
  for (const { frame, us } of a.self.values()) {
    if (groupOf(frame) !== 'node internals') continue
    const module = frame.url === '' ? `(native) ${frame.functionName}` : frame.url
    internals.set(module, (internals.get(module) ?? 0) + us)
  }
  const cost = ({ frame, us }: Tally): FunctionCost => ({
    name: frame.functionName || '(anonymous)', group: groupOf(frame), location: locationOf(frame), ms: ms(us), pct: pct(us), usPerReq: perReq(us),
  })
  const group = ([name, us]: [string, number]): GroupCost => ({ group: name, ms: ms(us), pct: pct(us), usPerReq: perReq(us) })
  return {
    busyMs: ms(a.busyUs),
    idleMs: ms(a.idleUs),
    busyUsPerReq: perReq(a.busyUs),
    groups: [...groupTotals(a)].sort((x, y) => y[1] - x[1]).map(group),
    topSelf: [...a.self.values()].sort((x, y) => y.us - x.us).slice(0, top).map(cost),
    weirOwn: [...a.own.values()].sort((x, y) => y.us - x.us).slice(0, 10).map(cost),
    weirOwnPct: pct(a.ownUs),
    nodeInternals: [...internals].sort((x, y) => y[1] - x[1]).slice(0, 10).map(group),
  }
}

export interface ProfileComparison {
  base: string
  other: string
  busyUsPerReq: { base: number; other: number; delta: number }
  /** Main-thread µs per request per group, both sides. */
  groups: { group: string; base: number; other: number; delta: number }[]
  /** Functions whose µs per request grew most from base to other. */
  grew: { name: string; group: string; location: string; base: number; other: number; delta: number }[]
}

/** Per-request comparison of two profiles (each with its window and request count). */
export function compareProfiles (base: { label: string; profile: CpuProfile; options: SummaryOptions & { requests: number } },
  other: { label: string; profile: CpuProfile; options: SummaryOptions & { requests: number } }, top = 12): ProfileComparison {
  const a = analyze(base.profile, base.options)
  const b = analyze(other.profile, other.options)
  const r2 = (n: number): number => Math.round(n * 100) / 100
  const ga = groupTotals(a)
  const gb = groupTotals(b)
  const groups = [...new Set([...ga.keys(), ...gb.keys()])].map((group) => {
    const x = (ga.get(group) ?? 0) / base.options.requests
    const y = (gb.get(group) ?? 0) / other.options.requests
    return { group, base: r2(x), other: r2(y), delta: r2(y - x) }
  }).filter((g) => g.base >= 0.05 || g.other >= 0.05).sort((x, y) => y.other - x.other)
  // Matched by name and file, not line: the bare plugin runs reply-from's own undici (7), weir
  // its undici 8, where the same function sits on another line.
  const byFunction = (x: Analysis): Map<string, Tally> => {
    const out = new Map<string, Tally>()
    for (const { frame, us } of x.self.values()) {
      const key = `${frame.functionName || '(anonymous)'}\u0000${locationOf(frame).replace(/:\d+$/, '')}`
      const entry = out.get(key) ?? { frame, us: 0 }
      entry.us += us
      out.set(key, entry)
    }
    return out
  }
  const fa = byFunction(a)
  const fb = byFunction(b)
  const grew = [...new Set([...fa.keys(), ...fb.keys()])].map((key) => {
    const tally = (fb.get(key) ?? fa.get(key)) as Tally
    const x = (fa.get(key)?.us ?? 0) / base.options.requests
    const y = (fb.get(key)?.us ?? 0) / other.options.requests
    return { name: tally.frame.functionName || '(anonymous)', group: groupOf(tally.frame), location: locationOf(tally.frame).replace(/:\d+$/, ''), base: r2(x), other: r2(y), delta: r2(y - x) }
  }).sort((x, y) => y.delta - x.delta).slice(0, top)
  const busyA = a.busyUs / base.options.requests
  const busyB = b.busyUs / other.options.requests
  return { base: base.label, other: other.label, busyUsPerReq: { base: r2(busyA), other: r2(busyB), delta: r2(busyB - busyA) }, groups, grew }
}

export function formatProfile (summary: ProfileSummary): string {
  const perReq = (x: { usPerReq: number | null }): string => (x.usPerReq === null ? '' : `${x.usPerReq.toFixed(1).padStart(7)} µs/req  `)
  const lines = [`busy ${summary.busyMs} ms, idle ${summary.idleMs} ms` +
    (summary.busyUsPerReq === null ? '' : `, ${summary.busyUsPerReq} µs main-thread CPU per request`) +
    ' (sample counts x median interval; % of busy samples)', '', 'self time by group:']
  for (const g of summary.groups.filter((x) => x.pct >= 0.1)) lines.push(`  ${g.pct.toFixed(1).padStart(5)} %  ${perReq(g)}${g.group}`)
  lines.push('', 'node internals by module:')
  for (const g of summary.nodeInternals) lines.push(`  ${g.pct.toFixed(1).padStart(5)} %  ${perReq(g)}${g.group}`)
  lines.push('', 'top self-time functions:')
  for (const f of summary.topSelf) lines.push(`  ${f.pct.toFixed(1).padStart(5)} %  ${perReq(f)}${f.name}  [${f.group}]  ${f.location}`)
  lines.push('', `weir's own code incl. the node/prom-client calls it makes: ${summary.weirOwnPct.toFixed(1)} % of busy time`)
  for (const f of summary.weirOwn) lines.push(`  ${f.pct.toFixed(1).padStart(5)} %  ${perReq(f)}${f.name}  ${f.location}`)
  return lines.join('\n')
}

export function formatComparison (c: ProfileComparison): string {
  const n = (x: number): string => x.toFixed(2).padStart(8)
  const lines = [`main-thread CPU µs per request: ${c.base} ${c.busyUsPerReq.base}, ${c.other} ${c.busyUsPerReq.other} (+${c.busyUsPerReq.delta})`,
    '', `  ${c.base.padStart(8)}  ${c.other.padStart(8)}     delta  group`]
  for (const g of c.groups) lines.push(`  ${n(g.base)}  ${n(g.other)}  ${n(g.delta)}  ${g.group}`)
  lines.push('', 'functions that grew most (µs/req):', `  ${c.base.padStart(8)}  ${c.other.padStart(8)}     delta  function`)
  for (const f of c.grew) lines.push(`  ${n(f.base)}  ${n(f.other)}  ${n(f.delta)}  ${f.name}  [${f.group}]  ${f.location}`)
  return lines.join('\n')
}

if (import.meta.main) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile.ts <file.cpuprofile> [top]\n')
    process.exit(2)
  }
  const summary = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, { top: Number(process.argv[3] ?? 10) })
  process.stdout.write(formatProfile(summary) + '\n')
}
