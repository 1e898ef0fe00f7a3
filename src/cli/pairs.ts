// `name=value` arguments (set-weights, set-upstream), each name one of a closed set, none twice.

import { usageError } from './exit-codes.ts'

export function parsePairs<N extends string> (args: readonly string[], names: readonly N[], form: string): [N, string][] {
  if (args.length === 0) throw usageError(`give at least one ${form}`)
  const seen = new Set<string>()
  return args.map((arg) => {
    const at = arg.indexOf('=')
    const name = at === -1 ? arg : arg.slice(0, at)
    if (at === -1) throw usageError(`${JSON.stringify(arg)}: expected ${form}`)
    if (!(names as readonly string[]).includes(name)) throw usageError(`${JSON.stringify(arg)}: ${name} is not one of ${names.join(', ')}`)
    if (seen.has(name)) throw usageError(`${name} is given twice`)
    seen.add(name)
    return [name as N, arg.slice(at + 1)]
  })
}
