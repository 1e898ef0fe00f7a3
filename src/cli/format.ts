// How config problems are printed: one `path: reason` line each.

import type { Problem } from '../config/rules.ts'

export function formatProblems (problems: readonly Problem[]): string {
  return problems.map((p) => `${p.path}: ${p.reason}`).join('\n')
}
