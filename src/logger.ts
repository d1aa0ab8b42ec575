import { pino, type BaseLogger, type Logger } from 'pino'

/** What the domain logs with: pino's methods, satisfied by Fastify's request and app loggers. */
export type Log = Pick<BaseLogger, 'debug' | 'info' | 'warn' | 'error'>

/** The process's logger: JSON lines, with credentials redacted wherever they could appear. */
export function createLogger (level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'password', '*.password', 'srsAuth'],
      censor: '***'
    }
  }, destination)
}
