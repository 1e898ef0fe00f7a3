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

t.test('readCookie finds a named value and nothing for a suffix match', async (t) => {
  t.equal(readCookie('a=1; uid=alice; b=2', 'uid='), 'alice')
  t.equal(readCookie('xuid=mallory', 'uid='), undefined)
  t.equal(readCookie('uid=', 'uid='), undefined)
  t.equal(readCookie(undefined, 'uid='), undefined)
})
