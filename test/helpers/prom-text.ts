// A strict parser of the Prometheus text exposition format (0.0.4) for tests: every line must
// be a HELP or TYPE line, a comment, blank, or a `name{labels} value [timestamp]` sample; a
// family's samples are one group after its TYPE; histograms have cumulative, monotonic buckets
// ending in +Inf that equal _count, and a _sum. Anything else throws, naming the line.

import { send } from './http.ts'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  help: string | undefined
  samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Record<Family['type'], readonly string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
}

export class PromText {
  readonly families = new Map<string, Family>()

  /** The value of one series (labels must match exactly), or undefined when it is absent. */
  value (name: string, labels: Record<string, string> = {}): number | undefined {
    return this.find(name, labels)?.value
  }

  /** Every sample of `name` whose labels include `labels`. */
  select (name: string, labels: Record<string, string> = {}): Sample[] {
    const family = this.familyOf(name)
    if (family === undefined) return []
    return family.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  }

  private find (name: string, labels: Record<string, string>): Sample | undefined {
    const wanted = Object.keys(labels).length
    return this.select(name, labels).find((s) => Object.keys(s.labels).length === wanted)
  }

  /** The family a sample name belongs to (`x_bucket` → histogram `x`). */
  familyOf (sampleName: string): Family | undefined {
    for (const suffix of ['', '_bucket', '_sum', '_count']) {
      if (!sampleName.endsWith(suffix)) continue
      const family = this.families.get(sampleName.slice(0, sampleName.length - suffix.length))
      if (family !== undefined && SUFFIXES[family.type].includes(suffix)) return family
    }
    return undefined
  }
}

/** GET /metrics from an admin server (its base URL), parsed; throws unless it answers 200. */
export async function scrape (adminUrl: string): Promise<PromText> {
  const reply = await send(adminUrl + '/metrics')
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}`)
  return parsePromText(reply.body)
}

export function parsePromText (text: string): PromText {
  const out = new PromText()
  if (text !== '' && !text.endsWith('\n')) throw new Error('exposition does not end with a newline')
  const lines = text.split('\n')
  lines.pop()
  /** Families whose sample group has ended: a later sample of theirs is an error. */
  const closed = new Set<string>()
  let current: Family | undefined
  const typed = new Set<string>()
  const series = new Set<string>()
  lines.forEach((line, i) => {
    const where = `line ${i + 1} "${line}"`
    if (line.trim() === '') return
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line)
      if (m === null) return // an ordinary comment
      const [, kind, name = '', rest = ''] = m
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name`)
      let family = out.families.get(name)
      if (family !== undefined && family.samples.length > 0) throw new Error(`${where}: ${kind} after the family's samples`)
      if (family === undefined) {
        family = { name, type: 'untyped', help: undefined, samples: [] }
        out.families.set(name, family)
      }
      if (kind === 'HELP') {
        if (family.help !== undefined) throw new Error(`${where}: second HELP`)
        family.help = unescape(rest, where, false)
      } else {
        if (!TYPES.has(rest.trim())) throw new Error(`${where}: unknown type`)
        if (typed.has(name)) throw new Error(`${where}: second TYPE`)
        typed.add(name)
        family.type = rest.trim() as Family['type']
      }
      if (current !== undefined && current !== family) closed.add(current.name)
      current = family
      return
    }
    const sample = parseSample(line, where)
    let family = out.familyOf(sample.name)
    if (family === undefined) {
      // A sample without TYPE is an untyped family of its own.
      family = { name: sample.name, type: 'untyped', help: undefined, samples: [] }
      out.families.set(sample.name, family)
    }
    if (closed.has(family.name)) throw new Error(`${where}: sample of ${family.name} outside its group`)
    if (current !== undefined && current !== family) closed.add(current.name)
    current = family
    const key = sample.name + JSON.stringify(Object.entries(sample.labels).sort())
    if (series.has(key)) throw new Error(`${where}: duplicate series`)
    series.add(key)
    family.samples.push(sample)
  })
  for (const family of out.families.values()) {
    if (family.type === 'histogram') checkHistogram(family)
    if (family.type === 'counter') {
      for (const s of family.samples) if (!(s.value >= 0)) throw new Error(`${s.name}: counter value ${s.value} is not >= 0`)
    }
  }
  return out
}

