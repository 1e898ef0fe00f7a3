// `weir validate --config FILE`: loads and checks a config; prints `FILE: valid (N routes)` or
// one `path: reason` line per problem. Exit 0 valid, 1 not.

import { loadConfigFile } from '../../config/load.ts'
import { formatProblems } from '../../config/problems.ts'
import { EXIT, type ExitCode } from '../exit-codes.ts'

export function validate (configFile: string): ExitCode {
  const result = loadConfigFile(configFile)
  if (result.ok) {
    const n = result.config.routes.length
    process.stdout.write(`${configFile}: valid (${n} route${n === 1 ? '' : 's'})\n`)
    return EXIT.ok
  }
  process.stdout.write(formatProblems(result.problems) + '\n')
  return EXIT.failed
}
