// Per-request loggers that become a real pino child only when the request logs something:
// pino's child() serializes its bindings eagerly, which the profile showed as ~1.5 µs and
// garbage on every proxied request that never logs.

import type { FastifyBaseLogger } from 'fastify'

type LogFn = (...args: unknown[]) => void
type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

export class LazyRequestLogger {
  private readonly parent: FastifyBaseLogger
  private readonly bindings: Record<string, unknown>
  private real: FastifyBaseLogger | null = null

  constructor (parent: FastifyBaseLogger, bindings: Record<string, unknown>) {
    this.parent = parent
    this.bindings = bindings
  }

  get level (): string {
    return (this.real ?? this.parent).level
  }

  set level (level: string) {
    this.logger().level = level
  }

  fatal (...args: unknown[]): void { this.write('fatal', args) }
  error (...args: unknown[]): void { this.write('error', args) }
  warn (...args: unknown[]): void {
    // A client hanging up is routine for a proxy, yet reply-from (WebSocket upgrades) logs each one as a warning
    // with a stack; keep those at debug so a flaky client network cannot flood the log.
    this.write(isClientAbort(args[0]) ? 'debug' : 'warn', args)
  }

  info (...args: unknown[]): void { this.write('info', args) }
  debug (...args: unknown[]): void { this.write('debug', args) }
  trace (...args: unknown[]): void { this.write('trace', args) }
  silent (): void {}

  child (bindings: Record<string, unknown>, options?: Record<string, unknown>): FastifyBaseLogger {
    return this.logger().child(bindings, options)
  }

  isLevelEnabled (level: string): boolean {
    return (this.parent as unknown as { isLevelEnabled (l: string): boolean }).isLevelEnabled(level)
  }

  private write (level: Level, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return
    ;(this.logger()[level] as LogFn)(...args)
  }

  private logger (): FastifyBaseLogger {
    if (this.real === null) this.real = this.parent.child(this.bindings)
    return this.real
  }
}

function isClientAbort (value: unknown): boolean {
  return value instanceof Error && (value as Error & { code?: unknown }).code === 'UND_ERR_ABORTED'
}

export function lazyChildLogger (logger: FastifyBaseLogger, bindings: Record<string, unknown>): FastifyBaseLogger {
  return new LazyRequestLogger(logger, bindings) as unknown as FastifyBaseLogger
}
