// The nearest-rank quantile (the value at rank ⌈n·percent/100⌉ of sorted samples), the
// definition the rolling stats read their percentiles by, for tests to check them against.

/** `sorted` ascending and not empty, 0 < percent ≤ 100. */
export function nearestRank (sorted: ArrayLike<number>, percent: number): number {
  return sorted[Math.ceil((sorted.length * percent) / 100) - 1] as number
}
