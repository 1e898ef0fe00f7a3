// Micro-benchmark of user-id hashing: the murmurhash package's v3 (a TextEncoder and a fresh
// array per string) vs weir's createUserBucketer (reused buffer, Math.imul). Checks both give
// the same bucket on a few thousand ids first. Usage: node bench/micro/hash.ts [--rounds N]

import { Buffer } from 'node:buffer'
import { parseArgs } from 'node:util'
import murmurhash from 'murmurhash'
import { createUserBucketer } from '../../src/routing/hash.ts'
import { BUCKETS } from '../../src/vocabulary.ts'
import { median } from '../median.ts'
import { seededRandom } from './random.ts'

const ROUTE = 'shop'
const { values } = parseArgs({ options: { rounds: { type: 'string' }, ids: { type: 'string' } } })
const ROUNDS = Number(values.rounds ?? process.env.BENCH_ROUNDS ?? 15)
const ID_COUNT = Number(values.ids ?? 4096)

// ---- ids --------------------------------------------------------------------------------------

const random = seededRandom()
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T

const ASCII = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@'
// 2-, 3- and 4-byte UTF-8 (the emoji are surrogate pairs in UTF-16).
const NON_ASCII = ['é', 'ß', 'ø', 'ж', 'λ', '中', '日', '本', 'ア', '한', '🙂', '🚀', '𝄞']

function asciiId (): string {
  // Typical shapes: numeric ids, uuids, e-mail-like strings.
  const kind = random()
  if (kind < 0.3) return String(Math.floor(random() * 1e9))
  if (kind < 0.6) return crypto.randomUUID()
  let s = ''
  const length = 1 + Math.floor(random() * 40)
  for (let i = 0; i < length; i++) s += pick([...ASCII])
  return s
}

function nonAsciiId (): string {
  let s = ''
  const length = 1 + Math.floor(random() * 24)
  for (let i = 0; i < length; i++) s += random() < 0.5 ? pick(NON_ASCII) : pick([...ASCII])
  return s
}

const asciiIds = Array.from({ length: ID_COUNT }, asciiId)
const nonAsciiIds = Array.from({ length: ID_COUNT }, nonAsciiId)

// ---- equality ---------------------------------------------------------------------------------

const bucketer = createUserBucketer(ROUTE)
const reference = (id: string): number => murmurhash.v3(Buffer.from(ROUTE + ':' + id, 'utf8'), 0) % BUCKETS
const viaString = (id: string): number => murmurhash.v3(ROUTE + ':' + id, 0) % BUCKETS

// Also a few ids past the bucketer's scratch-buffer fast path (its slow path), and edge cases.
const edgeIds = ['', 'a', 'ab', 'abc', 'abcd', 'x'.repeat(1400), '日'.repeat(1500), '🙂'.repeat(700), '\ud800', 'a\udc00b']
let checked = 0
for (const id of [...asciiIds, ...nonAsciiIds, ...edgeIds]) {
  const want = reference(id)
  const got = bucketer(id)
  const str = viaString(id)
  if (got !== want || str !== want) {
    process.stderr.write(`MISMATCH for ${JSON.stringify(id)}: createUserBucketer ${got}, murmurhash.v3(Buffer) ${want}, murmurhash.v3(string) ${str}\n`)
    process.exit(1)
  }
  checked++
}
process.stdout.write(`equality: ${checked} ids (${asciiIds.length} ASCII, ${nonAsciiIds.length} non-ASCII, ${edgeIds.length} edge cases) ` +
  'give the same bucket from createUserBucketer, murmurhash.v3(Buffer) and murmurhash.v3(string)\n\n')

// ---- timing -----------------------------------------------------------------------------------

/** Median ns/op over ROUNDS rounds, each hashing every id `passes` times. */
function time (fn: (id: string) => number, ids: readonly string[], passes: number): number {
  let sink = 0
  const perRound: number[] = []
  for (let round = 0; round < ROUNDS + 2; round++) {
    const start = process.hrtime.bigint()
    for (let p = 0; p < passes; p++) {
      for (let i = 0; i < ids.length; i++) sink ^= fn(ids[i] as string)
    }
    const ns = Number(process.hrtime.bigint() - start) / (passes * ids.length)
    // The first two rounds are warm-up (JIT tiers, IC feedback).
    if (round >= 2) perRound.push(ns)
  }
  if (sink === 0.5) process.stdout.write('') // keeps `sink` alive
  return median(perRound, 'upper') as number
}

interface Row { ids: string; impl: string; nsPerOp: number }
const rows: Row[] = []
const impls: [string, (id: string) => number][] = [
  ['murmurhash.v3(route + ":" + id)', viaString],
  ['murmurhash.v3(Buffer.from(route + ":" + id))', reference],
  ['createUserBucketer(route)(id)', bucketer],
]
for (const [label, ids] of [['ASCII', asciiIds], ['non-ASCII', nonAsciiIds]] as const) {
  for (const [impl, fn] of impls) rows.push({ ids: label, impl, nsPerOp: time(fn, ids, 50) })
}

process.stdout.write(`ns/op, median of ${ROUNDS} rounds of ${50 * ID_COUNT} hashes (route "${ROUTE}", node ${process.version})\n`)
for (const label of ['ASCII', 'non-ASCII']) {
  const group = rows.filter((r) => r.ids === label)
  const ours = group.find((r) => r.impl.startsWith('createUserBucketer'))?.nsPerOp ?? NaN
  process.stdout.write(`\n${label} ids:\n`)
  for (const r of group) {
    process.stdout.write(`  ${r.impl.padEnd(46)} ${r.nsPerOp.toFixed(1).padStart(7)} ns/op` +
      (r.impl.startsWith('createUserBucketer') ? '' : `   createUserBucketer speedup: ${(r.nsPerOp / ours).toFixed(2)}x`) + '\n')
  }
}
