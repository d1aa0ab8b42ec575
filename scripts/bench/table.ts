import type { Row } from './harness.js'

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 })
const MET = { true: 'yes', false: '**NO**' }
const HEAD = ['figure', 'value', 'reference', 'ratio', 'target', 'met?']

/** The results as a Markdown table, ready for BENCHMARKS.md. */
export function formatTable (rows: Row[]): string {
  const lines = rows.map((r) => [
    r.figure,
    `${number.format(r.value)} ${r.unit}`,
    r.reference === undefined ? '' : `${number.format(r.reference)} ${r.unit}`,
    r.ratio === undefined ? '' : number.format(r.ratio),
    r.target ?? '',
    r.met === undefined ? '' : MET[`${r.met}`]
  ])
  return [HEAD, HEAD.map(() => '---'), ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}
