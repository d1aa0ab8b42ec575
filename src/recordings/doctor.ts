import { pino } from 'pino'
import type { Config } from '../config.js'
import { checkDatabaseUrl, redactUrl } from './database.js'
import { PG_SCHEMA_VERSION, PgRecordingStore } from './postgres.js'

/**
 * `srs-hooks doctor`'s look at the recordings database, when DATABASE_URL is set: PostgreSQL
 * answers, the schema's version, and a committed write. Read-only otherwise: it never migrates.
 */

export interface Say {
  ok: (what: string) => void
  warn: (what: string, fix: string) => void
  fail: (what: string, fix: string) => void
  step: (what: string) => void
}

export async function checkDatabase (config: Config, say: Say): Promise<void> {
  const raw = config.DATABASE_URL!
  let url: string
  try {
    url = checkDatabaseUrl(raw)
  } catch (err) {
    say.fail((err as Error).message, 'set DATABASE_URL to postgres://user:password@host:5432/database, or unset it to keep recordings in SQLite in DATA_DIR')
    return
  }
  const where = redactUrl(url)
  const schema = config.DATABASE_SCHEMA
  const db = new PgRecordingStore({
    url, schema, queryTimeoutMs: config.DATABASE_QUERY_TIMEOUT_MS, writeTimeoutMs: config.DATABASE_QUERY_TIMEOUT_MS, poolMax: 1, log: pino({ level: 'silent' })
  })
  try {
    say.step(`connecting to PostgreSQL at ${where}`)
    let version: number
    try {
      version = await db.schemaVersion()
    } catch (err) {
      say.fail(`PostgreSQL at ${where}: ${(err as Error).message}`,
        'start PostgreSQL or fix DATABASE_URL (host, port, user, password, database); meanwhile srs-hooks keeps acknowledged recordings in its spool in DATA_DIR')
      return
    }
    say.ok(`PostgreSQL answers at ${where}`)
    if (version > PG_SCHEMA_VERSION) {
      say.fail(`schema ${schema} is at version ${version}, newer than this srs-hooks knows (${PG_SCHEMA_VERSION})`, 'run the srs-hooks release that migrated it (or a newer one)')
      return
    }
    if (version < PG_SCHEMA_VERSION) {
      say.warn(`schema ${schema} is at version ${version} (0: not created yet); this srs-hooks brings it to version ${PG_SCHEMA_VERSION} at start`,
        `nothing to do if \`srs-hooks serve\` may: it needs CREATE on the database (or on schema ${schema}, if a DBA created it)`)
    } else {
      say.ok(`schema ${schema} is at version ${version}`)
    }
    // The write goes to a table of the schema: none before version 1.
    if (version === 0) return
    try {
      await db.touch(Date.now())
      say.ok(`a test write to ${schema}.meta was committed`)
    } catch (err) {
      say.fail(`PostgreSQL at ${where} does not take a write: ${(err as Error).message}`,
        'grant the user INSERT and UPDATE on the schema\'s tables, and point DATABASE_URL at the primary (not a read-only standby)')
    }
  } finally {
    await db.close()
  }
}
