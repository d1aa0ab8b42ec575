/**
 * The `srs-hooks` commands. `serve` (the default) runs the hooks server; the other commands are
 * loaded only when asked for.
 */

import type { Command, Io } from './command.js'

const commands: Record<string, () => Promise<Command>> = {
  serve: async () => ({
    summary: 'serve SRS hooks (the default command)',
    usage: 'srs-hooks [serve]   (configured by environment variables; see README)',
    run: async (_args, io) => await (await import('../server.js')).serve(io.env, io.err)
  }),
  sign: async () => (await import('./sign.js')).sign,
  doctor: async () => (await import('./doctor.js')).command,
  evict: async () => (await import('./evict.js')).command
}

export async function main (argv: string[], io: Io): Promise<number> {
  const [name = 'serve', ...args] = argv
  if (name === 'help' || name === '--help' || name === '-h') {
    io.out('usage: srs-hooks [command] [options]\n\ncommands:')
    for (const [n, load] of Object.entries(commands)) io.out(`  ${n.padEnd(8)} ${(await load()).summary}`)
    return 0
  }
  const load = commands[name]
  if (load === undefined) {
    io.err(`srs-hooks: unknown command "${name}"; run "srs-hooks help" for the list`)
    return 2
  }
  const command = await load()
  if (args.includes('--help') || args.includes('-h')) {
    io.out(`usage: ${command.usage}`)
    return 0
  }
  return await command.run(args, io)
}

