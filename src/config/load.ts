// Reads a config file (YAML or JSON), interpolates ${ENV}, applies the schema's defaults and
// checks every rule, returning either a normalized Config or the complete list of problems.

import { readFileSync } from 'node:fs'
import { dirname, extname, resolve } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { LineCounter, parseDocument, type Document } from 'yaml'
import type { Problem } from '../errors.ts'
import { extractEnvRefs, interpolate } from './env.ts'
import type { Config } from './model.ts'
import { normalize, type SecretsFromEnv } from './normalize.ts'
import { passingPart } from './passing-part.ts'
import { schemaProblems } from './problems.ts'
import { ConfigSchema, type ConfigInput } from './schema.ts'

export type LoadResult = { ok: true; config: Config } | { ok: false; problems: Problem[] }

export interface LoadOptions { env?: Readonly<Record<string, string | undefined>> }

/** Loads and validates a config file. Never throws for a bad file: problems are returned. */
export function loadConfigFile (file: string, options: LoadOptions = {}): LoadResult {
  const path = resolve(file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return { ok: false, problems: [{ path: '(file)', reason: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] }
  }
  const { text: safeText, refs } = extractEnvRefs(text)
  const parsed = parseText(safeText, extname(path).toLowerCase())
  if (!parsed.ok) return { ok: false, problems: parsed.problems.map((p) => ({ ...p, file })) }
  const unset: Problem[] = []
  const interpolated = interpolate(parsed.value, refs, options.env ?? process.env, '', unset)
  // An unset variable hides nothing else: the rest of the file is checked too, except what
  // follows from that value being empty.
  const built = buildConfig(interpolated, { file: path, env: options.env ?? process.env })
  if (built.ok && unset.length === 0) return built
  const rest = built.ok ? [] : built.problems.filter((p) => !unset.some((u) => p.path === u.path || p.path.startsWith(u.path + '.') || p.path.startsWith(u.path + '[')))
  const lines = lineFinder(safeText)
  return { ok: false, problems: [...unset, ...rest].map((p) => locate(p, file, lines)) }
}

/** The file and, when the document has the path (or a parent of it), its line. */
function locate (problem: Problem, file: string, lineOf: (path: string) => number | undefined): Problem {
  const line = lineOf(problem.path)
  return { ...problem, file, ...(line === undefined ? {} : { line }) }
}

/** Line numbers of config paths (`routes[0].weights.canary`), read from the YAML (or JSON) source. */
function lineFinder (text: string): (path: string) => number | undefined {
  const counter = new LineCounter()
  let doc: Document
  try {
    doc = parseDocument(text, { lineCounter: counter, keepSourceTokens: false })
  } catch {
    return () => undefined
  }
  return (path) => {
    const keys: (string | number)[] = []
    for (const match of path.matchAll(/([^.[\]]+)|\[([0-9]+)\]/g)) keys.push(match[2] !== undefined ? Number(match[2]) : match[1] as string)
    for (let n = keys.length; n > 0; n--) {
      const node = doc.getIn(keys.slice(0, n), true) as { range?: [number, number, number] } | undefined
      if (node?.range !== undefined) return counter.linePos(node.range[0]).line
    }
    return undefined
  }
}

function parseText (text: string, ext: string): { ok: true; value: unknown } | { ok: false; problems: Problem[] } {
  if (ext === '.json') {
    try {
      return { ok: true, value: JSON.parse(text) }
    } catch (err) {
      return { ok: false, problems: [{ path: '(file)', reason: `invalid JSON: ${(err as Error).message}` }] }
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true })
  if (doc.errors.length > 0) {
    // The first syntax error is the useful one; the rest usually follow from it.
    const first = doc.errors[0]
    const line = first?.linePos?.[0]?.line
    return { ok: false, problems: [{ path: '(file)', reason: `invalid YAML: ${first?.message.split('\n')[0] ?? ''}`, ...(line === undefined ? {} : { line }) }] }
  }
  return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) }
}

/** Validates an already-parsed, interpolated config document. */
export function buildConfig (input: unknown, options: LoadOptions & { file?: string } = {}): LoadResult {
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(input))
  const problems = schemaProblems(ConfigSchema, withDefaults)
  const baseDir = options.file !== undefined ? dirname(options.file) : process.cwd()
  const secrets: SecretsFromEnv = { adminToken: options.env?.WEIR_ADMIN_TOKEN, webhookSecret: options.env?.WEIR_WEBHOOK_SECRET }
  if (problems.length > 0) {
    problems.push(...rulesOfPassingPart(withDefaults, baseDir, secrets, problems))
    return { ok: false, problems }
  }

  const doc = withDefaults as ConfigInput
  const config = normalize(doc, baseDir, secrets, problems)
  if (problems.length > 0) return { ok: false, problems }
  config.file = options.file
  return { ok: true, config }
}

/**
 * The rule problems of the part of the file that passed the schema, so they print with the
 * schema's own in one run. A rule problem at, inside or around something the schema refused
 * is left out (it would follow from that value being gone), and so are a route's version
 * checks (weights, rules, shadow percent) when its upstreams were refused.
 */
function rulesOfPassingPart (doc: unknown, baseDir: string, secrets: SecretsFromEnv, shapeProblems: readonly Problem[]): Problem[] {
  const part = passingPart(doc)
  if (part === undefined) return []
  const refused = [...shapeProblems.map((p) => p.path), ...part.cut]
  for (const path of refused) {
    const upstreams = /^(routes\[[0-9]+\])\.upstreams\b/.exec(path)
    if (upstreams !== null) refused.push(...['weights', 'rules', 'shadow.percent'].map((key) => `${upstreams[1]}.${key}`))
  }
  const ruleProblems: Problem[] = []
  normalize(part.doc as ConfigInput, baseDir, secrets, ruleProblems)
  return ruleProblems.filter((p) => !refused.some((path) => related(p.path, path)))
}

/** One path is the other, or inside it. */
function related (a: string, b: string): boolean {
  const inside = (x: string, y: string): boolean => x === y || x.startsWith(y + '.') || x.startsWith(y + '[')
  return inside(a, b) || inside(b, a)
}
