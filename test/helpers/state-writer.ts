// A child process for the crash test: opens the state file given as argv[2], prints "ready",
// then runs argv[3] (default 1000) sequential compareAndSets as fast as it can, printing each
// revision once it is persisted. The parent kills it with SIGKILL somewhere in between.

import { openFileStore } from '../../src/state/file-store.ts'

const file = process.argv[2]
if (file === undefined) throw new Error('usage: state-writer.ts <state file> [writes]')
const writes = Number(process.argv[3] ?? 1000)
const store = await openFileStore(file)
// Pipes are synchronous on Linux: a line the parent reads was written after the write resolved.
process.stdout.write('ready\n')
for (let i = 0; i < writes; i++) {
  const current = store.get('web')
  const canary = (i * 37) % 10_001
  const result = await store.compareAndSet('web', current?.revision ?? 0, {
    weights: { stable: 10_000 - canary, canary, green: 0 },
    upstreams: { canary: [`http://10.0.0.${i % 250}:3000`] },
    rollout: { step: i, history: Array.from({ length: i % 20 }, (_, n) => ({ n, note: 'padding to vary the file size' })) },
  })
  if (!result.ok) throw new Error(`unexpected conflict at write ${i}`)
  process.stdout.write(`${result.state.revision}\n`)
}
await store.close()
