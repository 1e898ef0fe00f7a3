// Bench settings: a flag wins over its environment variable, which wins over the default.

/** A positive number from `--flag` or `$ENV`, else `fallback`; anything else stops the bench with the variable named. */
export function setting (flag: string | undefined, env: string, fallback: number): number {
  const raw = flag ?? process.env[env]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${env}: expected a positive number, got "${raw}"`)
  return value
}

/** The scenarios named in `--scenarios` or `$BENCH_SCENARIOS` (else `defaults`), in `all`'s order; an unknown one stops the bench. */
export function scenarioSetting<T extends string> (flag: string | undefined, all: readonly T[], defaults: readonly T[] = all): T[] {
  const selected = (flag ?? process.env.BENCH_SCENARIOS ?? defaults.join(','))
    .split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const s of selected) if (!all.includes(s as T)) throw new Error(`unknown scenario "${s}" (known: ${all.join(', ')})`)
  return all.filter((s) => selected.includes(s))
}
