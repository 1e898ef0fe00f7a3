// Reads a config file (YAML or JSON), interpolates ${ENV}, applies the schema's defaults and
// checks every rule, returning either a normalized Config or the complete list of problems.

import { readFileSync } from 'node:fs'
import { dirname, extname, resolve } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { parseDocument } from 'yaml'
import type { Problem } from '../errors.ts'
import { extractEnvRefs, interpolate } from './env.ts'
import type { Config } from './model.ts'
import { normalize, reportRouteRules } from './normalize.ts'
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
  if (!parsed.ok) return parsed
  const problems: Problem[] = []
  const interpolated = interpolate(parsed.value, refs, options.env ?? process.env, '', problems)
  if (problems.length > 0) return { ok: false, problems }
  return buildConfig(interpolated, { file: path, env: options.env ?? process.env })
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
    const first = doc.errors[0]?.message.split('\n')[0] ?? ''
    return { ok: false, problems: [{ path: '(file)', reason: `invalid YAML: ${first}` }] }
  }
  return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) }
}

/** Validates an already-parsed, interpolated config document. */
export function buildConfig (input: unknown, options: LoadOptions & { file?: string } = {}): LoadResult {
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(input))
  const problems = schemaProblems(ConfigSchema, withDefaults)
  const baseDir = options.file !== undefined ? dirname(options.file) : process.cwd()
  if (problems.length > 0) {
    reportRouteRules(withDefaults, problems)
    return { ok: false, problems }
  }

  const doc = withDefaults as ConfigInput
  const config = normalize(doc, baseDir, options.env?.WEIR_ADMIN_TOKEN, problems)
  if (problems.length > 0) return { ok: false, problems }
  config.file = options.file
  return { ok: true, config }
}
