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

t.test('murmur3 hashes only the first `length` bytes, whatever follows them in the buffer', async (t) => {
  const text = Buffer.from('shop:ünïcödé-user', 'utf8')
  const padded = Buffer.alloc(text.length + 64, 0xab)
  text.copy(padded)
  for (let length = 0; length <= text.length; length++) {
    t.equal(murmur3(padded, length, 0), murmurhash.v3(text.subarray(0, length), 0), `length ${length}`)
  }
})

// Buckets worked out by a separate MurmurHash3 x86_32 in Python (written from the reference
// C, checked against the published vectors above): murmur3(utf8(route + ":" + id), 0) % 10000.
const KNOWN_BUCKETS: Array<[route: string, id: string, bucket: number]> = [
  ['shop', 'alice', 9426],
  ['other', 'alice', 9314],
  ['shop', 'bob', 4888],
  ['other', 'bob', 1161],
  ['shop', 'ünïcödé', 2403],
  ['other', 'ünïcödé', 757],
  ['shop', '🚀 rocket', 3237],
  ['café', 'alice', 9064],
  ['shop', 'x'.repeat(5000), 5032],
  ['other', '🚀'.repeat(3000), 8326],
  // 'shop:' leaves room in the 4096-byte scratch buffer for 1363 three-byte characters, 'café:' too.
  ['shop', '日'.repeat(1363), 7697],
  ['shop', '日'.repeat(1364), 3969],
  ['café', '日'.repeat(1363), 6398],
  ['café', '日'.repeat(1364), 6660],
]

t.test('a user bucket is murmurhash3_32(route + ":" + userId) % 10000: the known buckets of short, non-ASCII and very long ids', async (t) => {
  for (const [route, id, bucket] of KNOWN_BUCKETS) t.equal(createUserBucketer(route)(id), bucket, `${route}: id of ${id.length} code units starting ${JSON.stringify(id.slice(0, 8))}`)
})

t.test('a user bucket equals the murmurhash package on the route-prefixed id for 5000 ids, short and mixed or either side of the scratch buffer limit', async (t) => {
  const routes = ['shop', 'other', 'café', 'r'.repeat(200)]
  const bucketers = routes.map((route) => createUserBucketer(route))
  const mixed = ['a', 'é', '日', '🚀', '\u0000', ' ']
  // Three bytes each in UTF-8, the most a UTF-16 code unit takes: ids of 1300–1400 of them are
  // 3900–4200 bytes, so they cross where the 4096-byte scratch buffer can no longer hold them.
  const wide = ['日', '本', '語', '€']
  let mismatches = 0
  let checked = 0
  for (let i = 0; i < 5000; i++) {
    // Short and long ids in turn, and the routes in turn over pairs of them, so each bucketer
    // meets both, one after the other.
    const [chars, length] = i % 2 === 0 ? [mixed, i % 41] : [wide, 1300 + (i % 101)]
    let id = ''
    for (let c = 0; id.length < length; c++) id += chars[(i * 7 + c * 3) % chars.length] as string
    const r = Math.floor(i / 2) % routes.length
    const expected = murmurhash.v3(Buffer.from(routes[r] + ':' + id, 'utf8'), 0) % 10000
    if ((bucketers[r] as (id: string) => number)(id) !== expected) mismatches++
    checked++
  }
  t.equal(checked, 5000)
  t.equal(mismatches, 0)
})

t.test('a user bucket depends on the route and not on the ids hashed before it', async (t) => {
  const shop = createUserBucketer('shop')
  const other = createUserBucketer('other')
  const ids = Array.from({ length: 2000 }, (_, i) => `user-${i}`)
  const same = ids.filter((id) => shop(id) === other(id)).length
  // Two independent buckets out of 10 000 coincide for ~0.2 of 2000 ids.
  t.ok(same <= 5, `${same} of 2000 ids share their bucket across routes`)
  const first = ids.map(shop)
  shop('x'.repeat(5000))
  shop('日'.repeat(1363))
  t.same(ids.map(shop), first, 'after a long id (slow path) and a full scratch buffer, short ids hash as before')
})
