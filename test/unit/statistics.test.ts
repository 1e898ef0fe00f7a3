// The canary-vs-stable significance tests against reference values (scipy 1.17, and mpmath at 40
// digits where scipy itself is off), exact rational arithmetic on small cases, and edge cases.

import t from 'tap'
import { binomialUpperTail, fisherGreater, mannWhitneyGreater } from '../../src/rollout/statistics.ts'

// ---- helpers --------------------------------------------------------------------------------------

function relativeError (actual: number, expected: number): number {
  return actual === expected ? 0 : Math.abs(actual - expected) / Math.abs(expected)
}

/** Tolerance against the 40-digit values; the worst case measured is 7e-13. */
const EXACT_TOLERANCE = 1e-11
/**
 * Tolerance against scipy's binom.sf and fisher_exact, which are themselves off from the 40-digit
 * values by up to 2.4e-10 (binomial, n = 1e7, k = 10) and 2.3e-9 (Fisher, totals 1e7).
 */
const SCIPY_TOLERANCE = 5e-9

/** A latency-like histogram over `bins` bins: a parabola of height `peak` and half-width `width` around `centre`, in whole counts. */
function bump (bins: number, centre: number, width: number, peak: number): number[] {
  return Array.from({ length: bins }, (_, i) => Math.floor((peak * Math.max(0, width * width - (i - centre) ** 2)) / (width * width)))
}

function plus (x: number[], y: number[]): number[] {
  return x.map((value, i) => value + (y[i] as number))
}

/** The sample a histogram stands for: bin index i repeated counts[i] times. */
function expand (counts: ArrayLike<number>): number[] {
  const values: number[] = []
  for (let i = 0; i < counts.length; i++) for (let c = 0; c < (counts[i] as number); c++) values.push(i)
  return values
}

function choose (n: number, k: number): bigint {
  let result = 1n
  for (let i = 1; i <= k; i++) result = (result * BigInt(n - k + i)) / BigInt(i)
  return result
}

/** numerator / denominator to double precision (both may exceed 2^53): a 64-bit or longer quotient, then scaled. */
function ratio (numerator: bigint, denominator: bigint): number {
  if (numerator === 0n) return 0
  const shift = Math.max(0, 64 + denominator.toString(2).length - numerator.toString(2).length)
  return Number((numerator << BigInt(shift)) / denominator) * 2 ** -shift
}

// ---- binomialUpperTail ----------------------------------------------------------------------------

