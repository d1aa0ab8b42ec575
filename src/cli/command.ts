/** What every `srs-hooks` command is given, and what it is. */

export interface Io {
  out: (line: string) => void
  err: (line: string) => void
  env: Record<string, string | undefined>
}

export interface Command {
  summary: string
  usage: string
  /** Its exit codes and what each means, printed by `--help`. */
  exits: Array<[code: number, meaning: string]>
  /** Resolves with the exit code. */
  run: (args: string[], io: Io) => Promise<number>
}
