import { pino, type BaseLogger, type Logger } from 'pino'

/** What the domain logs with: pino's methods, satisfied by Fastify's request and app loggers. */
export type Log = Pick<BaseLogger, 'debug' | 'info' | 'warn' | 'error'>

/**
 * The process's logger: JSON lines, with credentials redacted wherever they could appear. Lines go
 * to standard output asynchronously (flushed on exit), so a hook never waits on a write to a slow
 * terminal or pipe, and the lines of one turn of the event loop in one write (turnBatched).
 */
export function createLogger (level: string, destination: pino.DestinationStream = turnBatched(pino.destination({ dest: 1, sync: false }))): Logger {
  return pino({
    level,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'password', '*.password', 'srsAuth', 'DATABASE_URL', '*.DATABASE_URL', 'connectionString', '*.connectionString'],
      censor: '***'
    }
  }, destination)
}

/**
 * The same logger and destination without redaction, for lines whose every field is known and
 * none a secret (the per-hook line). Redaction walks each line's object for its paths, about
 * three times the cost of the line itself.
 */
export function unredacted (logger: { child: (bindings: Record<string, never>, options: { redact: { paths: string[] } }) => Log }): Log {
  return logger.child({}, { redact: { paths: [] } })
}

type Destination = ReturnType<typeof pino.destination>

/**
 * Hands the lines written during one turn of the event loop to `stream` together, at the end of
 * the turn: one write (a system call, through libuv's thread pool) for all of them instead of one
 * per line. At the maximum hook rate that write was the largest cost of a hook after the reply's
 * own (BENCHMARKS.md). Lines keep their order; flushing (and pino's flush at exit) hands over
 * what is pending first.
 */
export function turnBatched (stream: Destination): Destination {
  let pending = ''
  let scheduled = false
  const write = stream.write.bind(stream)
  const flush = stream.flush.bind(stream)
  const flushSync = stream.flushSync.bind(stream)
  const end = stream.end.bind(stream)
  const handOver = (): void => {
    scheduled = false
    if (pending === '') return
    const lines = pending
    pending = ''
    write(lines)
  }
  stream.write = (data: string): boolean => {
    pending += data
    if (!scheduled) {
      scheduled = true
      setImmediate(handOver)
    }
    return true
  }
  stream.flush = (cb?: (err?: Error) => unknown): void => {
    handOver()
    flush(cb)
  }
  stream.flushSync = (): void => {
    handOver()
    flushSync()
  }
  stream.end = (): void => {
    handOver()
    end()
  }
  return stream
}

type LevelFn = (...args: unknown[]) => void

/**
 * Fastify's request logger, made when the request first logs through it. Fastify gives every
 * request a child of the app's logger (its reqId); making it is a tenth of what a hook costs
 * srs-hooks beyond node:http's own work, and the hooks' one line is written by another child
 * (callbacks.ts). The lines it writes are the child's: the same bindings, options and level.
 */
export class LazyChildLogger {
  readonly #parent: Logger
  readonly #bindings: Record<string, unknown>
  readonly #options: Record<string, unknown>
  #made: Logger | undefined

  constructor (parent: Logger, bindings: Record<string, unknown>, options: Record<string, unknown>) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
  }

  get #log (): Logger {
    this.#made ??= this.#parent.child(this.#bindings, this.#options)
    return this.#made
  }

  get level (): string { return this.#log.level }
  set level (level: string) { this.#log.level = level }
  fatal (...args: unknown[]): void { (this.#log.fatal as LevelFn)(...args) }
  error (...args: unknown[]): void { (this.#log.error as LevelFn)(...args) }
  warn (...args: unknown[]): void { (this.#log.warn as LevelFn)(...args) }
  info (...args: unknown[]): void { (this.#log.info as LevelFn)(...args) }
  debug (...args: unknown[]): void { (this.#log.debug as LevelFn)(...args) }
  trace (...args: unknown[]): void { (this.#log.trace as LevelFn)(...args) }
  silent (...args: unknown[]): void { (this.#log.silent as LevelFn)(...args) }
  child (bindings: Record<string, unknown>, options?: Record<string, unknown>): Logger {
    return this.#log.child(bindings, options)
  }
}
