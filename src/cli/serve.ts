import type { Command } from './command.js'
import { ConfigSchema } from '../config.js'

/** `srs-hooks [serve]`: the hooks server, configured by the environment only. */

/** One line per variable: its name, the values it takes when they are few, and its default. */
export function variables (): string[] {
  const width = Math.max(...Object.keys(ConfigSchema.properties).map((k) => k.length))
  return Object.entries(ConfigSchema.properties).map(([name, schema]) => {
    const s = schema as { default?: unknown, anyOf?: Array<{ const?: unknown }> }
    const values = s.anyOf?.map((v) => v.const).filter((v) => v !== undefined)
    const takes = values !== undefined && values.length > 0 ? `one of ${values.join(', ')}; ` : ''
    const dflt = s.default === undefined ? 'unset by default' : s.default === '' ? 'default empty' : `default ${String(s.default)}`
    return `  ${name.padEnd(width)}  ${takes}${dflt}`
  })
}

export const command: Command = {
  summary: 'serve SRS hooks (the default command)',
  get usage () {
    return 'srs-hooks [serve]\n\nconfigured by these environment variables (the documentation under docs/ says what each does):\n' + variables().join('\n')
  },
  exits: [
    [0, 'stopped by SIGTERM or SIGINT after answering the hooks in flight'],
    [1, 'could not start: a bad setting, or PORT/HOST could not be bound (the first line says which and why)']
  ],
  run: async (_args, io) => await (await import('../server.js')).serve(io.env, io.err)
}
