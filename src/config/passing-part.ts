// The part of a config document that passes the schema. When the schema fails somewhere, the
// cross-field rules are checked on this part, so one `weir validate` run names the shape
// problems and the rule problems together (an unknown key no longer hides a duplicated route
// name or a non-loopback admin without a token).

import { Value } from '@sinclair/typebox/value'
import { keysToPath, schemaErrorKeys } from './problems.ts'
import { ConfigSchema, RouteSchema } from './schema.ts'

export interface PassingPart {
  /** Valid against ConfigSchema, defaults applied: the file without what broke the schema. */
  doc: unknown
  /** What was taken out or stood in for, as paths (`routes[2].upstreams`, `admin.tokens.Bad Name`). */
  cut: string[]
}

/** Stands in for a route's upstreams when the route cannot stand without them; never reported (it is cut). */
const STAND_IN_UPSTREAMS = { stable: 'http://127.0.0.1' }

/**
 * Takes out, one by one, what breaks the schema: a value (the schema's default, if any, takes
 * its place), else the object holding it. An item of a list takes its list with it, so no
 * problem path shifts. A route that cannot stand keeps its place and, when it is well-formed,
 * its name (so a duplicated name is still found), with stand-in upstreams. Undefined when
 * there is nothing to check (the document is not an object).
 */
export function passingPart (input: unknown): PassingPart | undefined {
  let doc = Value.Clone(input) as Record<string, unknown>
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined
  const cut = new Set<string>()
  // The rest of the file is worth checking without routes: they are checked as a list of none.
  if (!Array.isArray(doc.routes)) {
    doc.routes = []
    cut.add('routes')
  }
  // Each round takes out at least one thing and cut only grows, so the document's size bounds the rounds.
  for (let round = 0; round < 10_000; round++) {
    const errors = schemaErrorKeys(ConfigSchema, doc).filter((keys) => !(keys.length === 1 && keys[0] === 'routes'))
    if (errors.length === 0) return { doc, cut: [...cut] }
    // What this round took out: an error inside it went with it (the next round says if not).
    const taken: (string | number)[][] = []
    for (const keys of errors) {
      if (taken.some((t) => t.every((key, i) => keys[i] === key))) continue
      let target = removable(keys, cut)
      while (target !== undefined && !isRoute(target)) {
        cut.add(keysToPath(target))
        if (removeAt(doc, target)) break
        // Nothing there (a required key is missing): its holder goes.
        target = removable(target, cut)
      }
      if (target === undefined) return undefined
      taken.push(target)
      if (isRoute(target)) standIn(doc.routes as unknown[], target[1] as number, cut)
    }
    doc = Value.Default(ConfigSchema, doc) as Record<string, unknown>
  }
  return undefined
}

/** Replaces routes[i] by a route of its well-formed name (if it has one) and stand-in upstreams, cutting all else. */
function standIn (routes: unknown[], i: number, cut: Set<string>): void {
  const route = routes[i]
  const keys = route !== null && typeof route === 'object' && !Array.isArray(route) ? Object.keys(route) : []
  const name = (route as { name?: unknown } | undefined)?.name
  const named = Value.Check(RouteSchema.properties.name, name)
  for (const key of new Set([...keys, 'upstreams'])) if (key !== 'name' || !named) cut.add(`routes[${i}].${key}`)
  if (!named) cut.add(`routes[${i}].name`)
  routes[i] = { name: named ? name : `cut-${i}`, upstreams: STAND_IN_UPSTREAMS }
}

/** The place to take out for a schema error at `keys`: itself, else the nearest holder not yet cut. */
function removable (keys: readonly (string | number)[], cut: ReadonlySet<string>): (string | number)[] | undefined {
  let target = [...keys]
  for (;;) {
    if (target.length === 0) return undefined
    const inList = typeof target[target.length - 1] === 'number' && !isRoute(target)
    if (!inList && (isRoute(target) || !cut.has(keysToPath(target)))) return target
    target = target.slice(0, -1)
  }
}

function isRoute (keys: readonly (string | number)[]): boolean {
  return keys.length === 2 && keys[0] === 'routes' && typeof keys[1] === 'number'
}

/** Deletes the value at `keys`; false when there is nothing there to delete. */
function removeAt (doc: Record<string, unknown>, keys: readonly (string | number)[]): boolean {
  let holder: unknown = doc
  for (const key of keys.slice(0, -1)) {
    if (holder === null || typeof holder !== 'object') return false
    holder = (holder as Record<string | number, unknown>)[key]
  }
  const last = keys[keys.length - 1] as string | number
  if (holder === null || typeof holder !== 'object' || Array.isArray(holder) || !(last in holder)) return false
  return delete (holder as Record<string | number, unknown>)[last]
}
