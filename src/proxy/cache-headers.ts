// What shared caches may do with weir's responses (RFC 9111): a response that sets the bucket
// cookie is the answer for one client's bucket and must not be stored by a shared cache (a CDN
// would replay the cookie, and the version, to everyone), and every response names in Vary the
// request headers its version was chosen by. The upstream's own directives are merged, not replaced.

/** Cache-Control directives that let a shared cache store a response; dropped from a private one. */
const SHARED_ONLY: ReadonlySet<string> = new Set(['public', 's-maxage'])

/**
 * Headers that tell a CDN how to cache, before (or instead of) Cache-Control: RFC 9213's
 * CDN-Cache-Control, Cloudflare's, Fastly's and Akamai's Surrogate-Control / Edge-Control. Removed
 * from a private response, so that the CDN reads Cache-Control: private.
 */
export const CDN_CACHE_HEADERS = ['cdn-cache-control', 'cloudflare-cdn-cache-control', 'surrogate-control', 'edge-control'] as const

/** The directives of a Cache-Control value (or several header lines), split at commas outside quoted strings. */
export function cacheDirectives (value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return []
  const text = typeof value === 'string' ? value : value.join(',')
  const out: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i <= text.length; i++) {
    const c = text.charCodeAt(i)
    if (quoted) {
      if (c === 92) i++ // a backslash escapes the next character inside a quoted string
      else if (c === 34) quoted = false
    } else if (c === 34) quoted = true
    else if (c === 44 || Number.isNaN(c)) {
      const directive = text.slice(start, i).trim()
      if (directive !== '') out.push(directive)
      start = i + 1
    }
  }
  return out
}

/** A directive's name, lower case (`S-MaxAge=60` → `s-maxage`). */
export function directiveName (directive: string): string {
  const eq = directive.indexOf('=')
  return (eq === -1 ? directive : directive.slice(0, eq)).trim().toLowerCase()
}

/**
 * The Cache-Control of a response that must not be stored by a shared cache: the upstream's
 * directives without `public` and `s-maxage` (which would let one store it), a qualified
 * `private="…"` (which lets one store the rest) made unqualified, and `private` added unless
 * the upstream already said `private` or `no-store`. What a browser may do (max-age, no-cache,
 * must-revalidate, ...) is kept.
 */
export function privateCacheControl (value: string | readonly string[] | undefined): string {
  const kept: string[] = []
  let closed = false
  for (const directive of cacheDirectives(value)) {
    const name = directiveName(directive)
    if (SHARED_ONLY.has(name)) continue
    if (name === 'private') {
      if (!closed) kept.unshift('private')
      closed = true
      continue
    }
    if (name === 'no-store') closed = true
    kept.push(directive)
  }
  if (!closed) kept.unshift('private')
  return kept.join(', ')
}

/**
 * The upstream's Vary with weir's names added (case-insensitively, each once); `*` stays `*`.
 * `ours` is the route's precomputed list (routing/vary.ts).
 */
export function mergeVary (upstream: string | readonly string[] | undefined, ours: string): string {
  if (upstream === undefined || upstream === '') return ours
  const text = typeof upstream === 'string' ? upstream : upstream.join(', ')
  const names = text.split(',').map((n) => n.trim()).filter((n) => n !== '')
  if (names.includes('*')) return '*'
  const seen = new Set(names.map((n) => n.toLowerCase()))
  for (const name of ours.split(', ')) if (!seen.has(name.toLowerCase())) names.push(name)
  return names.join(', ')
}
