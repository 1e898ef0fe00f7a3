// The user-id hash that places a user in a bucket: murmurhash3_32 (x86, seed 0) over the UTF-8
// bytes of `route + ":" + userId`, modulo 10 000. Other systems can reproduce it exactly.

import { Buffer } from 'node:buffer'
import { BUCKETS } from '../vocabulary.ts'

/** MurmurHash3 x86_32 over the first `length` bytes of `bytes`. Math.imul keeps it in int32 without the 16-bit split. */
export function murmur3 (bytes: Uint8Array, length: number, seed: number): number {
  let h = seed | 0
  const blocks = length & ~3
  let i = 0
  for (; i < blocks; i += 4) {
    let k = (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const tail = length & 3
  if (tail !== 0) {
    let k = bytes[i] as number
    if (tail >= 2) k ^= (bytes[i + 1] as number) << 8
    if (tail === 3) k ^= (bytes[i + 2] as number) << 16
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const SCRATCH_BYTES = 4096

/**
 * Returns `userId → bucket` for one route. The route prefix is written once into a reused
 * buffer and each id is encoded after it, so hashing allocates nothing (murmurhash's string
 * path allocates a TextEncoder and an array per call; see bench/micro/hash.ts).
 */
export function createUserBucketer (routeName: string): (userId: string) => number {
  const scratch = Buffer.allocUnsafe(SCRATCH_BYTES)
  const prefixLength = scratch.write(routeName + ':', 0, 'utf8')
  // A UTF-16 code unit encodes to at most 3 UTF-8 bytes: ids up to this length always fit.
  const maxFastLength = Math.floor((SCRATCH_BYTES - prefixLength) / 3)
  return function userBucket (userId: string): number {
    if (userId.length <= maxFastLength) {
      const written = scratch.write(userId, prefixLength, 'utf8')
      return murmur3(scratch, prefixLength + written, 0) % BUCKETS
    }
    const bytes = Buffer.from(routeName + ':' + userId, 'utf8')
    return murmur3(bytes, bytes.length, 0) % BUCKETS
  }
}
