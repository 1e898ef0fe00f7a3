// Accounting from /proc: busy, steal and total jiffies per CPU (/proc/stat), the CPU ticks of
// one process (/proc/<pid>/stat), the busy / steal shares between two readings, and a process's
// memory (/proc/<pid>/status).

import { readFileSync } from 'node:fs'
import { safeExec } from './children.ts'

/** [busy, steal, total] jiffies of one CPU; busy excludes steal (time the hypervisor gave elsewhere). */
export type Ticks = [busy: number, steal: number, total: number]

/** Ticks per CPU, indexed by CPU number (empty when /proc/stat cannot be read: not Linux). */
export function cpuTicks (): Ticks[] {
  const out: Ticks[] = []
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line)
      if (m === null) continue
      const v = (m[2] as string).split(/\s+/).map(Number)
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
      const idle = (v[3] ?? 0) + (v[4] ?? 0)
      const steal = v[7] ?? 0
      out[Number(m[1])] = [total - idle - steal, steal, total]
    }
  } catch { /* not Linux */ }
  return out
}

/** [busy %, steal %] of one CPU between two readings (rounded), or null when no time passed on it. */
export function busyStealPct (before: Ticks | undefined, after: Ticks | undefined): [number, number] | null {
  if (before === undefined || after === undefined || after[2] === before[2]) return null
  const d = after[2] - before[2]
  return [Math.round(((after[0] - before[0]) / d) * 100), Math.round(((after[1] - before[1]) / d) * 100)]
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

/** A /proc/<pid>/status field in kB (VmRSS, VmHWM: the peak RSS over the process's life), or null once the process is gone. */
export function statusKb (pid: number | undefined, field: 'VmRSS' | 'VmHWM'): number | null {
  if (pid === undefined) return null
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : Number(m[1])
  } catch {
    return null
  }
}