function parseSample (line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
  if (nameMatch === null) throw new Error(`${where}: no metric name`)
  const name = nameMatch[0]
  let pos = name.length
  const labels: Record<string, string> = {}
  if (line[pos] === '{') {
    pos++
    while (line[pos] !== '}') {
      const labelMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(pos))
      if (labelMatch === null) throw new Error(`${where}: bad label at column ${pos + 1}`)
      const label = labelMatch[1] as string
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new Error(`${where}: reserved or bad label name ${label}`)
      if (label in labels) throw new Error(`${where}: label ${label} twice`)
      pos += labelMatch[0].length
      let raw = ''
      while (line[pos] !== '"') {
        if (pos >= line.length) throw new Error(`${where}: unterminated label value`)
        if (line[pos] === '\\') {
          raw += line.slice(pos, pos + 2)
          pos += 2
        } else {
          raw += line[pos]
          pos++
        }
      }
      labels[label] = unescape(raw, where, true)
      pos++
      if (line[pos] === ',') pos++
      else if (line[pos] !== '}') throw new Error(`${where}: expected , or } at column ${pos + 1}`)
    }
    pos++
  }
  const rest = line.slice(pos)
  const m = /^ +(\S+)(?: +(-?\d+))?$/.exec(rest)
  if (m === null) throw new Error(`${where}: expected " value [timestamp]"`)
  return { name, labels, value: parseValue(m[1] as string, where) }
}

function parseValue (text: string, where: string): number {
  if (/^[+]?inf$/i.test(text)) return Infinity
  if (/^-inf$/i.test(text)) return -Infinity
  if (/^nan$/i.test(text)) return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${text}`)
  return Number(text)
}

/** HELP text escapes \\ and \n; label values also \". */
function unescape (raw: string, where: string, quotes: boolean): string {
  return raw.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\'
    if (c === 'n') return '\n'
    if (c === '"' && quotes) return '"'
    throw new Error(`${where}: bad escape \\${c}`)
  })
}

function checkHistogram (family: Family): void {
  const groups = new Map<string, { buckets: { le: number; value: number }[]; sum?: number; count?: number }>()
  for (const s of family.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    let group = groups.get(key)
    if (group === undefined) {
      group = { buckets: [] }
      groups.set(key, group)
    }
    if (s.name === family.name + '_bucket') {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le (${key})`)
      group.buckets.push({ le: parseValue(le, `${family.name} le`), value: s.value })
    } else if (s.name === family.name + '_sum') {
      group.sum = s.value
    } else {
      if (le !== undefined) throw new Error(`${family.name}: le on ${s.name}`)
      group.count = s.value
    }
  }
  for (const [key, group] of groups) {
    const sorted = [...group.buckets].sort((a, b) => a.le - b.le)
    if (sorted.length === 0 || sorted.at(-1)?.le !== Infinity) throw new Error(`${family.name} ${key}: no +Inf bucket`)
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1] as { le: number; value: number }
      const b = sorted[i] as { le: number; value: number }
      if (a.le === b.le) throw new Error(`${family.name} ${key}: bucket le=${b.le} twice`)
      if (b.value < a.value) throw new Error(`${family.name} ${key}: bucket le=${b.le} (${b.value}) below le=${a.le} (${a.value})`)
    }
    if (group.count === undefined || group.sum === undefined) throw new Error(`${family.name} ${key}: _sum or _count missing`)
    if (group.count !== sorted.at(-1)?.value) throw new Error(`${family.name} ${key}: _count ${group.count} != +Inf bucket ${sorted.at(-1)?.value}`)
  }
}
