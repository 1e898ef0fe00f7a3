// Exact and asymptotic significance tests the rollout controller uses to judge canary against
// stable: is the canary's error rate or latency worse beyond what sampling noise explains? Pure
// numeric code, no dependencies; accurate for windows of up to ~1e7 requests per version.

// Constants and series coefficients are written to the digits of their references; the double
// nearest to each is what the code uses, as intended.
/* eslint-disable @typescript-eslint/no-loss-of-precision */
const LN_SQRT_2PI = 0.91893853320467274178 // ln √(2π)
const LN_2PI = 1.8378770664093454836 // ln 2π

// ---- log probability mass functions ---------------------------------------------------------------
//
// ln C(n, k) as lnΓ(n + 1) − lnΓ(k + 1) − lnΓ(n − k + 1) differences numbers near 1.5e8 for
// n = 1e7, whose rounding alone (ulp ≈ 3e-8) is a 1e-7 relative error in every term. Loader's
// saddle-point form ("Fast and accurate computation of binomial probabilities", 2000; R's
// dbinom) writes the log pmf as small, separately accurate pieces instead: Stirling-series
// remainders and the deviance bd0, each O(1)–O(deviation) in size, good to ~1e-14 absolute.

/** ln n! − ln(√(2πn) (n/e)^n), the error of Stirling's formula, for whole n ≥ 1. */
function stirlerr (n: number): number {
  if (n <= 15) {
    // n! is exact in a double up to 22!, so only one rounding in the log.
    let factorial = 1
    for (let i = 2; i <= n; i++) factorial *= i
    return Math.log(factorial) - (n + 0.5) * Math.log(n) + n - LN_SQRT_2PI
  }
  const nn = n * n
  const S0 = 1 / 12
  const S1 = 1 / 360
  const S2 = 1 / 1260
  const S3 = 1 / 1680
  const S4 = 1 / 1188
  const S5 = 691 / 360360
  if (n > 15.7e6) return S0 / n
  if (n > 6180) return (S0 - S1 / nn) / n
  if (n > 205) return (S0 - (S1 - S2 / nn) / nn) / n
  if (n > 86) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n
  if (n > 27) return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
  return (S0 - (S1 - (S2 - (S3 - (S4 - S5 / nn) / nn) / nn) / nn) / nn) / n
}

/**
 * The deviance term x ln(x / m) + m − x, without the cancellation of that direct form when x is
 * close to m (the series in v = (x − m) / (x + m) instead).
 */
function bd0 (x: number, m: number): number {
  if (Math.abs(x - m) < 0.1 * (x + m)) {
    let v = (x - m) / (x + m)
    let s = (x - m) * v
    let ej = 2 * x * v
    v *= v
    for (let j = 1; j < 1000; j++) {
      ej *= v
      const next = s + ej / (2 * j + 1)
      if (next === s) return next
      s = next
    }
    return s
  }
  return x * Math.log(x / m) + m - x
}

/** ln P(X = x) for X ~ Binomial(n, p), q = 1 − p given separately so callers keep its precision. */
function logBinomialPmf (x: number, n: number, p: number, q: number): number {
  if (p === 0) return x === 0 ? 0 : -Infinity
  if (q === 0) return x === n ? 0 : -Infinity
  if (x === 0) return n === 0 ? 0 : n * Math.log(q)
  if (x === n) return n * Math.log(p)
  const lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q)
  return lc - 0.5 * (LN_2PI + Math.log(x) + Math.log1p(-x / n))
}

/**
 * ln P(X = x) for X the white balls among `draws` drawn without replacement from `white` white
 * and `black` black ones: a ratio of three binomial pmfs at p = draws / total (R's dhyper), each
 * accurate by itself.
 */
function logHypergeometricPmf (x: number, white: number, black: number, draws: number): number {
  const total = white + black
  const p = draws / total
  const q = (total - draws) / total
  return logBinomialPmf(x, white, p, q) + logBinomialPmf(draws - x, black, p, q) - logBinomialPmf(draws, total, p, q)
}

// ---- tail sums ----------------------------------------------------------------------------------

/** Summing stops once everything left is below this share of the sum: past double precision. */
const NEGLIGIBLE = 1e-17

/**
 * Σ of a run of terms that decrease away from the mode of a log-concave distribution, the first
 * given by its log. The terms are kept relative to the first (which starts at 1), so nothing
 * underflows however small the tail is, and each comes from the one before by `ratio(i)`, term
 * i + 1 over term i (i from 0), so the sum costs no logs. Log-concavity makes the ratios shrink
 * along the run: what is left after a term t with ratio r is at most t / (1 − r), which bounds
 * the stop. Near the mode r ≈ 1 and summing goes on; some ~9 standard deviations out the terms
 * are negligible, so a tail costs O(√variance) steps, not O(n).
 */
