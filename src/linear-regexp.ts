// Regular expressions of match rules, run on V8's linear-time engine (the `l` flag, RE2's
// approach): a header value can never make matching backtrack. weir also refuses, at validation,
// patterns that would backtrack exponentially in ordinary engines (a repeated group that repeats
// or alternates), so a config that is safe here stays safe wherever the pattern is copied.
// A leaf: the config rules and the routing table both use it.

import v8 from 'node:v8'

// Enables the `l` flag (linear-time matching): a V8 flag set at run time, before any rule's
// expression is built. It changes nothing for expressions without the flag.
v8.setFlagsFromString('--enable-experimental-regexp-engine')

/** Longest pattern accepted. */
export const MAX_PATTERN_LENGTH = 256

/**
 * The linear-time engine repeats the body of a bounded quantifier in its program, so it refuses
 * a pattern whose nested bounds multiply past this (V8's kMaxReplicationFactor): `x{16}` and
 * `(x{4}){4}` compile, `x{17}` and `(x{4}){5}` do not.
 */
const MAX_REPLICATION = 16

/** `pattern` compiled for linear-time matching; throws when it cannot run in linear time. */
export function linearRegExp (pattern: string): RegExp {
  // eslint's no-invalid-regexp knows the standard flags only; `l` is V8's, enabled above.
  // eslint-disable-next-line no-invalid-regexp
  return new RegExp(pattern, 'l')
}

/** Why a rule's regular expression is refused, or null when it is accepted. */
export function regexProblem (pattern: string): string | null {
  if (pattern.length > MAX_PATTERN_LENGTH) return `must be at most ${MAX_PATTERN_LENGTH} characters`
  try {
    linearRegExp(pattern)
  } catch (err) {
    const message = (err as Error).message
    if (!/linear time/.test(message)) return `is not a valid regular expression: ${message.replace(/^Invalid regular expression: /, '')}`
    const causes = nonLinearParts(tokens(pattern))
    return causes.length > 0
      ? `cannot match in linear time: it uses ${causes.join(' and ')}`
      : 'cannot match in linear time'
  }
  if (repeatsRepetition(tokens(pattern))) return 'can backtrack exponentially (a repeated group that itself repeats or alternates, such as (a+)+ or (a|aa)*)'
  return null
}

/** A quantifier's bounds (`max` Infinity when unbounded). */
interface Quantifier { min: number, max: number }

/** The parts of a pattern the checks below look at; character classes are one atom. */
type Token =
  | { kind: 'open', prefix: string } // `(` and what follows it: '', '?:', '?<name>', '?=', '?<!', '?i:' …
  | { kind: 'close', quantifier: Quantifier | null }
  | { kind: 'alternation' }
  | { kind: 'atom', text: string, quantifier: Quantifier | null }

// A group's prefix after `(`: non-capturing, named, lookaround or inline modifiers.
const GROUP_PREFIX = /^\?(?::|=|!|<=|<!|<[^>]*>|[a-zA-Z-]+:)/

/** `pattern` cut into tokens, each quantifier attached to what it repeats. */
function tokens (pattern: string): Token[] {
  const out: Token[] = []
  let i = 0
  while (i < pattern.length) {
    const c = pattern[i] as string
    if (c === '(') {
      const prefix = GROUP_PREFIX.exec(pattern.slice(i + 1))?.[0] ?? ''
      out.push({ kind: 'open', prefix })
      i += 1 + prefix.length
      continue
    }
    if (c === '|') {
      out.push({ kind: 'alternation' })
      i++
      continue
    }
    const end = c === ')' ? i + 1 : atomEnd(pattern, i)
    const q = quantifierAt(pattern, end)
    out.push(c === ')'
      ? { kind: 'close', quantifier: q?.quantifier ?? null }
      : { kind: 'atom', text: pattern.slice(i, end), quantifier: q?.quantifier ?? null })
    i = q === null ? end : q.end
  }
  return out
}

