import { posix } from 'node:path'
import { Type } from 'typebox'
import { splitList } from '../settings.js'

/** SRS's own recordings folder in its official image (cwd /usr/local/srs, default dvr_path ./objs/nginx/html/...). */
export const DEFAULT_RECORDINGS_ROOTS = '/usr/local/srs/objs/nginx/html'

/** RECORDINGS_ROOTS as normalized absolute folders. */
export function recordingRootsOf (value: string): string[] {
  return splitList(value).map((r) => posix.resolve(r))
}

const notAbsolute = (v: string): string[] => splitList(v).filter((r) => !posix.isAbsolute(r))

/**
 * Settings of the recordings index: where it lives (SQLite in DATA_DIR, or PostgreSQL), its bounds,
 * the spool in front of PostgreSQL, and retention. Merged into ConfigSchema; docs/configuration.md
 * documents each one with its default.
 */
export const RecordingsSettings = {
  /** The folders whose recorded files srs-hooks may examine (stat); any other path an on_dvr names is indexed unexamined. */
  RECORDINGS_ROOTS: Type.Refine(Type.String({ default: DEFAULT_RECORDINGS_ROOTS, maxLength: 16_384 }),
    (v: string) => notAbsolute(v).length === 0 && splitList(v).length > 0,
    (v: string) => splitList(v).length === 0 ? 'name at least one absolute folder' : `not an absolute folder: ${notAbsolute(v).join(', ')}`),
  /** postgres://user:password@host:5432/db: the index in PostgreSQL. Unset: SQLite in DATA_DIR. Never logged with its password. */
  // No length or pattern here: loadConfig quotes a value it refuses, and this one holds a password.
  // checkDatabaseUrl() checks it at start and masks the password in its message.
  DATABASE_URL: Type.Optional(Type.String()),
  /** The PostgreSQL schema srs-hooks creates and owns (recordings, schema_migrations, meta). */
  DATABASE_SCHEMA: Type.String({ default: 'srs_hooks', pattern: '^[a-z_][a-z0-9_]{0,62}$' }),
  /** Bound on an on_dvr's write to PostgreSQL; past it the recording goes to the spool. Far below SRS's 30 s hook timeout. */
  DATABASE_WRITE_TIMEOUT_MS: Type.Integer({ default: 1000, minimum: 1, maximum: 20_000 }),
  /** Bound on connecting to PostgreSQL, on each statement (statement_timeout) and on reads (GET recordings, /metrics). */
  DATABASE_QUERY_TIMEOUT_MS: Type.Integer({ default: 5000, minimum: 1, maximum: 600_000 }),
  /** Connections to PostgreSQL at most. */
  DATABASE_POOL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 1000 }),
  /** Recordings the spool holds at most while PostgreSQL is out of reach; past it on_dvr is refused (code 1101). */
  SPOOL_MAX_ROWS: Type.Integer({ default: 1_000_000, minimum: 1, maximum: 1_000_000_000 }),
  /** How long to wait before draining the spool again after PostgreSQL failed. */
  SPOOL_RETRY_MS: Type.Integer({ default: 2000, minimum: 10, maximum: 600_000 }),
  /** Rows the index holds at most; past it on_dvr is refused (code 1101) until retention or an operator makes room. */
  RECORDINGS_MAX_ROWS: Type.Integer({ default: 50_000_000, minimum: 1, maximum: 1_000_000_000_000 }),
  /** Delete index rows received more than this many days ago. Unset: keep forever. Files are never touched. */
  RECORDINGS_RETENTION_DAYS: Type.Optional(Type.Integer({ minimum: 1, maximum: 36_500 })),
  /** How often retention runs (each run deletes in batches of 1000 rows). */
  RECORDINGS_RETENTION_SWEEP_MS: Type.Integer({ default: 3_600_000, minimum: 10, maximum: 86_400_000 })
}