// [k, n, p, P(X ≥ k) by mpmath at 40 digits, scipy.stats.binom.sf(k - 1, n, p)]
const BINOMIAL: Array<[number, number, number, number, number]> = [
  [3, 10, 0.3, 0.6172172135999999, 0.6172172136000003],
  [7, 10, 0.3, 0.010592078399999998, 0.010592078399999996],
  [10, 10, 0.3, 5.9048999999999975e-06, 5.9048999999999975e-06],
  [1, 1, 0.5, 0.5, 0.5],
  [5, 20, 0.5, 0.9940910339355469, 0.9940910339355469],
  [15, 20, 0.5, 0.020694732666015625, 0.020694732666015625],
  [11, 20, 0.5, 0.41190147399902344, 0.41190147399902344],
  [1, 100_000_000, 1e-09, 0.0951625820092823, 0.0951625820092823],
  [2, 100_000_000, 1e-09, 0.004678840119726786, 0.004678840119726786],
  [9990, 10_000, 0.999, 0.5830397606292563, 0.583039760629257],
  [9999, 10_000, 0.999, 0.000497358991392947, 0.000497358991392947],
  [10_000, 10_000, 0.999, 4.517334597704824e-05, 4.517334597704825e-05],
  [10, 10_000_000, 1e-06, 0.5420703480832011, 0.5420703482148822],
  [20, 10_000_000, 1e-06, 0.003454325181144543, 0.0034543251811445298],
  [40, 10_000_000, 1e-06, 7.341313591933707e-13, 7.341313591933699e-13],
  // n = 1e7 at p = 0.01: mean and mode 100 000, standard deviation ~315.
  [90_000, 10_000_000, 0.01, 1, 1],
  [99_000, 10_000_000, 0.01, 0.9992751000391944, 0.9992751000391947],
  [99_500, 10_000_000, 0.01, 0.9442503416262662, 0.9442503416262766],
  [100_000, 10_000_000, 0.01, 0.5004268670235563, 0.500426867023564],
  [100_001, 10_000_000, 0.01, 0.49915894628149376, 0.49915894628148355],
  [100_500, 10_000_000, 0.01, 0.056287092046379314, 0.05628709204638556],
  [101_000, 10_000_000, 0.01, 0.0007571703763230739, 0.0007571703763232374],
  [102_000, 10_000_000, 0.01, 1.1901356563381365e-10, 1.1901356563378986e-10],
  [105_000, 10_000_000, 0.01, 2.859716367024025e-56, 2.8597163670263205e-56],
  [110_000, 10_000_000, 0.01, 4.726296577244045e-215, 4.726296577238416e-215],
  [111_000, 10_000_000, 0.01, 6.509290189237666e-259, 6.509290189238384e-259],
  [5_000_000, 10_000_000, 0.5, 0.5001261566229471, 0.5001261566229462],
  [5_001_000, 10_000_000, 0.5, 0.2636479281033219, 0.26364792810335774],
  [4_995_000, 10_000_000, 0.5, 0.9992181491198636, 0.9992181491198627],
  [30_010_000, 100_000_000, 0.3, 0.014554209729508815, 0.014554209729509595],
]

t.test('binomialUpperTail matches the reference values within 1e-11 relative, from n = 1 to 1e8 and down to 1e-259', async (t) => {
  for (const [k, n, p, exact, scipy] of BINOMIAL) {
    const actual = binomialUpperTail(k, n, p)
    const error = relativeError(actual, exact)
    t.ok(error <= EXACT_TOLERANCE, `P(Bin(${n}, ${p}) ≥ ${k}) = ${actual}, expected ${exact}, relative error ${error}`)
    t.ok(relativeError(actual, scipy) <= SCIPY_TOLERANCE, `vs scipy ${scipy}`)
  }
})

t.test('binomialUpperTail equals the exact rational tail for every k and n ≤ 40 at p = 1/4, 1/2 and 3/4', async (t) => {
  let worst = 0
  for (const [p, numerator] of [[0.25, 1n], [0.5, 2n], [0.75, 3n]] as const) {
    for (let n = 0; n <= 40; n++) {
      // P(X ≥ k) = Σ_{j ≥ k} C(n, j) num^j (4 − num)^(n − j) / 4^n
      let tail = 0n
      for (let k = n; k >= 0; k--) {
        tail += choose(n, k) * numerator ** BigInt(k) * (4n - numerator) ** BigInt(n - k)
        worst = Math.max(worst, relativeError(binomialUpperTail(k, n, p), ratio(tail, 4n ** BigInt(n))))
      }
    }
  }
  t.ok(worst <= 1e-13, `worst relative error ${worst}`)
})

t.test('binomialUpperTail: k ≤ 0 is certain, k > n impossible, p = 0 and p = 1 are degenerate', async (t) => {
  t.equal(binomialUpperTail(0, 10, 0.3), 1)
  t.equal(binomialUpperTail(-5, 10, 0.3), 1)
  t.equal(binomialUpperTail(0, 0, 0.3), 1)
  t.equal(binomialUpperTail(11, 10, 0.3), 0)
  t.equal(binomialUpperTail(1, 0, 0.3), 0)
  t.equal(binomialUpperTail(10_000_001, 10_000_000, 0.999), 0)
  t.equal(binomialUpperTail(0, 10, 0), 1)
  t.equal(binomialUpperTail(1, 10, 0), 0)
  t.equal(binomialUpperTail(10, 10, 1), 1)
  t.equal(binomialUpperTail(1, 10_000_000, 1), 1)
  t.equal(binomialUpperTail(10_000_001, 10_000_000, 1), 0)
})

