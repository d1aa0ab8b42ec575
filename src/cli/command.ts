/** What every `srs-hooks` command is given, and what it is. */

export interface Io {
  out: (line: string) => void
  err: (line: string) => void
  env: Record<string, string | undefined>
}

export interface Command {
  summary: string
  usage: string
  /** Resolves with the exit code. */
  run: (args: string[], io: Io) => Promise<number>
}
