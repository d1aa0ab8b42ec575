import { accessSync, constants, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { openDurable, SqliteDatabase, type GroupStats } from './group-commit.js'
import {
  keyOf,
  type Added, type Cursor, type FileInfo, type NewRecording, type Readiness, type Recording, type RecordingKey,
  type RecordingPage, type RecordingQuery, type RecordingStore
} from './store.js'

/**
 * The recordings index in SQLite, `DATA_DIR/recordings.db`, the default store.
 *
 * - journal_mode=WAL: a commit appends to the write-ahead log; readers never block the writer, and
 *   a process killed at any instant leaves every committed row in the log, replayed at next open.
 * - synchronous=FULL: the log is fsync()ed at every commit, so an acknowledged recording also
 *   survives a power cut or an OS crash, not only the process being killed.
 * - The file is owned by a worker thread that commits in groups (group-commit.ts): the fsync never
 *   runs on the event loop, and a burst of on_dvr costs one commit per group, not one per hook.
 * - busy_timeout: a second process on the same DATA_DIR waits briefly for the write lock (in the
 *   worker) instead of failing the hook at once.
 */

/**
 * Versioned schema (PRAGMA user_version). Every listing filter (vhost, app, stream, any two, all
 * three, or none) has an index whose leading columns are exactly those equalities followed by
 * (received_at, id): a page is one ordered range scan, whatever the filters, the time bounds and the
 * cursor (both ranges on received_at). recordings_span bounds `to` (see list()).
 */
const MIGRATIONS: string[] = [
  // 1: the first index (srs-hooks 0.1).
  `CREATE TABLE IF NOT EXISTS recordings (
    id INTEGER PRIMARY KEY,
    server_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    file_key TEXT NOT NULL,
    vhost TEXT NOT NULL,
    app TEXT NOT NULL,
    stream TEXT NOT NULL,
    stream_url TEXT NOT NULL,
    stream_id TEXT,
    cwd TEXT,
    file TEXT NOT NULL,
    path TEXT,
    started_at INTEGER,
    received_at INTEGER NOT NULL,
    size INTEGER,
    mtime INTEGER,
    file_error TEXT,
    checked_at INTEGER,
    UNIQUE (server_id, client_id, file_key)
  );
  CREATE INDEX IF NOT EXISTS recordings_newest ON recordings (received_at DESC, id DESC);
  CREATE INDEX IF NOT EXISTS recordings_stream ON recordings (app, stream, received_at DESC, id DESC);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // 2: an index for every combination of filters; the longest recording's span.
  `CREATE INDEX recordings_app ON recordings (app, received_at DESC, id DESC);
  CREATE INDEX recordings_stream_name ON recordings (stream, received_at DESC, id DESC);
  CREATE INDEX recordings_vhost ON recordings (vhost, received_at DESC, id DESC);
  CREATE INDEX recordings_vhost_app ON recordings (vhost, app, received_at DESC, id DESC);
  CREATE INDEX recordings_vhost_stream ON recordings (vhost, stream, received_at DESC, id DESC);
  CREATE INDEX recordings_vhost_app_stream ON recordings (vhost, app, stream, received_at DESC, id DESC);
  CREATE INDEX recordings_span ON recordings ((received_at - started_at));`
]

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length

interface Row {
  id: number
  server_id: string
  client_id: string
  vhost: string
  app: string
  stream: string
  stream_url: string
  stream_id: string | null
  cwd: string | null
  file: string
  path: string | null
  started_at: number | null
  received_at: number
  size: number | null
  mtime: number | null
  file_error: string | null
  checked_at: number | null
}

export interface SqliteIndexOptions {
  /** The directory of recordings.db; created if missing. */
  dir: string
  /** Milliseconds to wait for another process's write lock; default 1000. */
  busyTimeoutMs?: number | undefined
}

/**
 * The index itself, synchronous (better-sqlite3): what the worker runs. Its operations (`ops`)
 * are what SqliteRecordingStore calls by message.
 */
export class SqliteIndex {
  readonly file: string
  readonly db: Database.Database
  readonly #insert: Database.Statement
  readonly #byKey: Database.Statement
  readonly #setInfo: Database.Statement
  readonly #count: Database.Statement
  readonly #touch: Database.Statement
  readonly #span: Database.Statement
  readonly #prune: Database.Statement
  readonly #lists = new Map<string, Database.Statement>()

  constructor (opts: SqliteIndexOptions) {
    const opened = openDurable(opts.dir, 'recordings.db', opts.busyTimeoutMs ?? 1000, migrate)
    this.db = opened.db
    this.file = opened.file
    this.#insert = this.db.prepare(`
      INSERT INTO recordings (server_id, client_id, file_key, vhost, app, stream, stream_url, stream_id, cwd, file, path,
        started_at, received_at, file_error)
      VALUES (@server_id, @client_id, @file_key, @vhost, @app, @stream, @stream_url, @stream_id, @cwd, @file, @path,
        @started_at, @received_at, @file_error)
      ON CONFLICT (server_id, client_id, file_key) DO NOTHING RETURNING id`).pluck()
    this.#byKey = this.db.prepare('SELECT id FROM recordings WHERE server_id = ? AND client_id = ? AND file_key = ?').pluck()
    this.#setInfo = this.db.prepare(`UPDATE recordings SET size = ?, mtime = ?, file_error = ?, checked_at = ?
      WHERE server_id = ? AND client_id = ? AND file_key = ? AND (checked_at IS NULL OR checked_at <= ?)`)
    this.#count = this.db.prepare('SELECT count(*) FROM recordings').pluck()
    this.#touch = this.db.prepare("INSERT INTO meta (key, value) VALUES ('ready_check', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    // The longest span [started_at, received_at] indexed (recordings_span: one index probe).
    this.#span = this.db.prepare('SELECT max(received_at - started_at) FROM recordings').pluck()
    this.#prune = this.db.prepare('DELETE FROM recordings WHERE id IN (SELECT id FROM recordings WHERE received_at < ? ORDER BY received_at, id LIMIT ?)')
  }

  /** The worker's operations: what SqliteRecordingStore sends. */
  readonly ops = {
    add: { write: true, run: (r: NewRecording) => this.add(r) },
    setFileInfo: { write: true, run: (key: RecordingKey, info: FileInfo, checkedAt: number) => { this.setFileInfo(key, info, checkedAt) } },
    list: { write: false, run: (q: RecordingQuery) => this.list(q) },
    count: { write: false, run: () => this.count() },
    touch: { write: true, run: (now: number) => { this.#touch.run(String(now)) } },
    prune: { write: true, run: (before: number, limit: number) => this.prune(before, limit) }
  }

  info (): { file: string, version: number } {
    return { file: this.file, version: this.db.pragma('user_version', { simple: true }) as number }
  }

  add (r: NewRecording): Added {
    const key = keyOf(r)
    const inserted = this.#insert.get({
      server_id: key.serverId,
      client_id: key.clientId,
      file_key: key.fileKey,
      vhost: r.vhost,
      app: r.app,
      stream: r.stream,
      stream_url: r.streamUrl,
      stream_id: r.streamId ?? null,
      cwd: r.cwd ?? null,
      file: r.file,
      path: r.path,
      started_at: r.startedAt,
      received_at: r.receivedAt,
      file_error: r.fileError
    }) as number | undefined
    if (inserted !== undefined) return { id: inserted, created: true, spooled: false }
    return { id: this.#byKey.get(key.serverId, key.clientId, key.fileKey) as number, created: false, spooled: false }
  }

  setFileInfo (key: RecordingKey, info: FileInfo, checkedAt: number): void {
    const [size, mtime, error] = 'error' in info ? [null, null, info.error] : [info.size, info.mtime, null]
    this.#setInfo.run(size, mtime, error, checkedAt, key.serverId, key.clientId, key.fileKey, checkedAt)
  }

  /** A page, newest first (see listSql for how every bound becomes a range of one index). */
  list (q: RecordingQuery): Omit<RecordingPage, 'spooled'> {
    const { sql, params } = sqliteListSql(q, () => (this.#span.get() as number | null) ?? 0)
    let stmt = this.#lists.get(sql)
    if (stmt === undefined) {
      stmt = this.db.prepare(sql)
      this.#lists.set(sql, stmt)
    }
    const rows = stmt.all(params) as Row[]
    const items = rows.slice(0, q.limit).map(toRecording)
    const last = items[items.length - 1]
    const next: Cursor | null = rows.length > q.limit && last !== undefined ? { receivedAt: last.receivedAt, id: last.id } : null
    return { items, next }
  }

  count (): number {
    return this.#count.get() as number
  }

  prune (before: number, limit: number): number {
    return this.#prune.run(before, limit).changes
  }

  close (): void {
    this.db.close()
  }
}

/** The index whose leading columns are exactly these equality filters, then (received_at, id). */
const INDEX_FOR: Record<string, string> = {
  '': 'recordings_newest',
  vhost: 'recordings_vhost',
  app: 'recordings_app',
  stream: 'recordings_stream_name',
  'app,stream': 'recordings_stream',
  'vhost,app': 'recordings_vhost_app',
  'vhost,stream': 'recordings_vhost_stream',
  'vhost,app,stream': 'recordings_vhost_app_stream'
}

/**
 * The page query (one prepared statement per shape, at most 2^6 of them). Every bound is a range
 * on received_at in the index of the equality filters: `from` directly; the cursor as
 * received_at <= its time (then id breaks ties); `to` through the longest span (`span()`): a
 * recording that started by `to` was received by `to` + that span.
 *
 * The index is named (INDEXED BY): without statistics (ANALYZE) SQLite's planner may take an
 * index with fewer equalities when a query has both `from` and `to`, and scan a rare stream's
 * months instead of its page (60 ms instead of 0.4 ms at a million rows).
 */
export function sqliteListSql (q: RecordingQuery, span: () => number): { sql: string, params: Record<string, string | number> } {
  const where: string[] = []
  const params: Record<string, string | number> = { limit: q.limit + 1 }
  const equal: string[] = []
  for (const f of ['vhost', 'app', 'stream'] as const) {
    const v = q[f]
    if (v !== undefined) { where.push(`${f} = @${f}`); params[f] = v; equal.push(f) }
  }
  if (q.from !== undefined) { where.push('received_at >= @from'); params.from = q.from }
  let upper: number | undefined
  if (q.to !== undefined) {
    where.push('coalesce(started_at, received_at) <= @to')
    params.to = q.to
    upper = q.to + Math.max(0, span())
  }
  if (q.after !== undefined) {
    where.push('(received_at < @afterAt OR id < @afterId)')
    params.afterAt = q.after.receivedAt
    params.afterId = q.after.id
    upper = Math.min(upper ?? Infinity, q.after.receivedAt)
  }
  if (upper !== undefined) { where.push('received_at <= @upper'); params.upper = upper }
  const sql = `SELECT * FROM recordings INDEXED BY ${INDEX_FOR[equal.join(',')]!} ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''}
    ORDER BY received_at DESC, id DESC LIMIT @limit`
  return { sql, params }
}

/** Brings the file to SQLITE_SCHEMA_VERSION in one transaction; refuses a newer one. */
function migrate (db: Database.Database, file: string): void {
  // IMMEDIATE: a second process opening the same file waits here, then finds the work done.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new Error(`${file} has schema version ${version}, newer than this srs-hooks knows (${SQLITE_SCHEMA_VERSION})`)
    }
    for (const sql of MIGRATIONS.slice(version)) db.exec(sql)
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`)
  }).immediate()
}

