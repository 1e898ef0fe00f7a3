// Plain-text report tables of the benches (first column left-aligned, the rest right-aligned),
// and the number formats in them.

export function table (header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n') + '\n'
}

/** a ÷ b to 3 decimals; null without a (non-zero) b. */
export const ratio = (a: number, b: number | undefined): number | null => (b === undefined || b === 0 ? null : Math.round((a / b) * 1000) / 1000)

export const fmt = (n: number | null, digits = 2): string => (n === null ? '-' : n.toFixed(digits))
