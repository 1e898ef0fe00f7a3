// How the admin commands print for a person: aligned tables, colour only on a terminal without
// NO_COLOR, a progress bar, and the few number formats (req/s, rates, milliseconds) they share.

export interface Style {
  readonly enabled: boolean
  bold (text: string): string
  dim (text: string): string
  red (text: string): string
  green (text: string): string
  yellow (text: string): string
  cyan (text: string): string
}

const sgr = (on: boolean, code: number) => (text: string): string => on ? `\x1b[${code}m${text}\x1b[0m` : text

export function buildStyle (enabled: boolean): Style {
  return { enabled, bold: sgr(enabled, 1), dim: sgr(enabled, 2), red: sgr(enabled, 31), green: sgr(enabled, 32), yellow: sgr(enabled, 33), cyan: sgr(enabled, 36) }
}

/** Colour on a terminal, unless NO_COLOR is set (https://no-color.org: any non-empty value). */
export function wantsColour (stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '')
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g
const width = (text: string): number => text.replace(ANSI, '').length

/** Columns padded to their widest cell (colour codes do not count), two spaces apart; no trailing blanks. */
export function table (header: readonly string[], rows: readonly (readonly string[])[], style: Style): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((row) => width(row[i] ?? ''))))
  const line = (row: readonly string[]): string => row.map((cell, i) => i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - width(cell))).join('  ').trimEnd()
  return [style.bold(line(header)), ...rows.map(line)].join('\n')
}

/** `[######----]`: `done` out of `total`, in `cells` characters. */
export function progressBar (done: number, total: number, cells = 20): string {
  const filled = total <= 0 ? 0 : Math.max(0, Math.min(cells, Math.round((done / total) * cells)))
  return '[' + '#'.repeat(filled) + '-'.repeat(cells - filled) + ']'
}

/** `stable 90  canary 10  green 0`. */
export function formatWeights (weights: Readonly<Record<string, number>>): string {
  return Object.entries(weights).map(([version, weight]) => `${version} ${weight}`).join('  ')
}

export const perSecond = (requests: number, seconds: number): string => (requests / seconds).toFixed(1)
export const percent = (rate: number | null | undefined): string => rate === null || rate === undefined ? '-' : `${(rate * 100).toFixed(2)} %`
export const millis = (ms: number | null | undefined): string => ms === null || ms === undefined ? '-' : ms.toFixed(1)

/** A measured value for a person: integers as they are, others to 4 significant digits. */
export function formatValue (value: number | null): string {
  if (value === null) return '-'
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)))
}

/** `HH:MM:SS` of an ISO time, in UTC (as the event log writes it). */
export const clock = (iso: string | null | undefined): string => typeof iso === 'string' && iso.length >= 19 ? iso.slice(11, 19) : '-'
