// The one test for "a JSON object" (not null, not an array) that config, state, admin and shadow
// comparison share. A leaf: it imports nothing.

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
