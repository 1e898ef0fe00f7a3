// Order statistics for the benches: the median item of a list (the round a table shows), the
// median of a list of numbers, and percentiles of sorted latencies.

/** The item with the median key; of an even count, the lower of the two middle ones (a round that ran). */
export function medianOf<T> (items: readonly T[], key: (item: T) => number): T | undefined {
  const sorted = [...items].sort((a, b) => key(a) - key(b))
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

/**
 * The median of `values`, null when there are none. Of an even count: the mean of the two middle
 * values, or with `even: 'upper'` the upper one (what the micro-benchmarks and profile.ts use).
 */
export function median (values: readonly number[], even: 'mean' | 'upper' = 'mean'): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const upper = sorted[Math.floor(sorted.length / 2)] as number
  if (even === 'upper' || sorted.length % 2 === 1) return upper
  return ((sorted[sorted.length / 2 - 1] as number) + upper) / 2
}

/** The p-th percentile (nearest rank) of ascending `sorted`, rounded to µs (values in ms); 0 when empty. */
export function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)
  return Math.round((sorted[Math.max(0, index)] as number) * 1000) / 1000
}
