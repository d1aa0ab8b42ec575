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
