// What a bench's results record about the run: the machine and the pinning, the commit measured
// (with any modified src/ or bin/ files), and the command line.

import { readFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { LOAD_CPU, pinned, PROXY_CPU, ROOT, safeExec } from './children.ts'

export function machine (): Record<string, string | number | boolean> {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown'
  return {
    nproc: Number(safeExec('nproc', [])) || cpus().length,
    cpuModel: model.trim(),
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    pinned,
    proxyCpu: PROXY_CPU,
    loadAndUpstreamCpu: LOAD_CPU,
  }
}

/** The commit of the checkout at `root` (this one by default), and any src/ or bin/ files that differ from it. */
export function codeVersion (root = ROOT): { commit: string; modified: string[] } {
  const modified = safeExec('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'bin'])
  return {
    commit: safeExec('git', ['-C', root, 'rev-parse', '--short', 'HEAD']) || 'unknown',
    modified: modified === '' ? [] : modified.split('\n').map((l) => l.trim()),
  }
}

/** The run as a command line: the BENCH_* variables set, `script`, and any flags. */
export function commandLine (script: string): string {
  return [
    ...Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v ?? ''}`),
    script, ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : []),
  ].join(' ')
}
