// The `weir` command: `serve` runs the proxy, `validate` checks a config file.

import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { loadConfigFile } from '../config/load.ts'
import { formatProblems } from '../config/problems.ts'

const USAGE = `usage: weir <command> [--config FILE] [--workers auto|N]

commands:
  serve      run the proxy
  validate   check a config file; print every problem as "path: reason"; exit 1 if any

--config defaults to $WEIR_CONFIG.
--workers (serve) overrides the config's \`workers\`: auto is one per CPU, 1 a single process.`

/** `--workers`: auto or an integer 1–256, as the config key; undefined when not given. */
function workersFlag (value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (value === 'auto') return availableParallelism()
  const n = Number(value)
  if (!/^[0-9]+$/.test(value) || n < 1 || n > 256) {
    process.stderr.write(`weir: --workers must be auto or a whole number from 1 to 256, not ${JSON.stringify(value)}\n`)
    process.exit(2)
  }
  return n
}

function main (argv: string[]): void {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, workers: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
  } catch (err) {
    process.stderr.write(`weir: ${(err as Error).message}\n${USAGE}\n`)
    process.exit(2)
  }
  const [command] = parsed.positionals
  if (parsed.values.help === true || command === undefined) {
    process.stdout.write(USAGE + '\n')
    process.exit(command === undefined && parsed.values.help !== true ? 2 : 0)
  }
  const configFile = parsed.values.config ?? process.env.WEIR_CONFIG
  if (configFile === undefined || configFile === '') {
    process.stderr.write('weir: no config file: pass --config FILE or set WEIR_CONFIG\n')
    process.exit(2)
  }
  switch (command) {
    case 'validate': {
      const result = loadConfigFile(configFile)
      if (result.ok) {
        process.stdout.write(`${configFile}: valid (${result.config.routes.length} route${result.config.routes.length === 1 ? '' : 's'})\n`)
        process.exit(0)
      }
      process.stdout.write(formatProblems(result.problems) + '\n')
      process.exit(1)
      break
    }
    case 'serve': {
      const workers = workersFlag(parsed.values.workers)
      import('../server.ts').then(({ serve }) => serve(configFile, {}, workers === undefined ? {} : { workers })).catch((err: unknown) => {
        // weir's own errors carry a code an operator can look up (README, docs/errors.md).
        const code = (err as { code?: unknown }).code
        const named = typeof code === 'string' && code.startsWith('WEIR_ERR_') ? ` (${code})` : ''
        process.stderr.write(`weir: failed to start: ${(err as Error).message}${named}\n`)
        process.exit(1)
      })
      break
    }
    default:
      process.stderr.write(`weir: unknown command "${command}"\n${USAGE}\n`)
      process.exit(2)
  }
}

main(process.argv.slice(2))
