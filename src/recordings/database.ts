import { ConfigError } from '../errors.js'

/**
 * DATABASE_URL: how it is checked, shown and classified. Its password never leaves this module in
 * a message: logs, errors and `doctor` show `redactUrl()`.
 */

/** `postgres://user:***@host:5432/db`: the URL with its password (and any password parameter) masked. */
export function redactUrl (raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return '(not a URL)'
  }
  if (url.password !== '') url.password = '***'
  for (const name of [...url.searchParams.keys()]) {
    if (/pass|secret|key|token/i.test(name)) url.searchParams.set(name, '***')
  }
  return url.toString()
}

/** The URL, checked: postgres:// or postgresql:// with a host. Throws ConfigError (password masked). */
export function checkDatabaseUrl (raw: string): string {
  let url: URL | undefined
  try {
    url = new URL(raw)
  } catch {}
  if (url === undefined || !['postgres:', 'postgresql:'].includes(url.protocol) || url.hostname === '') {
    throw new ConfigError(`DATABASE_URL=${JSON.stringify(redactUrl(raw))}: expected postgres://user:password@host:5432/database`)
  }
  return raw
}

/** A PostgreSQL schema srs-hooks owns (DATABASE_SCHEMA): a plain lower-case identifier, quoted. */
export function quoteSchema (name: string): string {
  return `"${name}"`
}

/** The database did not answer within a bound of ours. */
export class DatabaseTimeoutError extends Error {
  readonly code = 'DATABASE_TIMEOUT'

  constructor (what: string, ms: number) {
    super(`${what}: PostgreSQL did not answer within ${ms} ms`)
    this.name = 'DatabaseTimeoutError'
  }
}

/** The schema in the database is newer than this srs-hooks knows: an older build must not write to it. */
export class SchemaTooNewError extends Error {
  readonly code = 'SCHEMA_TOO_NEW'

  constructor (where: string, found: number, known: number) {
    super(`${where} has schema version ${found}, newer than this srs-hooks knows (${known}); run the newer srs-hooks`)
    this.name = 'SchemaTooNewError'
  }
}

/**
 * Whether trying again later cannot help: wrong credentials, a database or privilege that does not
 * exist, a schema from a newer srs-hooks. The server then refuses to start, as for a bad setting.
 * Anything else (refused, reset, timed out, shutting down, read-only during a failover) may pass:
 * recordings go to the spool meanwhile.
 */
export function isPermanent (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  if (code === 'SCHEMA_TOO_NEW') return true
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false
  // 28: invalid authorization; 3D000: no such database; 42501: insufficient privilege; 3F000: no such schema.
  return code.startsWith('28') || code === '3D000' || code === '42501' || code === '3F000'
}

/**
 * Whether PostgreSQL refused the data itself (SQLSTATE 22: data exception, 23: integrity, 54: a
 * limit such as an index entry's size): the same row would be refused again, however long one
 * waits. Such a recording is not spooled; one already spooled is set aside so that it does not
 * hold up the others.
 */
export function isDataError (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code)
}

/**
 * `work` raced against `ms`: rejects with DatabaseTimeoutError when it takes longer. `work` goes
 * on (pg's own timeouts end it); a late failure of it is ignored, a late success is harmless
 * because every write is keyed.
 */
export async function bounded<T> (work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DatabaseTimeoutError(what, ms)), ms)
  })
  work.catch(() => {})
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}
