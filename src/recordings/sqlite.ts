import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { Cursor, FileInfo, NewRecording, Recording, RecordingPage, RecordingQuery, RecordingStore } from './store.js'

/**
 * The recordings index in SQLite (better-sqlite3: synchronous, so a row is on disk before the
 * on_dvr reply is written).
 *
 * - journal_mode=WAL: a commit appends to the write-ahead log; readers (the operator API) never
 *   block the writer, and a process killed at any instant leaves every committed row in the log,
 *   replayed at the next open.
 * - synchronous=FULL: the log is fsync()ed at every commit, so an acknowledged recording also
 *   survives a power cut or an OS crash, not only the process being killed (NORMAL would suffice
 *   for SIGKILL alone). It costs one fsync per on_dvr, and SRS sends one per reaped file.
 * - busy_timeout: a second process on the same DATA_DIR waits briefly for the write lock instead
 *   of failing the hook at once.
 */

const SCHEMA_VERSION = 1

const SCHEMA = `
CREATE TABLE IF NOT EXISTS recordings (
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`

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

export interface SqliteStoreOptions {
  /** Milliseconds to wait for another process's write lock; default 1000. */
  busyTimeoutMs?: number
}

export class SqliteRecordingStore implements RecordingStore {
  readonly file: string
  readonly #db: Database.Database
  readonly #insert: Database.Statement
  readonly #byKey: Database.Statement
  readonly #setInfo: Database.Statement
  readonly #count: Database.Statement
  readonly #touch: Database.Statement

  /** Opens (creating if needed) `recordings.db` in `dir`. */
  constructor (dir: string, opts: SqliteStoreOptions = {}) {
    mkdirSync(dir, { recursive: true })
    this.file = join(dir, 'recordings.db')
    this.#db = new Database(this.file)
    this.#db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 1000}`)
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma('synchronous = FULL')
    const version = this.#db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      this.#db.close()
      throw new Error(`${this.file} has schema version ${version}, newer than this srs-hooks knows (${SCHEMA_VERSION})`)
    }
    this.#db.exec(SCHEMA)
    this.#db.pragma(`user_version = ${SCHEMA_VERSION}`)
    this.#insert = this.#db.prepare(`
      INSERT INTO recordings (server_id, client_id, file_key, vhost, app, stream, stream_url, stream_id, cwd, file, path,
        started_at, received_at, file_error)
      VALUES (@server_id, @client_id, @file_key, @vhost, @app, @stream, @stream_url, @stream_id, @cwd, @file, @path,
        @started_at, @received_at, @file_error)
      ON CONFLICT (server_id, client_id, file_key) DO NOTHING`)
    this.#byKey = this.#db.prepare('SELECT * FROM recordings WHERE server_id = ? AND client_id = ? AND file_key = ?')
    this.#setInfo = this.#db.prepare('UPDATE recordings SET size = ?, mtime = ?, file_error = ?, checked_at = ? WHERE id = ?')
    this.#count = this.#db.prepare('SELECT count(*) AS n FROM recordings').pluck()
    this.#touch = this.#db.prepare("INSERT INTO meta (key, value) VALUES ('ready_check', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
  }

  add (r: NewRecording): { recording: Recording, created: boolean } {
    // One recording per file per publisher session: the same on_dvr twice (two hook URLs, a replay)
    // is one recording; a later session overwriting a fixed dvr_path is another.
    const key = [r.serverId ?? '', r.clientId, r.path ?? r.file]
    const { changes } = this.#insert.run({
      server_id: key[0],
      client_id: key[1],
      file_key: key[2],
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
    })
    return { recording: toRecording(this.#byKey.get(...key) as Row), created: changes === 1 }
  }

  setFileInfo (id: number, info: FileInfo, checkedAt: number): void {
    if ('error' in info) this.#setInfo.run(null, null, info.error, checkedAt, id)
    else this.#setInfo.run(info.size, info.mtime, null, checkedAt, id)
  }

  list (q: RecordingQuery): RecordingPage {
    const where: string[] = []
    const params: Record<string, string | number> = { limit: q.limit + 1 }
    if (q.vhost !== undefined) { where.push('vhost = @vhost'); params.vhost = q.vhost }
    if (q.app !== undefined) { where.push('app = @app'); params.app = q.app }
    if (q.stream !== undefined) { where.push('stream = @stream'); params.stream = q.stream }
    if (q.from !== undefined) { where.push('received_at >= @from'); params.from = q.from }
    if (q.to !== undefined) { where.push('coalesce(started_at, received_at) <= @to'); params.to = q.to }
    if (q.after !== undefined) {
      where.push('(received_at < @afterAt OR (received_at = @afterAt AND id < @afterId))')
      params.afterAt = q.after.receivedAt
      params.afterId = q.after.id
    }
    const sql = `SELECT * FROM recordings ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''}
      ORDER BY received_at DESC, id DESC LIMIT @limit`
    const rows = this.#db.prepare(sql).all(params) as Row[]
    const items = rows.slice(0, q.limit).map(toRecording)
    const last = items[items.length - 1]
    const next: Cursor | null = rows.length > q.limit && last !== undefined ? { receivedAt: last.receivedAt, id: last.id } : null
    return { items, next }
  }

  count (): number {
    return this.#count.get() as number
  }

  checkWritable (now: number): void {
    this.#touch.run(String(now))
  }

  close (): void {
    this.#db.close()
  }
}

function toRecording (r: Row): Recording {
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
