// `${NAME}`, `${NAME:-default}` and `$$` in a config file: replaced by the environment's values
// after parsing, so a secret's characters can never change the document's structure.

import type { Problem } from '../errors.ts'

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$/g
const PLACEHOLDER = /__weir_env_([0-9]+)__/g
const WHOLE_PLACEHOLDER = /^__weir_env_([0-9]+)__$/

export interface EnvRef { name: string | undefined; fallback: string | undefined }

/**
 * Swaps each ${NAME}, ${NAME:-default} and $$ for a plain-scalar placeholder before parsing,
 * so `{ token: ${TOKEN} }` is valid YAML even inside a flow map and a secret's characters can
 * never change the document's structure.
 */
export function extractEnvRefs (text: string): { text: string; refs: EnvRef[] } {
  const refs: EnvRef[] = []
  const replaced = text.replace(ENV_REF, (_whole, name: string | undefined, fallback: string | undefined) => {
    refs.push({ name, fallback })
    return `__weir_env_${refs.length - 1}__`
  })
  return { text: replaced, refs }
}

/** Replaces the placeholders in every string value; a value that is one whole number or boolean keeps that type. */
export function interpolate (value: unknown, refs: EnvRef[], env: Readonly<Record<string, string | undefined>>, path: string, problems: Problem[]): unknown {
  if (typeof value === 'string') {
    const resolveRef = (index: string): string => {
      const ref = refs[Number(index)]
      if (ref === undefined) return `__weir_env_${index}__`
      if (ref.name === undefined) return '$'
      const found = env[ref.name]
      if (found !== undefined) return found
      if (ref.fallback !== undefined) return ref.fallback
      problems.push({ path: path === '' ? '(root)' : path, reason: `environment variable ${ref.name} is not set (write \${${ref.name}:-} to allow it empty)` })
      return ''
    }
    const whole = WHOLE_PLACEHOLDER.exec(value)
    if (whole !== null) {
      const resolved = resolveRef(whole[1] as string)
      if (/^-?[0-9]+(\.[0-9]+)?$/.test(resolved)) return Number(resolved)
      if (resolved === 'true' || resolved === 'false') return resolved === 'true'
      return resolved
    }
    return value.replace(PLACEHOLDER, (_m, index: string) => resolveRef(index))
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, refs, env, `${path}[${i}]`, problems))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[key] = interpolate(item, refs, env, path === '' ? key : `${path}.${key}`, problems)
    return out
  }
  return value
}
