// The body every bench upstream answers with: JSON naming the version, padded to an exact size,
// so every scenario moves the same payload whichever server (nginx or node:http) sends it.

/** A JSON body of exactly `bytes` bytes naming `version` (letters, digits, '-' or '_': nothing to escape). */
export function upstreamBody (version: string, bytes: number): string {
  const bare = JSON.stringify({ version, ok: true, pad: '' })
  if (bare.length > bytes || !/^[\w-]+$/.test(version)) throw new Error(`no ${bytes}-byte body for version "${version}"`)
  return JSON.stringify({ version, ok: true, pad: 'x'.repeat(bytes - bare.length) })
}
