/**
 * The `srs-hooks` commands. `serve` (the default) runs the hooks server; the other commands are
 * loaded only when asked for.
 */

import { readFileSync } from 'node:fs'
import type { Command, Io } from './command.js'

const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.js')).command,
  sign: async () => (await import('./sign.js')).sign,
  doctor: async () => (await import('./doctor.js')).command,
  evict: async () => (await import('./evict.js')).command
}

/**
 * The package's version, from its package.json: two folders up from src/cli/main.ts as from the
 * bundle dist/src/srs-hooks.cjs (build.mjs), and beside dist/ in the image.
 */
export function version (): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

export async function main (argv: string[], io: Io): Promise<number> {
  const [name = 'serve', ...args] = argv
  if (name === 'help' || name === '--help' || name === '-h') {
    io.out('usage: srs-hooks [command] [options]   (npx srs-hooks ... from the project\'s folder)\n\ncommands:')
    for (const [n, load] of Object.entries(commands)) io.out(`  ${n.padEnd(8)} ${(await load()).summary}`)
    io.out('\n"srs-hooks <command> --help" explains one, with its exit codes; "srs-hooks --version" prints the version')
    return 0
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    io.out(`srs-hooks ${version()}`)
    return 0
  }
  const load = commands[name]
  if (load === undefined) {
    io.err(`srs-hooks: unknown command "${name}"; run "srs-hooks help" for the list`)
    return 2
  }
  const command = await load()
  if (args.includes('--help') || args.includes('-h')) {
    io.out(`usage: ${command.usage}\n\nexit codes:`)
    for (const [code, meaning] of command.exits) io.out(`  ${code}  ${meaning}`)
    return 0
  }
  return await command.run(args, io)
}
