// Every WEIR_ERR_* code is in one table (src/errors.ts), and the table, the source and the README's
// errors table agree both ways: no code is raised that the table lacks, no table code is unused,
// every code is documented with its status, and the README names no code that does not exist.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ERRORS, WeirError } from '../../src/errors.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CODE = /WEIR_ERR_[A-Z0-9_]+/g

function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? sourceFiles(path) : entry.name.endsWith('.ts') ? [path] : []
  })
}

const tableCodes = new Set(Object.keys(ERRORS))
/** Code → the src files that name it (in errors.ts, outside the table itself: the transport failures). */
const usedIn = new Map<string, string[]>()
for (const file of sourceFiles(join(ROOT, 'src'))) {
  let text = readFileSync(file, 'utf8')
  if (file.endsWith('src/errors.ts')) text = text.replace(/export const ERRORS = \{[\s\S]*?\n\} as const/, '')
  for (const [code] of text.matchAll(CODE)) usedIn.set(code, [...(usedIn.get(code) ?? []), file.slice(ROOT.length)])
}

t.test('every code the source names is in the errors table', async (t) => {
  t.ok(usedIn.size > 20, `the scan found the source's codes (${usedIn.size})`)
  for (const [code, files] of usedIn) t.ok(tableCodes.has(code), `${code} (${[...new Set(files)].join(', ')}) is in ERRORS`)
})

t.test('every code in the table is raised somewhere in the source', async (t) => {
  for (const code of tableCodes) t.ok(usedIn.has(code), `${code} is raised or answered outside the table`)
})

t.test('the README documents every code with its status, and no other code', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const rows = new Map<string, number>()
  for (const [, status, code] of readme.matchAll(/^\| *([0-9]{3}) *\| *`(WEIR_ERR_[A-Z0-9_]+)` *\|/gm)) rows.set(code as string, Number(status))
  for (const [code, spec] of Object.entries(ERRORS)) t.equal(rows.get(code), spec.status, `README's errors table has ${code} with status ${spec.status}`)
  const named = new Set([...readme.matchAll(CODE)].map(([code]) => code))
  for (const code of named) t.ok(tableCodes.has(code), `${code}, named in the README, exists`)
})

t.test('the table is well-formed: a status per code, a distinct message, and only bugs keep their stack', async (t) => {
  const messages = new Set<string>()
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.ok(spec.status >= 400 && spec.status < 600, `${code} has an error status`)
    t.ok(spec.message.length > 0 && !messages.has(spec.message), `${code} has its own message`)
    messages.add(spec.message)
    t.equal(spec.expected, code !== 'WEIR_ERR_INTERNAL', `${code} is ${spec.expected ? '' : 'not '}expected`)
  }
  const expected = new WeirError('WEIR_ERR_ADMIN_INVALID', 'x')
  t.equal(expected.stack?.split('\n').length, 1, 'an expected error captures no stack frames')
  t.equal(expected.status, 400, 'the error carries its status from the table')
  t.ok((new WeirError('WEIR_ERR_INTERNAL').stack?.split('\n').length ?? 0) > 1, 'a bug keeps its stack')
})