t.test('binomialUpperTail reads a fractional k as the next whole number', async (t) => {
  t.equal(binomialUpperTail(6.2, 20, 0.5), binomialUpperTail(7, 20, 0.5))
  t.equal(binomialUpperTail(0.5, 20, 0.5), binomialUpperTail(1, 20, 0.5))
})

t.test('binomialUpperTail steps by P(X = k) from k to k + 1 with no seam at the mode', async (t) => {
  // At or below the mode (100 000 here) the tail is 1 − the lower tail, above it the upper sum;
  // consecutive steps P(X = k + 1) / P(X = k) must still follow the pmf's ratio (n − k)p / ((k + 1)q).
  const n = 10_000_000
  const p = 0.01
  const step = (k: number): number => binomialUpperTail(k, n, p) - binomialUpperTail(k + 1, n, p)
  for (let k = 99_995; k <= 100_005; k++) {
    const expected = ((n - k) / (k + 1)) * (p / (1 - p))
    const error = relativeError(step(k + 1) / step(k), expected)
    t.ok(error <= 1e-10, `P(X = ${k + 1}) / P(X = ${k}): relative error ${error}`)
  }
})

t.test('binomialUpperTail is 0, not NaN, far past where the tail underflows', async (t) => {
  t.equal(binomialUpperTail(150_000, 10_000_000, 0.01), 0)
  t.equal(binomialUpperTail(9_000_000, 10_000_000, 0.5), 0)
  t.equal(binomialUpperTail(1_000_000, 10_000_000, 0.5), 1)
})

/**
 * C(2m, m) / 4^m, the chance of exactly m heads in 2m fair tosses, by its asymptotic series
 * 1/√(πm) · (1 − 1/(8m) + 1/(128m²) + 5/(1024m³) − …): at m ≥ 5e6 the first omitted term is
 * below 1e-30 of the value, so this is exact to double precision with no sum and no lnΓ.
 */
function centralBinomial (m: number): number {
  return (1 - 1 / (8 * m) + 1 / (128 * m * m) + 5 / (1024 * m * m * m)) / Math.sqrt(Math.PI * m)
}

t.test('binomialUpperTail at the mode of n = 1e7 and 1e8, the longest sums, is exact either side of it', async (t) => {
  // No timing assertion: this shows the sums that run longest (from the mode out to where the
  // terms stop mattering) still add up to the right value.
  // Bin(2m, 1/2) is symmetric about m, so P(X ≥ m) = (1 + P(X = m)) / 2 and P(X ≥ m + 1) = (1 − P(X = m)) / 2.
  for (const m of [5_000_000, 50_000_000]) {
    const atMode = centralBinomial(m)
    for (const [k, expected] of [[m, (1 + atMode) / 2], [m + 1, (1 - atMode) / 2]] as const) {
      const actual = binomialUpperTail(k, 2 * m, 0.5)
      const error = relativeError(actual, expected)
      t.ok(error <= 1e-12, `P(Bin(${2 * m}, 0.5) ≥ ${k}) = ${actual}, expected ${expected}, relative error ${error}`)
    }
  }
  // Bin(1e7, 0.01) has its mode at 100 000: k there sums the lower tail down, k + 1 the upper tail up.
  for (const k of [100_000, 100_001]) {
    const reference = BINOMIAL.find(([rk, rn, rp]) => rk === k && rn === 10_000_000 && rp === 0.01)?.[3] as number
    const actual = binomialUpperTail(k, 10_000_000, 0.01)
    const error = relativeError(actual, reference)
    t.ok(error <= EXACT_TOLERANCE, `P(Bin(1e7, 0.01) ≥ ${k}) = ${actual}, expected ${reference} (mpmath), relative error ${error}`)
  }
})

// ---- fisherGreater --------------------------------------------------------------------------------

