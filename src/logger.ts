import { pino, type BaseLogger, type Logger } from 'pino'

/** What the domain logs with: pino's methods, satisfied by Fastify's request and app loggers. */
export type Log = Pick<BaseLogger, 'debug' | 'info' | 'warn' | 'error'>

/**
 * The process's logger: JSON lines, with credentials redacted wherever they could appear. Lines go
 * to standard output asynchronously (flushed on exit), so a hook never waits on a write to a slow
 * terminal or pipe.
 */
export function createLogger (level: string, destination: pino.DestinationStream = pino.destination({ dest: 1, sync: false })): Logger {
  return pino({
    level,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'password', '*.password', 'srsAuth', 'DATABASE_URL', '*.DATABASE_URL', 'connectionString', '*.connectionString'],
      censor: '***'
    }
  }, destination)
}
