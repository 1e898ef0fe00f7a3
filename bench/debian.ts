// Debian packages the bench needs beyond npm (nginx-light, wrk): installed with apt-get when
// their binary is missing and we are root, so `npm run bench` works on a fresh machine.

import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const APT = '/usr/bin/apt-get'

function apt (args: string[]): boolean {
  try {
    execFileSync(APT, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 })
    return true
  } catch {
    return false
  }
}

/**
 * True when `binary` exists, after installing the first of `packages` that apt can install
 * (`apt-get update` only when no candidate installs from the lists at hand); false, with the
 * reason in `why`, when it cannot be had (not root, no apt, no such package).
 */
export function ensureDebianPackage (binary: string, packages: readonly string[], log: (line: string) => void): { ok: true } | { ok: false; why: string } {
  if (existsSync(binary)) return { ok: true }
  if (!existsSync(APT)) return { ok: false, why: `${binary} is missing and there is no apt-get` }
  if (process.getuid?.() !== 0) return { ok: false, why: `${binary} is missing; install ${packages[0]} (apt-get needs root)` }
  const install = (): boolean => packages.some((pkg) => {
    log(`  installing ${pkg} (apt-get install -y ${pkg}) for ${binary}...`)
    return apt(['install', '-y', pkg]) && existsSync(binary)
  })
  if (install()) return { ok: true }
  log('  apt-get update, then again...')
  if (apt(['update']) && install()) return { ok: true }
  return { ok: false, why: `apt-get could not install ${packages.join(' or ')} (${binary} still missing)` }
}