function tailSum (logFirst: number, count: number, ratio: (i: number) => number): number {
  if (count <= 0 || logFirst === -Infinity) return 0
  let sum = 0
  let term = 1
  for (let i = 0; i < count; i++) {
    sum += term
    if (i === count - 1) break
    const r = ratio(i)
    term *= r
    if (term <= NEGLIGIBLE * sum * (1 - r)) break
  }
  return Math.exp(logFirst + Math.log(sum))
}

function clamp01 (value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : value
}

// ---- binomial -----------------------------------------------------------------------------------

/**
 * P(X ≥ k) for X ~ Binomial(n, p): the chance of k or more errors in n requests at error rate p.
 * k and n are whole numbers (n up to ~1e8); a fractional k counts as ⌈k⌉. k ≤ 0 → 1, k > n → 0.
 * Relative accuracy ~1e-12 wherever the result is above ~1e-300, and O(√(np(1 − p))) work.
 */
export function binomialUpperTail (k: number, n: number, p: number): number {
  k = Math.ceil(k)
  if (k <= 0) return 1
  if (k > n) return 0
  if (p <= 0) return 0
  if (p >= 1) return 1
  const q = 1 - p
  const odds = p / q
  const mode = Math.min(n, Math.floor((n + 1) * p))
  if (k > mode) {
    // The upper tail itself starts past the mode: its terms only fall, sum them from k up.
    return clamp01(tailSum(logBinomialPmf(k, n, p, q), n - k + 1, (i) => ((n - k - i) / (k + i + 1)) * odds))
  }
  // k is at or below the mode, so P(X ≥ k) ≥ P(X ≥ mode), which is never small (the median is
  // within one of the mode): 1 − P(X ≤ k − 1) loses nothing, and the lower tail falls from k − 1
  // down, where an upward sum would have to cross the mode and go on ~9 standard deviations past.
  const j = k - 1
  const lower = tailSum(logBinomialPmf(j, n, p, q), j + 1, (i) => ((j - i) / (n - j + i + 1)) / odds)
  return clamp01(1 - lower)
}

// ---- Fisher exact -------------------------------------------------------------------------------

/**
 * One-sided Fisher exact test: the p-value of "a's rate is greater than b's", given aEvents of
 * aTotal and bEvents of bTotal. With the margins fixed, a's events X are hypergeometric (aTotal
 * drawn from aTotal + bTotal, aEvents + bEvents of which are events); the p-value is P(X ≥
 * aEvents). Counts are whole numbers with events ≤ total; either total 0 → 1 (no evidence).
 * Same accuracy and cost as binomialUpperTail.
 */
export function fisherGreater (aEvents: number, aTotal: number, bEvents: number, bTotal: number): number {
  if (aTotal <= 0 || bTotal <= 0) return 1
  const white = aEvents + bEvents
  const black = aTotal + bTotal - white
  const draws = aTotal
  const low = Math.max(0, draws - black)
  const high = Math.min(draws, white)
  const x = aEvents
  if (x <= low) return 1
  if (x > high) return 0
  const mode = Math.floor(((draws + 1) * (white + 1)) / (aTotal + bTotal + 2))
  if (x > mode) {
    return clamp01(tailSum(logHypergeometricPmf(x, white, black, draws), high - x + 1, (i) => {
      const y = x + i
      return ((white - y) * (draws - y)) / ((y + 1) * (black - draws + y + 1))
    }))
  }
  // As in binomialUpperTail: at or below the mode, 1 − the lower tail from x − 1 down.
  const j = x - 1
  const lower = tailSum(logHypergeometricPmf(j, white, black, draws), j - low + 1, (i) => {
    const y = j - i
    return (y * (black - draws + y)) / ((white - y + 1) * (draws - y + 1))
  })
  return clamp01(1 - lower)
}

// ---- Mann–Whitney U -----------------------------------------------------------------------------

export interface MannWhitney {
  /** U of sample A: pairs (a, b) with a > b, plus half the tied pairs. */
  u: number
  /** The continuity-corrected normal score (U − nA·nB/2 − 0.5) / σ; 0 when the test can't run. */
  z: number
  /** One-sided p-value of "A is stochastically greater than B". */
  p: number
  nA: number
  nB: number
}

/**
 * One-sided Mann–Whitney U test that sample A is stochastically greater than B (say, canary
 * latencies than stable's). Both samples come as histograms over the same ordered bins: a[i] and
 * b[i] count the values in bin i, bins in increasing value order, and values in one bin are ties.
 * Normal approximation with tie-corrected variance and continuity correction 0.5 (as scipy's
 * mannwhitneyu with method 'asymptotic'). An empty sample or zero variance (every value in one
 * bin) → p = 1, z = 0. One pass, O(bins). Throws a RangeError when the histograms differ in length.
 */