/** The SQLite index as a RecordingStore: every call goes to the worker that owns the file. */
export class SqliteRecordingStore implements RecordingStore {
  readonly kind = 'sqlite'
  readonly file: string
  readonly #worker: SqliteDatabase

  private constructor (worker: SqliteDatabase, file: string) {
    this.#worker = worker
    this.file = file
  }

  /**
   * Opens `recordings.db` in `opts.dir`, creating or migrating it here, at start (a bad DATA_DIR
   * or a newer schema stops the start); from then on the worker owns it.
   */
  static async open (opts: SqliteIndexOptions): Promise<SqliteRecordingStore> {
    const index = new SqliteIndex(opts)
    index.close()
    return new SqliteRecordingStore(new SqliteDatabase('index', opts), index.file)
  }

  /**
   * The store of a serving app: DATA_DIR is made and checked writable now, so that a bad one still
   * stops the start, but the file is opened (created, migrated) by the worker at the first call,
   * which the app makes once it is serving (recordings/plugin.ts): neither the binding nor the
   * migrations hold up a start's first hooks. A file it cannot open fails that call, and every
   * later one, with SQLite's reason (readiness says it).
   */
  static deferred (opts: SqliteIndexOptions): SqliteRecordingStore {
    mkdirSync(opts.dir, { recursive: true })
    accessSync(opts.dir, constants.W_OK)
    return new SqliteRecordingStore(new SqliteDatabase('index', opts), join(opts.dir, 'recordings.db'))
  }

