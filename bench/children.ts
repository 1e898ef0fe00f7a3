// Child processes of the benchmarks (bench/run.ts, bench/shadow.ts): each one pinned to a CPU
// when taskset exists, tracked, and killed by its pid on the way out (exit, Ctrl-C, error); and
// the CPU time of a process from /proc.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const NODE = process.execPath
const TASKSET = '/usr/bin/taskset'

/** True when children are pinned to CPUs (taskset exists). */
export const pinned = existsSync(TASKSET)
const children = new Set<ChildProcess>()

export interface Child { proc: ChildProcess; name: string; stderr: () => string }

export function startChild (name: string, cpu: number, nodeArgs: string[], stdout: 'ignore' | 'pipe' = 'ignore'): Child {
  const [command, args] = pinned ? [TASKSET, ['-c', String(cpu), NODE, ...nodeArgs]] : [NODE, nodeArgs]
  const proc = spawn(command, args, { cwd: ROOT, stdio: ['ignore', stdout, 'pipe'] })
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

/** Milliseconds per clock tick of /proc CPU times. */
export const TICK_MS = 1000 / Number(safeExec('getconf', ['CLK_TCK']) || 100)

/** User + system CPU ticks a process has used (0 once it is gone). */
export function processTicks (pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return 0
  }
}
