// What a cache may do with a response, judged from its headers as RFC 9111 defines them, written
// apart from weir's own code (src/proxy/cache-headers.ts) so that tests check meaning, not echo.

import type { IncomingHttpHeaders } from 'node:http'

/** RFC 9111 §5.2: directives are case-insensitive tokens, each with an optional token or quoted-string argument. */
export function parseCacheControl (value: string | string[] | undefined): Map<string, string | true> {
  const out = new Map<string, string | true>()
  const text = Array.isArray(value) ? value.join(',') : value ?? ''
  const re = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+.^_`|~0-9A-Za-z-]+)))?\s*(?:,|$)/gy
  let m: RegExpExecArray | null
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    const name = (m[1] as string).toLowerCase()
    if (!out.has(name)) out.set(name, m[2] ?? m[3] ?? true)
  }
  return out
}

/** RFC 9110 §15.1: status codes a cache may store by heuristic freshness, with no explicit lifetime. */
const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])

/**
 * RFC 9111 §3 ("Storing Responses in Caches"), for a GET response without Authorization: may a
 * cache of this kind store it? A qualified `private="..."` lets a shared cache store the rest of
 * the response (§5.2.2.7), so only an unqualified `private` forbids it.
 */
export function mayStore (kind: 'shared' | 'private', status: number, headers: IncomingHttpHeaders): boolean {
  const cc = parseCacheControl(headers['cache-control'])
  if (cc.has('no-store')) return false
  if (kind === 'shared' && cc.get('private') === true) return false
  return cc.has('public') || (kind === 'private' && cc.has('private')) || headers.expires !== undefined ||
    cc.has('max-age') || (kind === 'shared' && cc.has('s-maxage')) || HEURISTICALLY_CACHEABLE.has(status)
}

/** The names a Vary header lists, lower case. */
export function varyNames (headers: IncomingHttpHeaders): string[] {
  const v = headers.vary
  return (Array.isArray(v) ? v.join(',') : v ?? '').split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '')
}
