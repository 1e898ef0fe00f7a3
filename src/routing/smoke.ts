// The secrets an override may ask for, checked in constant time: the route's own override secret
// and the controller's smoke token (a per-process random value carried in the snapshot, so the
// blue/green smoke check reaches green on a route whose override is off or locked).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

/** The header a client sends the route's override secret in (never forwarded upstream). */
export const OVERRIDE_SECRET_HEADER = 'x-weir-override-secret'

/** The controller's smoke request: `x-weir-smoke: <version> <token>` (never forwarded upstream). */
export const SMOKE_HEADER = 'x-weir-smoke'

/** A fresh smoke token: one per weir process, handed to every worker in the snapshot. */
export function createSmokeToken (): string {
  return randomBytes(24).toString('base64url')
}

/** SHA-256 of a secret: equal-length buffers for timingSafeEqual whatever the lengths given. */
export function digestOf (secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest()
}

/** True when `given` is the secret whose digest is `expected` (constant time in the secret). */
export function secretMatches (expected: Buffer, given: string | string[] | undefined): boolean {
  if (typeof given !== 'string') return false
  return timingSafeEqual(expected, digestOf(given))
}

/** The version a valid smoke header names ("green <token>"), else undefined. */
export function smokeVersionOf (token: Buffer, headers: IncomingHttpHeaders): string | undefined {
  const value = headers[SMOKE_HEADER]
  if (typeof value !== 'string') return undefined
  const space = value.indexOf(' ')
  if (space === -1) return undefined
  return secretMatches(token, value.slice(space + 1)) ? value.slice(0, space) : undefined
}

/**
 * The client's address for an override's `from`: the peer, or — when the peer is a trusted proxy —
 * the nearest X-Forwarded-For entry that is not one (walking right to left, as nginx's
 * real_ip_recursive does). IPv4-mapped IPv6 addresses are read as IPv4.
 */
export function clientAddressOf (peer: string, xff: string | string[] | undefined, trusted: { check: (a: string, t: 'ipv4' | 'ipv6') => boolean } | null): string {
  let address = plain(peer)
  if (trusted === null || typeof xff !== 'string' || xff === '') return address
  const hops = xff.split(',')
  for (let i = hops.length - 1; i >= 0 && isIn(trusted, address); i--) {
    const hop = plain((hops[i] as string).trim())
    if (hop === '') break
    address = hop
  }
  return address
}

/** True when `address` is in `list` (an IPv4-mapped address also as IPv4). */
export function isIn (list: { check: (a: string, t: 'ipv4' | 'ipv6') => boolean }, address: string): boolean {
  try {
    return list.check(address, address.includes(':') ? 'ipv6' : 'ipv4')
  } catch {
    // Not an IP address (a forged X-Forwarded-For entry): in no list.
    return false
  }
}

function plain (address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}
