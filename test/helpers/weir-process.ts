// Runs the real `weir` process (bin/weir.js) as an operator would, for tests of the process
// itself: signals, restarts, refusal to start, kill -9.

import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sleep } from './raw-http.ts'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const NODE = join(ROOT, 'node_modules/.bin/node')
export const WEIR = join(ROOT, 'bin/weir.js')

export interface Weir {
  readonly child: ChildProcess
  /** Everything the process wrote so far (stdout and stderr). */
  output (): string
  /** Resolves once the process exited, with its code and the ms since `since` (performance.now()). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
}

/** Runs `weir <args>` from the repository root; teardown kills it by PID if it is still running. */
export function runWeir (t: Test, args: string[], env: NodeJS.ProcessEnv = process.env): Weir {
  const child = spawn(NODE, [WEIR, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() }))
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
  })
  return { child, output: () => text, exited }
}

/** Resolves with the output once it matches `pattern`; rejects after `limitMs` or if the process exits first. */
export async function waitForOutput (weir: Weir, pattern: RegExp, limitMs: number): Promise<RegExpMatchArray> {
  const deadline = performance.now() + limitMs
  while (performance.now() < deadline) {
    const match = weir.output().match(pattern)
    if (match !== null) return match
    if (weir.child.exitCode !== null || weir.child.signalCode !== null) break
    await sleep(20)
  }
  throw new Error(`weir did not print ${pattern} within ${limitMs} ms; output:\n${weir.output()}`)
}

/** Waits for the exit, at most `limitMs`; null when it is still running then. */
export async function exitWithin (weir: Weir, limitMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number } | null> {
  let timer: NodeJS.Timeout | undefined
  const result = await Promise.race([weir.exited, new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), limitMs) })])
  clearTimeout(timer)
  return result
}

export function tempDir (): string {
  return mkdtempSync(join(tmpdir(), 'weir-lifecycle-'))
}

/** A YAML config for one route; `route` lines are indented under `- name: app`. */
export function yamlConfig (dir: string, route: string, top = ''): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
state: { file: ${join(dir, 'state.json')} }
cookieSecret: lifecycle-test-secret
logLevel: info
workers: ${process.env.WEIR_TEST_WORKERS ?? 1}
${top}routes:
  - name: app
${route.trim().split('\n').map((line) => '    ' + line.trim()).join('\n')}
`
}

/** Starts `weir serve` on a config and waits until it listens; returns its proxy and admin base URLs. */
export async function serveWeir (t: Test, file: string, env?: NodeJS.ProcessEnv): Promise<{ weir: Weir; url: string; port: number; adminUrl: string }> {
  const weir = runWeir(t, ['serve', '--config', file], env)
  // A loaded CI machine starting several replicas at once can take well over 15 s.
  const match = await waitForOutput(weir, /weir proxy listening on (https?:\/\/127\.0\.0\.1:([0-9]+))/, 30_000)
  const admin = weir.output().match(/weir admin .*listening on (http:\/\/127\.0\.0\.1:[0-9]+)/)
  return { weir, url: match[1] as string, port: Number(match[2]), adminUrl: admin?.[1] ?? '' }
}