/** Where the atom starting at `i` ends: an escape, a character class, or one character. */
function atomEnd (pattern: string, i: number): number {
  if (pattern[i] === '\\') {
    const named = /^\\k<[^>]*>/.exec(pattern.slice(i))
    return named !== null ? i + named[0].length : i + 2
  }
  if (pattern[i] !== '[') return i + 1
  for (let j = i + 1; j < pattern.length; j++) {
    if (pattern[j] === '\\') j++
    else if (pattern[j] === ']') return j + 1
  }
  return pattern.length
}

/** The quantifier starting at `i` (with a lazy `?` after it), or null. */
function quantifierAt (pattern: string, i: number): { quantifier: Quantifier, end: number } | null {
  const c = pattern[i]
  let quantifier: Quantifier
  let end = i + 1
  if (c === '*') quantifier = { min: 0, max: Infinity }
  else if (c === '+') quantifier = { min: 1, max: Infinity }
  else if (c === '?') quantifier = { min: 0, max: 1 }
  else if (c === '{') {
    const m = /^\{([0-9]+)(,([0-9]*))?\}/.exec(pattern.slice(i))
    if (m === null) return null
    const min = Number(m[1])
    quantifier = { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) }
    end = i + m[0].length
  } else return null
  if (pattern[end] === '?') end++
  return { quantifier, end }
}

/** True when the quantifier lets its body match more than once. */
function repeatsMany (q: Quantifier | null): boolean {
  return q !== null && q.max > 1
}

/**
 * True when a group containing a quantifier or an alternation is itself quantified with `*`, `+`
 * or `{n,}` / `{n,m}` with m > 1: the shapes that backtrack exponentially in ordinary engines.
 */
function repeatsRepetition (parts: Token[]): boolean {
  // Per open group: whether it holds a quantifier or an alternation so far.
  const stack: boolean[] = []
  const markTop = (): void => { if (stack.length > 0) stack[stack.length - 1] = true }
  for (const part of parts) {
    if (part.kind === 'open') stack.push(false)
    else if (part.kind === 'alternation') markTop()
    else if (part.kind === 'atom') {
      if (part.quantifier !== null) markTop()
    } else {
      const risky = stack.pop() ?? false
      if (risky && repeatsMany(part.quantifier)) return true
      // The group counts as a repetition for the group around it.
      if (risky || part.quantifier !== null) markTop()
    }
  }
  return false
}

/** What in the pattern the linear-time engine cannot run, named for the operator. */
function nonLinearParts (parts: Token[]): string[] {
  const causes = new Set<string>()
  // Per open group: the largest replication of any bounded quantifier inside it.
  const inner: number[] = [1]
  const replication = (q: Quantifier | null): number =>
    q === null ? 1 : Math.max(1, q.max === Infinity ? q.min : q.max)
  const raise = (factor: number): void => {
    inner[inner.length - 1] = Math.max(inner[inner.length - 1] as number, factor)
  }
  for (const part of parts) {
    if (part.kind === 'open') {
      if (part.prefix === '?=' || part.prefix === '?!') causes.add('lookahead ((?=…) or (?!…))')
      else if (/^\?[a-zA-Z-]+:$/.test(part.prefix)) causes.add('inline flags ((?i:…))')
      inner.push(1)
    } else if (part.kind === 'atom') {
      if (/^\\([1-9]|k<)/.test(part.text)) causes.add('a backreference (\\1 or \\k<name>)')
      raise(replication(part.quantifier))
    } else if (part.kind === 'close') {
      const body = inner.length > 1 ? inner.pop() as number : 1
      raise(body * replication(part.quantifier))
    }
  }
  if ((inner[0] as number) > MAX_REPLICATION) {
    causes.add(`a bounded repetition too large for the linear-time engine (the counts of x{n} and x{n,m} may be at most ${MAX_REPLICATION}, multiplied over nested groups; use * or + for longer runs)`)
  }
  return [...causes]
}