// [aEvents, aTotal, bEvents, bTotal, p by mpmath at 40 digits, scipy.stats.fisher_exact(..., alternative='greater')]
const FISHER: Array<[number, number, number, number, number, number]> = [
  [3, 4, 1, 4, 0.24285714285714285, 0.24285714285714283],
  [1, 1, 0, 1, 0.5, 0.5],
  [5, 10, 0, 10, 0.016253869969040248, 0.016253869969040248],
  [10, 10, 0, 10, 5.412544112234515e-06, 5.412544112234515e-06],
  [0, 10, 5, 10, 1, 1],
  [20, 1000, 5, 1000, 0.0019295103124280463, 0.0019295103124280463],
  [7, 12, 2, 9, 0.11290783519885687, 0.11290783519885686],
  [60, 5000, 9000, 1_000_000, 0.01848373216394202, 0.018483732164344988],
  [3000, 300_000, 2500, 300_000, 6.70820638209701e-12, 6.708206382403899e-12],
  [2500, 300_000, 3000, 300_000, 0.9999999999944407, 0.9999999999944414],
  [2800, 300_000, 2700, 300_000, 0.08994522642675325, 0.08994522642760443],
  [100_500, 10_000_000, 100_000, 10_000_000, 0.13134959175094169, 0.13134959184829856],
  [100_000, 10_000_000, 90_000, 10_000_000, 6.6611146749991545e-118, 6.661114690337806e-118],
  [1200, 100_000, 9000, 1_000_000, 6.628088381313212e-20, 6.62808838223033e-20],
]

t.test('fisherGreater matches the reference values within 1e-11 relative, totals from 1 to 1e7', async (t) => {
  for (const [aEvents, aTotal, bEvents, bTotal, exact, scipy] of FISHER) {
    const actual = fisherGreater(aEvents, aTotal, bEvents, bTotal)
    const error = relativeError(actual, exact)
    t.ok(error <= EXACT_TOLERANCE, `${aEvents}/${aTotal} vs ${bEvents}/${bTotal}: ${actual}, expected ${exact}, relative error ${error}`)
    t.ok(relativeError(actual, scipy) <= SCIPY_TOLERANCE, `vs scipy ${scipy}`)
  }
})

t.test("fisherGreater gives Fisher's tea tasting (3 of 4 vs 1 of 4) 17/70 ≈ 0.2429", async (t) => {
  t.ok(relativeError(fisherGreater(3, 4, 1, 4), 17 / 70) <= 1e-14, String(fisherGreater(3, 4, 1, 4)))
})

t.test('fisherGreater equals the exact hypergeometric tail for every table with totals up to 12', async (t) => {
  let worst = 0
  for (let aTotal = 1; aTotal <= 12; aTotal++) {
    for (let bTotal = 1; bTotal <= 12; bTotal++) {
      for (let aEvents = 0; aEvents <= aTotal; aEvents++) {
        for (let bEvents = 0; bEvents <= bTotal; bEvents++) {
          // Σ over tables with the same margins and at least aEvents in A, each C(aT, x)·C(bT, events − x).
          const events = aEvents + bEvents
          let sum = 0n
          for (let x = aEvents; x <= Math.min(aTotal, events); x++) {
            if (events - x <= bTotal) sum += choose(aTotal, x) * choose(bTotal, events - x)
          }
          const expected = ratio(sum, choose(aTotal + bTotal, events))
          worst = Math.max(worst, relativeError(fisherGreater(aEvents, aTotal, bEvents, bTotal), expected))
        }
      }
    }
  }
  t.ok(worst <= 1e-13, `worst relative error ${worst}`)
})

t.test('fisherGreater is 1 without evidence: an empty side, no events at all, or every request an event', async (t) => {
  t.equal(fisherGreater(0, 0, 3, 10), 1)
  t.equal(fisherGreater(3, 10, 0, 0), 1)
  t.equal(fisherGreater(0, 0, 0, 0), 1)
  t.equal(fisherGreater(0, 1000, 0, 1000), 1)
  t.equal(fisherGreater(1000, 1000, 1000, 1000), 1)
  t.equal(fisherGreater(0, 10_000_000, 100_000, 10_000_000), 1)
})