export function mannWhitneyGreater (a: ArrayLike<number>, b: ArrayLike<number>): MannWhitney {
  if (a.length !== b.length) throw new RangeError(`histograms must have the same bins, got ${a.length} and ${b.length}`)
  let nA = 0
  let nB = 0
  let u = 0
  // Σ over bins of 3·S·t·(S + t), S the count below the bin and t its count, adds up to
  // N³ − Σt³ = (N³ − N) − Σ(t³ − t) with no subtraction: the usual tie correction
  // (N + 1) − Σ(t³ − t) / (N(N − 1)) cancels catastrophically when one bin holds almost everything.
  let untied = 0
  for (let i = 0; i < a.length; i++) {
    const countA = a[i] as number
    const countB = b[i] as number
    const tied = countA + countB
    if (tied === 0) continue
    u += countA * (nB + 0.5 * countB)
    const below = nA + nB
    untied += 3 * below * tied * (below + tied)
    nA += countA
    nB += countB
  }
  const n = nA + nB
  if (nA === 0 || nB === 0 || untied === 0) return { u, z: 0, p: 1, nA, nB }
  const sigma = Math.sqrt((nA * nB * untied) / (12 * n * (n - 1)))
  const z = (u - (nA * nB) / 2 - 0.5) / sigma
  return { u, z, p: clamp01(normalUpperTail(z)), nA, nB }
}

// ---- normal distribution ------------------------------------------------------------------------
//
// W. J. Cody's rational Chebyshev approximations (ACM TOMS 715, as in R's pnorm): ~1e-16
// relative accuracy in both tails, so p-values keep their digits down to ~1e-300, where
// 1 − Φ(z) through an erf would have lost them all past z ≈ 8.

const CODY_A = [2.2352520354606839287, 161.02823106855587881, 1067.6894854603709582, 18154.981253343561249, 0.065682337918207449113] as const
const CODY_B = [47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956] as const
const CODY_C = [
  0.39894151208813466764, 8.8831497943883759412, 93.506656132177855979, 597.27027639480026226, 2494.5375852903726711,
  6848.1904505362823326, 11602.651437647350124, 9842.7148383839780218, 1.0765576773720192317e-8,
] as const
const CODY_D = [
  22.266688044328115691, 235.38790178262499861, 1519.377599407554805, 6485.558298266760755, 18615.571640885098091,
  34900.952721145977266, 38912.003286093271411, 19685.429676859990727,
] as const
const CODY_P = [0.21589853405795699, 0.1274011611602473639, 0.022235277870649807, 0.001421619193227893466, 2.9112874951168792e-5, 0.02307344176494017303] as const
const CODY_Q = [1.28426009614491121, 0.468238212480865118, 0.0659881378689285515, 0.00378239633202758244, 7.29751555083966205e-5] as const
const INV_SQRT_2PI = 0.398942280401432677939946059934

/** P(Z > z) for a standard normal Z. */
function normalUpperTail (z: number): number {
  if (Number.isNaN(z)) return NaN
  const y = Math.abs(z)
  if (y <= 0.67448975) {
    let num = 0
    let den = 0
    if (y > 1.1102230246251565e-16) {
      const ysq = z * z
      num = CODY_A[4] * ysq
      den = ysq
      for (let i = 0; i < 3; i++) {
        num = (num + (CODY_A[i] as number)) * ysq
        den = (den + (CODY_B[i] as number)) * ysq
      }
    }
    return 0.5 - (z * (num + CODY_A[3])) / (den + CODY_B[3])
  }
  let scaled: number // P(Z > y) · e^(y²/2)
  if (y <= 5.656854249492381) { // √32
    let num = CODY_C[8] * y
    let den = y
    for (let i = 0; i < 7; i++) {
      num = (num + (CODY_C[i] as number)) * y
      den = (den + (CODY_D[i] as number)) * y
    }
    scaled = (num + CODY_C[7]) / (den + CODY_D[7])
  } else if (y < 37.5193) {
    const ysq = 1 / (y * y)
    let num = CODY_P[5] * ysq
    let den = ysq
    for (let i = 0; i < 4; i++) {
      num = (num + (CODY_P[i] as number)) * ysq
      den = (den + (CODY_Q[i] as number)) * ysq
    }
    scaled = (INV_SQRT_2PI - (ysq * (num + CODY_P[4])) / (den + CODY_Q[4])) / y
  } else {
    return z > 0 ? 0 : 1
  }
  // e^(−y²/2) in two factors: y rounded down to a multiple of 1/16 squares exactly, so the
  // rounding of y² doesn't become a relative error of y²/2 · 2^-53 in the tail.
  const ySixteenths = Math.trunc(y * 16) / 16
  const rest = (y - ySixteenths) * (y + ySixteenths)
  const tail = Math.exp(-ySixteenths * ySixteenths * 0.5) * Math.exp(-rest * 0.5) * scaled
  return z > 0 ? tail : 1 - tail
}
