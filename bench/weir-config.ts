// The weir config a bench runs: one route with user-id stickiness on the bench's own ports,
// written to a scratch file and, when asked, checked with weir's own `weir validate`.

import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { NODE, ROOT } from './children.ts'

export interface WeirConfig {
  /** Who writes it, for the file's first line: `bench/run.ts`, `bench/shadow.ts (scenario ok)`. */
  writer: string
  file: string
  stateFile: string
  ports: { weir: number; admin: number }
  route: string
  /** Version → URL, in the order written. */
  upstreams: Record<string, string>
  weights?: Record<string, number>
  shadow?: { percent: number; maxInFlight: number; timeout: string }
  /** Data-path processes (default 1: the per-core comparisons measure one process). */
  workers?: number
  /** Live state in etcd instead of the state file (a fleet), with this replica's fleet id. */
  etcd?: { url: string; prefix: string; fleetId: string }
  /** `accessLog: on` (default: off). */
  accessLog?: boolean
  /** Runs `bin/weir.js validate` on the file: a rejected config stops the bench before any load. */
  validate?: boolean
}

const flow = (map: Record<string, string | number>): string => `{ ${Object.entries(map).map(([k, v]) => `${k}: ${v}`).join(', ')} }`

/** Writes the config; returns its file. */
export function writeWeirConfig (c: WeirConfig): string {
  writeFileSync(c.file, `# Written by ${c.writer}.
listen: { host: 127.0.0.1, port: ${c.ports.weir} }
admin: { host: 127.0.0.1, port: ${c.ports.admin} }
state: { file: ${c.stateFile}${c.etcd === undefined ? '' : `, etcd: { endpoints: [${c.etcd.url}], prefix: ${c.etcd.prefix} }`} }
${c.etcd === undefined ? '' : `fleet: { id: ${c.etcd.fleetId} }\n`}cookieSecret: bench-secret-bench-secret
logLevel: warn
drainTimeout: 2s
workers: ${c.workers ?? 1}
${c.accessLog === true ? 'accessLog: on\n' : ''}routes:
  - name: ${c.route}
    upstreams: ${flow(c.upstreams)}
${c.weights === undefined ? '' : `    weights: ${flow(c.weights)}\n`}    stickiness: { userId: { header: x-user-id } }
${c.shadow === undefined ? '' : `    shadow: ${flow(c.shadow)}\n`}`)
  if (c.validate === true) {
    try {
      execFileSync(NODE, [`${ROOT}bin/weir.js`, 'validate', '--config', c.file], { stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer }
      throw new Error(`weir validate rejects ${c.file}:\n${String(e.stdout ?? '')}${String(e.stderr ?? '')}`)
    }
  }
  return c.file
}