t.test('fisherGreater at the mode with totals of 1e7 and rates at 50 %, the longest sums, is exact either side of it', async (t) => {
  // 1e7 of 2e7 requests are events and A has half of all requests: A's events X are symmetric
  // about m = 5e6, so P(X ≥ m) = (1 + P(X = m)) / 2, P(X ≥ m + 1) = (1 − P(X = m)) / 2, and
  // P(X = m) = C(2m, m)² / C(4m, 2m) = centralBinomial(m)² / centralBinomial(2m) (the 4^… cancel).
  const m = 5_000_000
  const atMode = centralBinomial(m) ** 2 / centralBinomial(2 * m)
  for (const [aEvents, expected] of [[m, (1 + atMode) / 2], [m + 1, (1 - atMode) / 2]] as const) {
    const actual = fisherGreater(aEvents, 2 * m, 2 * m - aEvents, 2 * m)
    const error = relativeError(actual, expected)
    t.ok(error <= 1e-12, `${aEvents}/${2 * m} vs ${2 * m - aEvents}/${2 * m}: ${actual}, expected ${expected}, relative error ${error}`)
  }
})

// ---- mannWhitneyGreater ---------------------------------------------------------------------------

// Histograms over 469 bins (the latency window's), and scipy.stats.mannwhitneyu(expand(a),
// expand(b), alternative='greater', method='asymptotic', use_continuity=True); z from the same
// formula in mpmath at 40 digits.
const MANN_WHITNEY: Array<{ name: string; a: number[]; b: number[]; nA: number; nB: number; u: number; z: number; p: number }> = [
  { name: 'small, mostly ties', a: [1, 2, 3], b: [3, 2, 1], nA: 6, nB: 6, u: 26, z: 1.2693810007243689, p: 0.10215260456035657 },
  { name: 'shifted by 5 bins', a: bump(469, 200, 60, 40), b: bump(469, 195, 60, 40), nA: 3140, nB: 3140, u: 5424043, z: 6.880342028787597, p: 2.98545128830908e-12 },
  { name: 'identical', a: bump(469, 200, 60, 40), b: bump(469, 200, 60, 40), nA: 3140, nB: 3140, u: 4929800, z: -6.960494435811714e-06, p: 0.500002776835523 },
  { name: 'A lower', a: bump(469, 195, 60, 40), b: bump(469, 200, 60, 40), nA: 3140, nB: 3140, u: 4435557, z: -6.880355949771787, p: 0.9999999999970148 },
  { name: '200 000 each, shifted by 2 bins', a: bump(469, 240, 100, 1500), b: bump(469, 238, 100, 1500), nA: 199890, nB: 199890, u: 20457496644.5, z: 13.142468618917905, p: 9.399603919881149e-40 },
  { name: '200 000 each, shifted by 5 bins', a: bump(469, 240, 100, 1500), b: bump(469, 235, 100, 1500), nA: 199890, nB: 199890, u: 21175704482, z: 32.827992228789185, p: 1.1739794003250054e-236 },
  { name: '85 against 53 260', a: bump(469, 260, 30, 3), b: bump(469, 240, 80, 500), nA: 85, nB: 53260, u: 3074172.5, z: 5.71427516805522, p: 5.508630133099795e-09 },
  { name: 'A bimodal', a: plus(bump(469, 150, 20, 300), bump(469, 300, 40, 30)), b: bump(469, 152, 20, 300), nA: 9550, nB: 7990, u: 40565979.5, z: 7.229933458341732, p: 2.416153743105553e-13 },
]

