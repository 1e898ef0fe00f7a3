// The exit codes of the `weir` command (docs/cli.md#exit-codes), and the one error a command
// throws to end with a message and one of them.

export const EXIT = {
  ok: 0,
  /** The operation was refused or failed: a 4xx/5xx from the admin API, a rollout that failed. */
  failed: 1,
  /** A usage error: an unknown command or option, a missing or malformed argument. */
  usage: 2,
  /** `rollout watch`: the route has no rollout to watch. */
  noRollout: 3,
  /** The admin API could not be reached (refused, timed out, no such host). */
  unreachable: 4,
  /** The admin API refused the token (401). */
  unauthorized: 5,
  /** `rollout watch --timeout`: the rollout had not ended in time. */
  timeout: 6,
} as const

export type ExitCode = typeof EXIT[keyof typeof EXIT]

/** Ends the command: `weir: <message>` on stderr, then exit with `exitCode`. Never a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError'
  readonly exitCode: ExitCode
  /** The admin API's error code (the `error` of its answer), when it refused. */
  readonly apiCode: string | undefined

  constructor (exitCode: ExitCode, message: string, apiCode?: string) {
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message)
    Error.stackTraceLimit = limit
    this.exitCode = exitCode
    this.apiCode = apiCode
  }
}

export const usageError = (message: string): CliError => new CliError(EXIT.usage, message)
