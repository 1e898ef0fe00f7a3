// A process killed with SIGKILL in the middle of rapid state writes never leaves a state file
// that weir cannot open, and never loses a write it reported as persisted.

import t from 'tap'
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openFileStore } from '../../src/state/file-store.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NODE = join(ROOT, 'node_modules/.bin/node')
const WRITER = join(ROOT, 'test/helpers/state-writer.ts')

interface Run { reported: number[]; killed: boolean; killAfterMs: number }

/** Runs the writer, SIGKILLs it `killAfterMs` after it is ready, and collects the revisions it reported. */
function runAndKill (file: string, killAfterMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [WRITER, file, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let timer: NodeJS.Timeout | undefined
    const guard = setTimeout(() => { if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL') }, 20_000)
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (timer === undefined && out.startsWith('ready\n')) {
        timer = setTimeout(() => { if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL') }, killAfterMs)
      }
    })
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    child.once('error', reject)
    // 'close': the exit happened and both pipes are drained, so every reported line is in `out`.
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      clearTimeout(guard)
      if (signal === null && code !== 0) {
        reject(new Error(`writer failed with code ${code}: ${err}`))
        return
      }
      // Only complete lines count: each was written after its revision was durable.
      const reported = out.split('\n').slice(1, -1).map(Number)
      resolve({ reported, killed: signal === 'SIGKILL', killAfterMs })
    })
  })
}

t.test('kill -9 during 1 000 rapid writes never leaves an unreadable state file', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'state.json')
  let lastOnDisk = 0
  for (let round = 1; round <= 5; round++) {
    const killAfterMs = 50 + Math.floor(Math.random() * 251)
    const started = performance.now()
    const run = await runAndKill(file, killAfterMs)
    const last = run.reported.at(-1) ?? lastOnDisk
    const leftovers = readdirSync(dir).filter((n) => n.endsWith('.tmp')).length

    const store = await openFileStore(file)
    const revision = store.get('web')?.revision ?? 0
    t.ok(revision >= last, `round ${round}: revision on disk ${revision} >= last reported ${last}`)
    // Writes are sequential: at most the one in flight at the kill can be durable but unreported.
    t.ok(revision <= last + 1, `round ${round}: at most one unreported write (${revision} <= ${last} + 1)`)
    t.ok(run.reported.every((r, i) => r === (run.reported[0] ?? 0) + i), `round ${round}: revisions were consecutive`)
    t.same(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], `round ${round}: leftover temp files were removed on open`)
    await store.close()
    t.comment(`round ${round}: killed after ${killAfterMs} ms (${run.killed ? 'mid-run' : 'finished first'}), ` +
      `${run.reported.length} writes reported, revision ${revision}, ${leftovers} temp file(s) left, ${Math.round(performance.now() - started)} ms`)
    lastOnDisk = revision
  }
})
