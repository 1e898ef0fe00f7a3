// Who may call the admin API, and from where: bearer tokens compared in constant time, and the
// checks that leave a browser no way in (cross-site writes, DNS rebinding, form content types).

import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { AdminToken } from '../config/model.ts'
import { isLoopbackHost } from '../config/rules.ts'

export type Authenticator = (authorization: string | undefined) => string | null

/**
 * Returns the name of the token a request carries, or null. Every configured token is compared
 * (as SHA-256 digests, so lengths leak nothing) whatever matched, so timing reveals neither
 * which token nor how much of one was right.
 */
export function createAuthenticator (tokens: readonly AdminToken[]): Authenticator {
  const digests = tokens.map((t) => ({ name: t.name, digest: sha256(t.token) }))
  return (authorization) => {
    if (authorization === undefined) return null
    const match = /^Bearer +(\S+) *$/i.exec(authorization)
    if (match === null) return null
    const given = sha256(match[1] as string)
    let found: string | null = null
    for (const { name, digest } of digests) {
      if (timingSafeEqual(given, digest) && found === null) found = name
    }
    return found
  }
}

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/**
 * A write a browser page on another site could have made: an `Origin` that is not this admin
 * server's own, or `Sec-Fetch-Site` other than same-origin/none. Non-browser clients send
 * neither header and pass.
 */
export function isCrossSiteWrite (headers: IncomingHttpHeaders): boolean {
  const site = headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true
  const origin = headers.origin
  if (origin === undefined) return false
  if (origin === 'null') return true
  try {
    return new URL(origin).host !== headers.host
  } catch {
    return true
  }
}

/**
 * Without a token the admin API trusts loopback callers only; a page using DNS rebinding reaches
 * 127.0.0.1 under its own host name, so the Host header must name a loopback address.
 */
export function isLoopbackHostHeader (host: string | undefined): boolean {
  if (host === undefined) return false
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:[0-9]*$/, '')
  return isLoopbackHost(name.toLowerCase())
}

/** `application/json`, optionally with parameters (charset); nothing else counts as JSON here. */
export function isJsonContentType (value: string | undefined): boolean {
  if (value === undefined) return false
  const type = value.split(';', 1)[0]?.trim().toLowerCase()
  return type === 'application/json'
}
