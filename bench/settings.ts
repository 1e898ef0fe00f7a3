// Bench settings: a flag wins over its environment variable, which wins over the default.

/** A positive number from `--flag` or `$ENV`, else `fallback`; anything else stops the bench with the variable named. */
export function setting (flag: string | undefined, env: string, fallback: number): number {
  const raw = flag ?? process.env[env]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${env}: expected a positive number, got "${raw}"`)
  return value
}
