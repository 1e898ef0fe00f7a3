// The signed bucket cookie: `<bucket>.<mac>` where mac is the first 16 bytes (base64url) of
// HMAC-SHA256(secret, "weir-bucket:" + bucket). Anything else is ignored and replaced.

import { createHmac, createSecretKey } from 'node:crypto'
import { BUCKETS } from '../vocabulary.ts'

export interface BucketCookie {
  /** The bucket of the first validly signed cookie of this name, or -1. Never throws. */
  read (cookieHeader: string | undefined): number
  /** A ready-to-send Set-Cookie value for `bucket`. */
  setCookie (bucket: number, secure: boolean): string
}

const MAX_VALUE_LENGTH = 4 + 1 + 22

/** Buckets signed per turn of the event loop while a signer prefills (a few ms of work). */
const PREFILL_CHUNK = 250

/** Signs buckets; every signature is computed once and kept, so verifying a cookie is a string compare. */
export interface BucketSigner {
  (bucket: number): string
  /** How many of the BUCKETS signatures are computed so far. */
  readonly signed: number
}

/**
 * With `prefill`, the first signature asked for starts computing all the others in the
 * background, PREFILL_CHUNK per turn of the event loop (about 65 ms of CPU in all on this
 * project's VM), so that no request pays for an HMAC once it is done. Without it, a process
 * giving anonymous clients random buckets would sign on the request path until most of the
 * 10 000 buckets had come up: about 90 000 requests. A process that never signs never fills.
 */
export function createBucketSigner (secret: string, options: { prefill?: boolean } = {}): BucketSigner {
  const key = createSecretKey(Buffer.from(secret))
  const signatures: (string | undefined)[] = new Array(BUCKETS)
  let signed = 0
  // Set until the first signature starts the background fill.
  let fillPending = options.prefill === true
  let next = 0
  const fill = (): void => {
    for (const end = Math.min(next + PREFILL_CHUNK, BUCKETS); next < end; next++) if (signatures[next] === undefined) sign(next)
    // Unref'd: a process with nothing else to do exits without waiting for it.
    if (next < BUCKETS) setImmediate(fill).unref()
  }
  function sign (bucket: number): string {
    const sig = createHmac('sha256', key).update('weir-bucket:' + bucket).digest().subarray(0, 16).toString('base64url')
    signatures[bucket] = sig
    signed++
    if (fillPending) {
      fillPending = false
      setImmediate(fill).unref()
    }
    return sig
  }
  const signature = (bucket: number): string => signatures[bucket] ?? sign(bucket)
  return Object.defineProperty(signature, 'signed', { get: () => signed }) as BucketSigner
}

export function createBucketCookie (name: string, maxAgeSeconds: number, signature: (bucket: number) => string): BucketCookie {
  const nameEq = name + '='
  const attributes = `; Max-Age=${maxAgeSeconds}; Path=/; HttpOnly; SameSite=Lax`

  function verify (header: string, start: number, end: number): number {
    const length = end - start
    if (length < 3 || length > MAX_VALUE_LENGTH) return -1
    let bucket = 0
    let i = start
    for (; i < end; i++) {
      const c = header.charCodeAt(i)
      if (c === 46 /* . */) break
      if (c < 48 || c > 57 || i - start >= 4) return -1
      bucket = bucket * 10 + (c - 48)
    }
    if (i === start || i >= end - 1 || bucket >= BUCKETS) return -1
    // Not constant-time on purpose: a forged cookie only picks a bucket, which an override can do anyway.
    const sig = signature(bucket)
    return end - i - 1 === sig.length && header.startsWith(sig, i + 1) ? bucket : -1
  }

  return {
    read (header) {
      if (header === undefined) return -1
      // Several cookies may share the name (other paths, stale copies): the first valid one wins.
      for (let start = cookieValueStart(header, nameEq, 0); start !== -1; start = cookieValueStart(header, nameEq, start)) {
        const bucket = verify(header, start, cookieValueEnd(header, start))
        if (bucket !== -1) return bucket
      }
      return -1
    },
    setCookie (bucket, secure) {
      return nameEq + bucket + '.' + signature(bucket) + (secure ? attributes + '; Secure' : attributes)
    },
  }
}

/** Where the value of the next cookie `nameEq` ("name=") starts at or after `from`, or -1. */
function cookieValueStart (header: string, nameEq: string, from: number): number {
  for (;;) {
    const at = header.indexOf(nameEq, from)
    if (at === -1) return -1
    const before = at === 0 ? 59 : header.charCodeAt(at - 1)
    if (before === 59 /* ; */ || before === 32 /* space */) return at + nameEq.length
    from = at + 1
  }
}

function cookieValueEnd (header: string, start: number): number {
  let end = header.indexOf(';', start)
  if (end === -1) end = header.length
  while (end > start && header.charCodeAt(end - 1) === 32) end--
  return end
}

/** The value of cookie `nameEq` ("name=") in a Cookie header, or undefined. For user-id and override cookies. */
export function readCookie (header: string | undefined, nameEq: string): string | undefined {
  if (header === undefined) return undefined
  const start = cookieValueStart(header, nameEq, 0)
  if (start === -1) return undefined
  const end = cookieValueEnd(header, start)
  return end > start ? header.slice(start, end) : undefined
}
