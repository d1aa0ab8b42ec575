/**
 * `npm run bench`: measures the hooks path side by side with its limits and prints the results
 * table (Markdown) on standard output, progress on standard error. Parameters: BENCH_* variables
 * (scripts/bench/options.ts); BENCHMARKS.md has the latest results and the command.
 */
import { optionsFrom } from './bench/options.js'
import { runBench } from './bench/run.js'
import { formatTable } from './bench/table.js'

const opts = optionsFrom(process.env)
process.stderr.write(`bench: ${JSON.stringify(opts)}\n`)
const rows = await runBench(opts, (line) => process.stderr.write(line + '\n'))
process.stdout.write(formatTable(rows) + '\n')
