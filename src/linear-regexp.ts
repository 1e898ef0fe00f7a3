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
    return /linear time/.test(message)
      ? 'uses what cannot match in linear time (backreferences, lookahead or lookbehind)'
      : `is not a valid regular expression: ${message.replace(/^Invalid regular expression: /, '')}`
  }
  if (repeatsRepetition(pattern)) return 'can backtrack exponentially (a repeated group that itself repeats or alternates, such as (a+)+ or (a|aa)*)'
  return null
}

/**
 * True when a group containing a quantifier or an alternation is itself quantified with `*`, `+`
 * or `{n,}` / `{n,m}` with m > 1: the shapes that backtrack exponentially in ordinary engines.
 */
function repeatsRepetition (pattern: string): boolean {
  // Per open group: whether it holds a quantifier or an alternation so far.
  const stack: boolean[] = []
  let inClass = false
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string
    if (c === '\\') {
      i++
      continue
    }
    if (inClass) {
      if (c === ']') inClass = false
      continue
    }
    if (c === '[') {
      inClass = true
      continue
    }
    if (c === '(') {
      stack.push(false)
      continue
    }
    if (c === '|') {
      if (stack.length > 0) stack[stack.length - 1] = true
      continue
    }
    const repeats = quantifierAt(pattern, i)
    if (c === ')') {
      const risky = stack.pop() ?? false
      const after = quantifierAt(pattern, i + 1)
      if (risky && after === 'many') return true
      // The group counts as a repetition for the group around it.
      if ((risky || after !== 'none') && stack.length > 0) stack[stack.length - 1] = true
      continue
    }
    if (repeats !== 'none' && stack.length > 0) stack[stack.length - 1] = true
  }
  return false
}

/** What quantifier starts at `i`: `many` (`*`, `+`, `{n,}`, `{n,m}` with m > 1), `once` (`?`, `{0,1}`, `{1}`), or none. */
function quantifierAt (pattern: string, i: number): 'many' | 'once' | 'none' {
  const c = pattern[i]
  if (c === '*' || c === '+') return 'many'
  if (c === '?') return 'once'
  if (c === '{') {
    const m = /^\{([0-9]+)(,([0-9]*))?\}/.exec(pattern.slice(i))
    if (m === null) return 'none'
    if (m[2] === undefined) return Number(m[1]) > 1 ? 'many' : 'once'
    if (m[3] === '') return 'many'
    return Number(m[3]) > 1 ? 'many' : 'once'
  }
  return 'none'
}
