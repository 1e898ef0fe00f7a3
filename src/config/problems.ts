// Config and request problems: every schema violation with its path, and how they are printed
// (`path: reason`, one a line). Shared by the config file, `weir validate` and the admin API.

import type { TSchema } from '@sinclair/typebox'
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value'
import type { Problem } from '../errors.ts'

/**
 * Every schema violation of `value`, one per path (a union reports each branch's failure too),
 * with paths like `routes[0].weights.canary` under `prefix`. Shared with the admin API so a
 * value is judged the same way in a file and in a request.
 */
export function schemaProblems (schema: TSchema, value: unknown, prefix = ''): Problem[] {
  const problems: Problem[] = []
  for (const error of expandUnions(Value.Errors(schema, value))) {
    const rel = pointerToPath(error.path)
    const path = prefix === '' ? rel : rel === '(root)' ? prefix : rel.startsWith('[') ? prefix + rel : `${prefix}.${rel}`
    if (problems.some((p) => p.path === path)) continue
    const custom = (error.schema as { errorMessage?: string }).errorMessage
    problems.push({ path, reason: custom ?? lowerFirst(error.message) })
  }
  return problems
}

/** Where `value` breaks `schema`, each place as its keys (`['routes', 0, 'weights']`), deepest first within a union. */
export function schemaErrorKeys (schema: TSchema, value: unknown): (string | number)[][] {
  return [...expandUnions(Value.Errors(schema, value))].map((error) => pointerKeys(error.path))
}

/** `['routes', 0, 'weights']` → "routes[0].weights" */
export function keysToPath (keys: readonly (string | number)[]): string {
  let out = ''
  for (const key of keys) out += typeof key === 'number' ? `[${key}]` : (out === '' ? key : `.${key}`)
  return out === '' ? '(root)' : out
}

/**
 * A union whose value has the shape of exactly one branch (an object where the others are
 * literals: `override: {…} | false`) reports that branch's errors, which name the field.
 */
function * expandUnions (errors: Iterable<ValueError>): Generator<ValueError> {
  for (const error of errors) {
    if (error.type === ValueErrorType.Union && error.errors.length > 0) {
      const deeper = error.errors.map((branch) => [...branch]).filter((list) => list.length > 0 && list.every((e) => e.path !== error.path))
      if (deeper.length === 1) {
        yield * expandUnions(deeper[0] as ValueError[])
        continue
      }
    }
    yield error
  }
}

/** One `path: reason` line per problem; a config file's problems end with `(file:line)`. */
export function formatProblems (problems: readonly Problem[]): string {
  const where = (p: Problem): string => p.file === undefined ? '' : ` (${p.file}${p.line === undefined ? '' : `:${p.line}`})`
  return problems.map((p) => `${p.path}: ${p.reason}${where(p)}`).join('\n')
}

/** "/routes/0/weights/stable" → "routes[0].weights.stable" */
function pointerToPath (pointer: string): string {
  return keysToPath(pointerKeys(pointer))
}

/** "/routes/0/weights" → ['routes', 0, 'weights'] */
function pointerKeys (pointer: string): (string | number)[] {
  if (pointer === '') return []
  return pointer.slice(1).split('/').map((raw) => {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    return /^[0-9]+$/.test(part) ? Number(part) : part
  })
}

function lowerFirst (text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1)
}
