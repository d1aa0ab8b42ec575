import { layOutCores } from './cores.js'
import { configureLaunch, row, withStage, type Row } from './harness.js'
import type { BenchOptions } from './options.js'
import { SCENARIOS } from './scenarios.js'

/** Runs the chosen scenarios in turn, reporting progress to `progress`; resolves with all the rows. */
export async function runBench (opts: BenchOptions, progress: (line: string) => void): Promise<Row[]> {
  const layout = layOutCores(opts.pin)
  configureLaunch(layout, opts.profileDir)
  progress(`cores: ${layout.text}`)
  // The layout heads the table: every ratio below was measured with it.
  const rows: Row[] = [row(`core layout: ${layout.text}`, 'cores', layout.cpus.length)]
  const started = performance.now()
  await withStage(async (stage) => {
    for (const n of opts.scenarios) {
      const scenario = SCENARIOS[n - 1]!
      progress(`[${n}/${SCENARIOS.length}] ${scenario.title}`)
      rows.push(...await scenario.run(stage, opts))
    }
  })
  progress(`done in ${Math.round((performance.now() - started) / 1000)} s`)
  return rows
}
