// A seeded xorshift32 generator, so micro-benchmarks see the same inputs on every run.

export function seededRandom (seed = 0x2545f491): () => number {
  let state = seed
  return function random (): number {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 2 ** 32
  }
}
