// Absolute-form request targets (RFC 9112 §3.2.2): `GET http://shop.example.com/x HTTP/1.1`, as
// clients send to a proxy. The target's authority replaces Host, for routing and forwarding, and
// the upstream gets the origin-form path. Parsed by hand: WHATWG URL parsing would resolve the
// path's dot segments before weir refuses `..` ones (forward.ts upstreamPath).

/** An absolute-form target split into its Host and its origin-form path, or null when weir refuses it (400). */
export interface OriginForm { host: string; path: string }

const SCHEME = /^(https?):\/\//i
/** reg-name, IPv4 or [IPv6] and an optional port; no userinfo (RFC 9110 §4.2.4: treat it as an error). */
const AUTHORITY = /^(\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+,;=%-]+)(:[0-9]*)?$/i

/**
 * `http://Shop.example.com:8080/x?y` → { host: 'Shop.example.com:8080', path: '/x?y' }; an empty
 * path is `/`. Null for any other scheme, an empty authority, or one with userinfo.
 */
export function originFormOf (target: string): OriginForm | null {
  const scheme = SCHEME.exec(target)
  if (scheme === null) return null
  const from = scheme[0].length
  let end = from
  while (end < target.length) {
    const c = target.charCodeAt(end)
    // The authority ends at the path, the query or a fragment (a client should send none).
    if (c === 47 || c === 63 || c === 35) break
    end++
  }
  const host = target.slice(from, end)
  if (!AUTHORITY.test(host)) return null
  let path = target.slice(end)
  const hash = path.indexOf('#')
  if (hash !== -1) path = path.slice(0, hash)
  if (path === '' || path.charCodeAt(0) === 63) path = '/' + path
  return { host, path }
}
