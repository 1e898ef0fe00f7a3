// Renders the config JSON schema exactly as committed in config/weir.schema.json.

import { fileURLToPath } from 'node:url'
import { ConfigSchema } from '../src/config/schema.ts'

export const SCHEMA_FILE = fileURLToPath(new URL('../config/weir.schema.json', import.meta.url))

/** A key with a default may be left out of a file: editors must not call it required. */
function relaxDefaults (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relaxDefaults)
  if (node === null || typeof node !== 'object') return node
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) out[key] = relaxDefaults(value)
  const properties = out.properties as Record<string, { default?: unknown }> | undefined
  if (Array.isArray(out.required) && properties !== undefined) {
    const required = (out.required as string[]).filter((name) => properties[name]?.default === undefined)
    if (required.length > 0) out.required = required
    else delete out.required
  }
  return out
}

export function renderSchema (): string {
  // JSON.stringify drops TypeBox's symbol keys; `errorMessage` is ours and harmless to editors.
  return JSON.stringify(relaxDefaults({ $schema: 'http://json-schema.org/draft-07/schema#', ...ConfigSchema }), null, 2) + '\n'
}
