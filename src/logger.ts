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

/** pino writes every string with JSON.stringify on Node 25 and later. */
const STRINGIFY_ALL = Number(process.versions.node.split('.')[0]) >= 25

/**
 * A string as pino writes it in a line (pino/lib/tools.js `asString`): before Node 25, quotes and
 * backslashes escaped by hand, and JSON.stringify only for a string over 100 characters or one
 * with a control character.
 */
export function jsonString (s: string): string {
  /* c8 ignore next - Node 25 and later; this project runs on Node 20 */
  if (STRINGIFY_ALL) return JSON.stringify(s)
  if (s.length > 100) return JSON.stringify(s)
  let result = ''
  let last = 0
  let found = false
  let point = 255
  for (let i = 0; i < s.length && point >= 32; i++) {
    point = s.charCodeAt(i)
    if (point === 34 || point === 92) {
      result += s.slice(last, i) + '\\'
      last = i
      found = true
    }
  }
  result = found ? result + s.slice(last) : s
  return point < 32 ? JSON.stringify(s) : '"' + result + '"'
}

/**
 * Writes lines exactly as a pino logger would, built as one string: `{"level":N,"time":T`, the
 * logger's bindings, the fields (`,"key":value`, undefined ones left out), `"msg"`, to the logger's
 * own stream. For the one line per hook: pino's general path (the merge object, the per-key
 * dispatch, the level method) was a fifth of a hook's cost beyond node:http's (BENCHMARKS.md).
 * `of` answers undefined for a logger whose lines it would not write the same (formatters, a mixin,
 * hooks, other keys or line ends, a custom time): checked once against pino's own output.
 */
export class LineWriter {
  readonly #logger: Logger
  readonly #chindings: string
  readonly #stream: { write: (line: string) => unknown }

  private constructor (logger: Logger, chindings: string, stream: { write: (line: string) => unknown }) {
    this.#logger = logger
    this.#chindings = chindings
    this.#stream = stream
  }

  static of (logger: Logger): LineWriter | undefined {
    const s = pino.symbols
    const l = logger as unknown as Record<symbol, any>
    const stream = l[s.streamSym]
    if (l[s.mixinSym] !== undefined || l[s.hooksSym].streamWrite !== undefined || stream[s.needsMetadataGsym] === true || l[s.timeSym] !== pino.stdTimeFunctions.epochTime) return undefined
    const writer = new LineWriter(logger, l[s.chindingsSym] as string, stream)
    const probe = { s: 'a"b\\c\n\u00e9\ud800', long: 'x'.repeat(101), n: 1.5, inf: Infinity, t: true, none: null, u: undefined }
    for (const level of [30, 40]) {
      const theirs = (l[s.asJsonSym] as (o: object, msg: string, n: number, time: string) => string).call(logger, probe, 'm"', level, ',"time":1')
      if (theirs !== writer.line(level, 1, writer.fields(probe)!, 'm"')) return undefined
    }
    return writer
  }

  /** Whether a line at `level` (30 info, 40 warn) is written at the logger's level. */
  enabled (level: number): boolean {
    return level >= this.#logger.levelVal
  }

  /** `obj`'s fields as pino writes them (`,"key":value`...); undefined if one is an object (use pino then). */
  fields (obj: Record<string, unknown>): string | undefined {
    let out = ''
    for (const key in obj) {
      const v = obj[key]
      if (v === undefined || !Object.hasOwn(obj, key)) continue
      switch (typeof v) {
        case 'string':
          out += ',' + jsonString(key) + ':' + jsonString(v)
          break
        case 'number':
          out += ',' + jsonString(key) + ':' + (Number.isFinite(v) ? String(v) : 'null')
          break
        case 'boolean':
          out += ',' + jsonString(key) + ':' + String(v)
          break
        default:
          if (v !== null) return undefined
          out += ',' + jsonString(key) + ':null'
      }
    }
    return out
  }

  /** Writes one line of `fields` (as `fields()` makes them) at `level`, with `msg`. */
  write (level: number, fields: string, msg: string): void {
    this.#stream.write(this.line(level, Date.now(), fields, msg))
  }

  private line (level: number, time: number, fields: string, msg: string): string {
    return '{"level":' + String(level) + ',"time":' + String(time) + this.#chindings + fields + ',"msg":' + jsonString(msg) + '}\n'
  }
}
