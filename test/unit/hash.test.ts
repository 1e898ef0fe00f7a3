import t from 'tap'
import murmurhash from 'murmurhash'
import { createUserBucketer, murmur3 } from '../../src/routing/hash.ts'

t.test('murmur3 matches the murmurhash package (the reference implementation) on ASCII and UTF-8 input', async (t) => {
  let mismatches = 0
  const samples = ['', 'a', 'ab', 'abc', 'abcd', 'shop:alice', 'é', '日本語ユーザー', 'emoji 🚀 id', '\u0000nul']
  for (let i = 0; i < 5000; i++) samples.push(Math.random().toString(36).repeat(1 + (i % 7)) + String.fromCharCode(0x20 + (i % 2000)))
  for (const s of samples) {
    const bytes = Buffer.from(s, 'utf8')
    if (murmur3(bytes, bytes.length, 0) !== murmurhash.v3(bytes, 0)) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('murmur3 reproduces published MurmurHash3 x86_32 vectors', async (t) => {
  const vec = (s: string, seed: number): number => murmur3(Buffer.from(s), Buffer.byteLength(s), seed)
  t.equal(vec('', 0), 0)
  t.equal(vec('', 1), 0x514e28b7)
  t.equal(vec('hello', 0), 0x248bfa47)
  t.equal(vec('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723)
})

t.test('a user bucket is murmurhash3_32(route + ":" + userId) % 10000, for short and very long ids', async (t) => {
  const bucket = createUserBucketer('shop')
  for (const id of ['alice', 'bob', 'ünïcödé', 'x'.repeat(5000), '🚀'.repeat(3000)]) {
    t.equal(bucket(id), murmurhash.v3(Buffer.from('shop:' + id, 'utf8'), 0) % 10000, `id of length ${id.length}`)
  }
  t.equal(bucket('alice'), bucket('alice'), 'stable across calls (the scratch buffer is reused safely)')
  t.not(createUserBucketer('other')('alice'), undefined)
})
