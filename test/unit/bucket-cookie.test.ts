import { createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createBucketCookie, createBucketSigner, readCookie } from '../../src/routing/bucket-cookie.ts'

const signer = createBucketSigner('unit-test-secret-123')
const cookie = createBucketCookie('weir_b', 3600, signer)

t.test('a cookie it set reads back as the same bucket, for every bucket', async (t) => {
  let wrong = 0
  for (let b = 0; b < 10000; b++) {
    const value = cookie.setCookie(b, false).split(';')[0] as string
    if (cookie.read(value) !== b) wrong++
  }
  t.equal(wrong, 0)
})

t.test('Set-Cookie carries HttpOnly, SameSite=Lax, Path=/, Max-Age, and Secure only over TLS', async (t) => {
  t.match(cookie.setCookie(42, false), /^weir_b=42\.[A-Za-z0-9_-]{22}; Max-Age=3600; Path=\/; HttpOnly; SameSite=Lax$/)
  t.match(cookie.setCookie(42, true), /; Secure$/)
})

t.test('another secret, a flipped character or a foreign name does not verify', async (t) => {
  const value = cookie.setCookie(7, false).split(';')[0] as string
  const other = createBucketCookie('weir_b', 3600, createBucketSigner('another-secret-456'))
  t.equal(other.read(value), -1, 'another secret')
  t.equal(cookie.read(value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A')), -1, 'flipped last character')
  t.equal(cookie.read(value.replace('weir_b=', 'xweir_b=')), -1, 'a cookie whose name merely ends the same')
  t.equal(cookie.read('a=1; ' + value + '; b=2'), 7, 'found among other cookies')
  t.equal(cookie.read('weir_b=garbage; ' + value), 7, 'the first valid one of several with the name')
  t.equal(cookie.read(undefined), -1)
  t.equal(cookie.read('weir_b=00007.' + value.split('.')[1]), -1, 'leading zeros are not the canonical form')
})

t.test('a prefilling signer signs every bucket in the background once it signs one, as HMAC-SHA256 of the bucket', async (t) => {
  const secret = 'prefill-secret-789'
  const prefilling = createBucketSigner(secret, { prefill: true })
  const lazy = createBucketSigner(secret)
  await sleep(20)
  t.equal(prefilling.signed, 0, 'nothing is signed before a signature is asked for')
  const first = prefilling(4321)
  t.equal(first, lazy(4321))
  const deadline = Date.now() + 10_000
  while (prefilling.signed < 10000 && Date.now() < deadline) await sleep(5)
  t.equal(prefilling.signed, 10000, 'every bucket signed, each once')
  t.equal(lazy.signed, 1, 'a signer without prefill signs only what it is asked')
  let wrong = 0
  for (let b = 0; b < 10000; b++) {
    const expected = createHmac('sha256', secret).update('weir-bucket:' + b).digest().subarray(0, 16).toString('base64url')
    if (prefilling(b) !== expected) wrong++
  }
  t.equal(wrong, 0, 'every prefilled signature is the HMAC of its bucket')
  t.equal(prefilling.signed, 10000, 'reading them signed nothing again')
})

t.test('readCookie finds a named value and nothing for a suffix match', async (t) => {
  t.equal(readCookie('a=1; uid=alice; b=2', 'uid='), 'alice')
  t.equal(readCookie('xuid=mallory', 'uid='), undefined)
  t.equal(readCookie('uid=', 'uid='), undefined)
  t.equal(readCookie(undefined, 'uid='), undefined)
})
