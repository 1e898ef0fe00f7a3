// Child processes of the benches (run.ts, shadow.ts, blast-radius.ts): each one pinned to a CPU
// when taskset exists, tracked, and killed by its pid on the way out (exit, Ctrl-C, error);
// the load generator's start / result protocol; waiting for ports.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { LoadResult, LoadSpec } from './load.ts'
import type { OpenLoopResult, OpenLoopSpec } from './open-loop.ts'
import type { RateLoadResult, RateLoadSpec } from './rate-load.ts'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const NODE = process.execPath
const TASKSET = '/usr/bin/taskset'

/** True when children are pinned to CPUs (taskset exists). */
export const pinned = existsSync(TASKSET)
/** The proxy under test runs alone on PROXY_CPU; upstreams, shadows and the load generator share LOAD_CPU. */
export const PROXY_CPU = 0
export const LOAD_CPU = 1
const children = new Set<ChildProcess>()

export interface Child { proc: ChildProcess; name: string; stderr: () => string }

/** Starts `node ...nodeArgs` on `cpu`, in `cwd` (this checkout by default). */
/** `stdout`: ignored (/dev/null), piped to us, or an open file descriptor the child writes to (a log file). */
/** `env`: added to this process's environment for the child. */
export interface ChildOptions { stdout?: 'ignore' | 'pipe' | number; cwd?: string; env?: Record<string, string> }

export function startChild (name: string, cpu: number, nodeArgs: string[], options: ChildOptions = {}): Child {
  return startCommand(name, cpu, NODE, nodeArgs, options)
}

/** Starts `file ...fileArgs` (nginx, wrk) on `cpu`; taskset execs it, so the child's pid is the program's own. */
export function startCommand (name: string, cpu: number, file: string, fileArgs: string[], options: ChildOptions = {}): Child {
  const [command, args] = pinned ? [TASKSET, ['-c', String(cpu), file, ...fileArgs]] : [file, fileArgs]
  const proc = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'],
    ...(options.env === undefined ? {} : { env: { ...process.env, ...options.env } }),
  })
  children.add(proc)
  let err = ''
  proc.stderr?.on('data', (chunk: Buffer) => {
    if (err.length < 20_000) err += chunk.toString()
  })
  proc.once('exit', () => children.delete(proc))
  return { proc, name, stderr: () => err }
}

/** SIGTERM, then SIGKILL if the process is still there after `graceMs`. */
export async function stopChild (child: Child, graceMs = 5000): Promise<void> {
  const { proc } = child
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  process.kill(proc.pid, 'SIGTERM')
  const timer = setTimeout(() => {
    if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, 'SIGKILL')
  }, graceMs)
  await exited
  clearTimeout(timer)
}

/** SIGKILLs every child still running (also on exit, SIGINT and SIGTERM). */
export function killAll (): void {
  for (const proc of children) {
    if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(proc.pid, 'SIGKILL')
      } catch { /* already gone */ }
    }
  }
  children.clear()
}

process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

export function portOpen (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export async function waitForPort (child: Child, port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`${child.name} exited before listening on ${port}:\n${child.stderr()}`)
    }
    if (await portOpen(port)) return
    await sleep(50)
  }
  throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms:\n${child.stderr()}`)
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export function safeExec (file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return ''
  }
}

/** The load generators: spec and result of each. */
interface Loads {
  'bench/load.ts': [LoadSpec, LoadResult]
  'bench/rate-load.ts': [RateLoadSpec, RateLoadResult]
  'bench/open-loop.ts': [OpenLoopSpec, OpenLoopResult]
}

/**
 * Starts a load generator (bench/load.ts, bench/rate-load.ts, bench/open-loop.ts) on LOAD_CPU
 * with `spec` as JSON. It prints "start" when its measured run begins, then its result as one
 * JSON line: `on.start` and `on.result` run the moment each arrives (to sample CPU counters over
 * that run alone); `started` resolves then too, or when the generator exits. SIGKILLed 45 s after
 * its warm-up + duration.
 */
export function startLoad<S extends keyof Loads> (script: S, spec: Loads[S][0], on: { start?: () => void; result?: () => void } = {}): { started: Promise<void>; result: Promise<Loads[S][1]> } {
  const child = startChild('load', LOAD_CPU, [script, JSON.stringify(spec)], { stdout: 'pipe' })
  let out = ''
  let seenStart = false
  let seenResult = false
  let markStarted: () => void = () => {}
  const started = new Promise<void>((resolve) => { markStarted = resolve })
  child.proc.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    if (!seenStart && out.includes('start\n')) {
      seenStart = true
      on.start?.()
      markStarted()
    }
    if (!seenResult && /\{.*\}\n/.test(out)) {
      seenResult = true
      on.result?.()
    }
  })
  const guard = setTimeout(() => {
    if (child.proc.pid !== undefined) process.kill(child.proc.pid, 'SIGKILL')
  }, (spec.duration + ((spec as { warmup?: number }).warmup ?? 0) + 45) * 1000)
  const result = new Promise<Loads[S][1]>((resolve, reject) => {
    child.proc.once('exit', (code) => {
      clearTimeout(guard)
      markStarted()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (code !== 0 || line === undefined) reject(new Error(`load generator failed (exit ${code}):\n${child.stderr()}`))
      else resolve(JSON.parse(line) as Loads[S][1])
    })
  })
  return { started, result }
}

/** Runs a bench's main, then kills every child left and exits (1, with the error, if main failed). */
export function runBench (name: string, main: () => Promise<void>): void {
  main().then(() => {
    killAll()
    process.exit(0)
  }, (err: unknown) => {
    process.stderr.write(`${name} failed: ${(err as Error).stack ?? String(err)}\n`)
    killAll()
    process.exit(1)
  })
}