t.test('mannWhitneyGreater on histograms matches scipy on the expanded samples: U exactly, p within 1e-11', async (t) => {
  for (const reference of MANN_WHITNEY) {
    const result = mannWhitneyGreater(reference.a, reference.b)
    t.equal(result.nA, reference.nA, `${reference.name}: nA`)
    t.equal(result.nB, reference.nB, `${reference.name}: nB`)
    t.equal(result.u, reference.u, `${reference.name}: U`)
    t.ok(relativeError(result.z, reference.z) <= 1e-12, `${reference.name}: z = ${result.z}, expected ${reference.z}`)
    const error = relativeError(result.p, reference.p)
    t.ok(error <= 1e-11, `${reference.name}: p = ${result.p}, expected ${reference.p}, relative error ${error}`)
  }
})

t.test('mannWhitneyGreater: U counts pairs with A greater plus half the ties, as pair by pair on the samples', async (t) => {
  const a = [0, 3, 1, 0, 2, 2, 0, 1]
  const b = [2, 1, 0, 4, 0, 1, 3, 0]
  const xs = expand(a)
  const ys = expand(b)
  let pairs = 0
  for (const x of xs) for (const y of ys) pairs += x > y ? 1 : x === y ? 0.5 : 0
  const result = mannWhitneyGreater(a, b)
  t.equal(result.u, pairs)
  t.equal(mannWhitneyGreater(b, a).u, xs.length * ys.length - pairs, 'U of A + U of B = nA·nB')
  // The textbook tie-corrected variance, for the same z.
  const n = xs.length + ys.length
  let tieSum = 0
  for (let i = 0; i < a.length; i++) {
    const tied = (a[i] as number) + (b[i] as number)
    tieSum += tied ** 3 - tied
  }
  const sigma = Math.sqrt(((xs.length * ys.length) / 12) * (n + 1 - tieSum / (n * (n - 1))))
  t.ok(relativeError(result.z, (pairs - (xs.length * ys.length) / 2 - 0.5) / sigma) <= 1e-14)
})

t.test('mannWhitneyGreater gives p = 1 and z = 0 when a sample is empty or every value is tied', async (t) => {
  t.same(mannWhitneyGreater([0, 0, 0], [0, 0, 0]), { u: 0, z: 0, p: 1, nA: 0, nB: 0 })
  t.same(mannWhitneyGreater([1, 2, 0], [0, 0, 0]), { u: 0, z: 0, p: 1, nA: 3, nB: 0 })
  t.same(mannWhitneyGreater([0, 0, 0], [4, 0, 1]), { u: 0, z: 0, p: 1, nA: 0, nB: 5 })
  t.same(mannWhitneyGreater([0, 5, 0], [0, 7, 0]), { u: 17.5, z: 0, p: 1, nA: 5, nB: 7 })
  t.same(mannWhitneyGreater([], []), { u: 0, z: 0, p: 1, nA: 0, nB: 0 })
  // Ten million in one bin, one elsewhere: the variance is tiny but not zero, and must not
  // come out negative or zero from cancellation.
  const a = new Float64Array(469)
  const b = new Float64Array(469)
  a[100] = 10_000_000
  b[100] = 10_000_000
  b[99] = 1
  const result = mannWhitneyGreater(a, b)
  // U − nA·nB/2 = 1e7 / 2 and σ² = nA·nB / 4 here, worked by hand.
  const z = (5_000_000 - 0.5) / (Math.sqrt(10_000_000 * 10_000_001) / 2)
  t.ok(relativeError(result.z, z) <= 1e-12, `z = ${result.z}, expected ${z}`)
  // P(Z > 0.99999985000000875) = erfc(z / √2) / 2 by mpmath at 40 digits.
  const p = 0.15865529022706634
  t.ok(relativeError(result.p, p) <= 1e-11, `p = ${result.p}, expected ${p}`)
})

t.test('mannWhitneyGreater takes typed arrays and rejects histograms with different bins', async (t) => {
  const a = Uint32Array.from(bump(469, 200, 60, 40))
  const b = Uint32Array.from(bump(469, 195, 60, 40))
  t.equal(mannWhitneyGreater(a, b).u, 5424043)
  t.throws(() => mannWhitneyGreater([1, 2], [1, 2, 3]), RangeError)
})
