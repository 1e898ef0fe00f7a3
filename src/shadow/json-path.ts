// The paths of `shadow.ignore.json`: which JSON fields a comparison leaves out. A small,
// predictable subset of JSONPath: `$.a.b`, `a.b` (the `$.` is optional), `items[*].id`,
// `items[0]`, `*` for every key of an object, and `["a.b"]` for a key with dots or brackets.

/** One step of a path: an object key, an array index, or every key / element. */
export type PathSegment =
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'any' }

export type ParsedPath = { ok: true; segments: readonly PathSegment[] } | { ok: false; reason: string }

const PLAIN_KEY = /^[A-Za-z0-9_$@:-]+$/

/** Parses one ignore path; a path that is not understood is refused, never half-applied. */
export function parseJsonPath (text: string): ParsedPath {
  let rest = text.trim()
  if (rest === '$' || rest === '') return { ok: false, reason: 'must name a field (e.g. $.meta.timestamp), not the whole body' }
  if (rest.startsWith('$.')) rest = rest.slice(2)
  else if (rest.startsWith('$[')) rest = rest.slice(1)
  const segments: PathSegment[] = []
  let i = 0
  let expectKey = true
  while (i < rest.length) {
    const c = rest[i]
    if (c === '[') {
      const close = rest.startsWith('["', i) ? rest.indexOf('"]', i + 2) : rest.indexOf(']', i)
      if (close === -1) return { ok: false, reason: `has an unclosed "[" at character ${i + 1}` }
      if (rest.startsWith('["', i)) {
        const key = rest.slice(i + 2, close)
        if (key === '' || key.includes('"')) return { ok: false, reason: 'has an empty or malformed ["key"]' }
        segments.push({ kind: 'key', key })
        i = close + 2
      } else {
        const inner = rest.slice(i + 1, close)
        if (inner === '*') segments.push({ kind: 'any' })
        else if (/^[0-9]{1,9}$/.test(inner)) segments.push({ kind: 'index', index: Number(inner) })
        else return { ok: false, reason: `has "[${inner}]": use [*], a number, or ["key"]` }
        i = close + 1
      }
      expectKey = false
      continue
    }
    if (c === '.') {
      if (expectKey) return { ok: false, reason: `has an empty field name at character ${i + 1}` }
      expectKey = true
      i++
      continue
    }
    if (!expectKey) return { ok: false, reason: `needs a "." or "[" before character ${i + 1}` }
    let end = i
    while (end < rest.length && rest[end] !== '.' && rest[end] !== '[') end++
    const key = rest.slice(i, end)
    if (key === '*') segments.push({ kind: 'any' })
    else if (PLAIN_KEY.test(key)) segments.push({ kind: 'key', key })
    else return { ok: false, reason: `has the field name "${key}": quote it as ["${key}"]` }
    i = end
    expectKey = false
  }
  if (expectKey) return { ok: false, reason: 'ends with "."' }
  return { ok: true, segments }
}