  async add (r: NewRecording): Promise<Added> {
    return await this.#worker.call('add', r)
  }

  async setFileInfo (key: RecordingKey, info: FileInfo, checkedAt: number): Promise<void> {
    await this.#worker.call('setFileInfo', key, info, checkedAt)
  }

  async list (q: RecordingQuery): Promise<RecordingPage> {
    return { ...await this.#worker.call<Omit<RecordingPage, 'spooled'>>('list', q), spooled: 0 }
  }

  async count (): Promise<number> {
    return await this.#worker.call('count')
  }

  async readiness (now: number): Promise<Readiness> {
    try {
      await this.#worker.call('touch', now)
      return { ok: true, msg: null }
    } catch (err) {
      return { ok: false, msg: `the recordings index ${this.file} is not writable: ${(err as Error).message}` }
    }
  }

  async prune (before: number, limit: number): Promise<number> {
    return await this.#worker.call('prune', before, limit)
  }

  spool (): null {
    return null
  }

  /** How the worker grouped its calls into commits so far. */
  async stats (): Promise<GroupStats> {
    return await this.#worker.call('stats')
  }

  async close (): Promise<void> {
    await this.#worker.close()
  }
}

export function toRecording (r: Row): Recording {
  return {
    id: r.id,
    vhost: r.vhost,
    app: r.app,
    stream: r.stream,
    streamUrl: r.stream_url,
    clientId: r.client_id,
    serverId: r.server_id === '' ? undefined : r.server_id,
    streamId: r.stream_id ?? undefined,
    cwd: r.cwd ?? undefined,
    file: r.file,
    path: r.path,
    startedAt: r.started_at,
    receivedAt: r.received_at,
    fileError: r.file_error,
    size: r.size,
    mtime: r.mtime,
    checkedAt: r.checked_at
  }
}

export type RecordingRow = Row
