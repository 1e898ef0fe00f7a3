// `weir serve --config FILE [--workers auto|N]`: runs the proxy (src/server.ts, loaded only here
// so the admin commands start without it). A failed start ends `weir: failed to start: … (CODE)`.

import { availableParallelism } from 'node:os'
import { usageError } from '../exit-codes.ts'

/** `--workers`: auto or an integer 1–256, as the config key; undefined when not given. */
export function workersFlag (value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (value === 'auto') return availableParallelism()
  const n = Number(value)
  if (!/^[0-9]+$/.test(value) || n < 1 || n > 256) throw usageError(`--workers must be auto or a whole number from 1 to 256, not ${JSON.stringify(value)}`)
  return n
}

export function serveCommand (configFile: string, workersValue: string | undefined): void {
  const workers = workersFlag(workersValue)
  import('../../server.ts').then(({ serve }) => serve(configFile, {}, workers === undefined ? {} : { workers })).catch((err: unknown) => {
    // weir's own errors carry a code an operator can look up (README, docs/errors.md).
    const code = (err as { code?: unknown }).code
    const named = typeof code === 'string' && code.startsWith('WEIR_ERR_') ? ` (${code})` : ''
    process.stderr.write(`weir: failed to start: ${(err as Error).message}${named}\n`)
    process.exit(1)
  })
}
