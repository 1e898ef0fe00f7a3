// Parses the duration and size strings the schema accepts ("30s", "10mb") into numbers.

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const SIZE_UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }

/** Milliseconds of a schema-valid duration. */
export function durationMs (value: string | number): number {
  if (typeof value === 'number') return value
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(value)
  if (match === null) throw new TypeError(`not a duration: ${value}`)
  return Math.round(Number(match[1]) * (DURATION_UNITS_MS[match[2] as string] as number))
}

/** Bytes of a schema-valid size. */
export function byteSize (value: string | number): number {
  if (typeof value === 'number') return value
  const match = /^([0-9]+)(b|kb|mb|gb)$/.exec(value)
  if (match === null) throw new TypeError(`not a size: ${value}`)
  return Number(match[1]) * (SIZE_UNITS[match[2] as string] as number)
}
