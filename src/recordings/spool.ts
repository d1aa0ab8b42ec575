import type Database from 'better-sqlite3'
import { openDurable, SqliteDatabase } from './group-commit.js'
import { keyOf, type FileInfo, type NewRecording, type RecordingKey } from './store.js'

/**
 * The spool: recordings acknowledged while PostgreSQL could not be reached, kept in SQLite
 * (`DATA_DIR/spool.db`, WAL, synchronous=FULL, committed in groups by its own worker thread like
 * the SQLite index) until they are drained into PostgreSQL, oldest first (spooled.ts).
 *
 * One row per recording key: the same on_dvr spooled twice is one row. The row keeps what
 * examining the file found meanwhile, so a drained recording arrives with its size. A recording
 * PostgreSQL refuses for what it holds is moved to the `rejected` table of the same file, with
 * PostgreSQL's reason, so that it neither blocks the drain nor is lost.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS spool (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  server_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  file_key TEXT NOT NULL,
  recording TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  size INTEGER,
  mtime INTEGER,
  file_error TEXT,
  checked_at INTEGER,
  UNIQUE (server_id, client_id, file_key)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
  seq INTEGER PRIMARY KEY,
  recording TEXT NOT NULL,
  reason TEXT NOT NULL,
  rejected_at INTEGER NOT NULL
);
`
const SPOOL_SCHEMA_VERSION = 1

/** A spooled recording, as drained: what the on_dvr said and what examining its file found. */
export interface SpooledRecording {
  seq: number
  recording: NewRecording
  size: number | null
  mtime: number | null
  fileError: string | null
  checkedAt: number | null
}

/** What examining a spooled file found, as the row held it when it left the spool. */
export type SpooledInfo = Pick<SpooledRecording, 'seq' | 'size' | 'mtime' | 'fileError' | 'checkedAt'>

export interface SpoolState {
  depth: number
  oldestAt: number | null
}

export interface SpoolFileOptions {
  dir: string
  busyTimeoutMs?: number | undefined
}

/** Thrown by add() when the spool holds `max` recordings. */
export class SpoolFullError extends Error {
  readonly code = 'SPOOL_FULL'

  constructor (max: number) {
    super(`the spool is full (SPOOL_MAX_ROWS=${max})`)
    this.name = 'SpoolFullError'
  }
}

interface Row {
  seq: number
  recording: string
  size: number | null
  mtime: number | null
  file_error: string | null
  checked_at: number | null
}

/** The spool file itself, synchronous: what its worker runs. */
export class SpoolFile {
  readonly file: string
  readonly db: Database.Database
  /** Rows committed. */
  #depth: number
  /** Rows added (less those removed) by the group's transaction not yet committed: counted once it is (settle). */
  #uncommitted = 0
  readonly #insert: Database.Statement
  readonly #setInfo: Database.Statement
  readonly #peek: Database.Statement
  readonly #get: Database.Statement
  readonly #delete: Database.Statement
  readonly #oldest: Database.Statement
  readonly #touch: Database.Statement
  readonly #reject: Database.Statement

  constructor (opts: SpoolFileOptions) {
    const opened = openDurable(opts.dir, 'spool.db', opts.busyTimeoutMs ?? 1000, (db, file) => {
      const version = db.pragma('user_version', { simple: true }) as number
      if (version > SPOOL_SCHEMA_VERSION) {
        throw new Error(`${file} has schema version ${version}, newer than this srs-hooks knows (${SPOOL_SCHEMA_VERSION})`)
      }
      db.exec(SCHEMA)
      db.pragma(`user_version = ${SPOOL_SCHEMA_VERSION}`)
    })
    this.db = opened.db
    this.file = opened.file
    this.#insert = this.db.prepare(`INSERT INTO spool (server_id, client_id, file_key, recording, received_at, file_error)
      VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (server_id, client_id, file_key) DO NOTHING`)
    this.#setInfo = this.db.prepare(`UPDATE spool SET size = ?, mtime = ?, file_error = ?, checked_at = ?
      WHERE server_id = ? AND client_id = ? AND file_key = ? AND (checked_at IS NULL OR checked_at <= ?)`)
    this.#peek = this.db.prepare('SELECT seq, recording, size, mtime, file_error, checked_at FROM spool ORDER BY seq LIMIT ?')
    this.#get = this.db.prepare('SELECT seq, size, mtime, file_error, checked_at FROM spool WHERE seq = ?')
    this.#delete = this.db.prepare('DELETE FROM spool WHERE seq = ?')
    this.#oldest = this.db.prepare('SELECT received_at FROM spool ORDER BY seq LIMIT 1').pluck()
    this.#touch = this.db.prepare("INSERT INTO meta (key, value) VALUES ('ready_check', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    this.#reject = this.db.prepare('INSERT OR REPLACE INTO rejected (seq, recording, reason, rejected_at) SELECT seq, recording, ?, ? FROM spool WHERE seq = ?')
    // Counted once; kept by add() and remove() from then on.
    this.#depth = this.db.prepare('SELECT count(*) FROM spool').pluck().get() as number
  }

  readonly ops = {
    add: { write: true, run: (r: NewRecording, max: number) => this.add(r, max) },
    setFileInfo: { write: true, run: (key: RecordingKey, info: FileInfo, checkedAt: number) => this.setFileInfo(key, info, checkedAt) },
    peek: { write: false, run: (limit: number) => this.peek(limit) },
    remove: { write: true, run: (seqs: number[]) => this.remove(seqs) },
    reject: { write: true, run: (rows: Array<{ seq: number, reason: string }>, now: number) => this.reject(rows, now) },
    touch: { write: true, run: (now: number) => { this.#touch.run(String(now)) } }
  }

  info (): SpoolState & { file: string } {
    return { file: this.file, ...this.state() }
  }

  /** The state as it is once the group in progress is committed (its callers are answered only then). */
  state (): SpoolState {
    return { depth: Math.max(0, this.#depth + this.#uncommitted), oldestAt: (this.#oldest.get() as number | undefined) ?? null }
  }

  /**
   * The end of a group's transaction (GroupCommit's `settled`): its rows count once committed; a
   * group rolled back (a failed COMMIT: a full disk, an I/O error) leaves the depth as it was.
   */
  settle (committed: boolean): void {
    if (committed) this.#depth = Math.max(0, this.#depth + this.#uncommitted)
    this.#uncommitted = 0
  }

  /** Spools a recording unless it already is; throws SpoolFullError at `max` rows. */
  add (r: NewRecording, max: number): SpoolState & { created: boolean } {
    if (this.#depth + this.#uncommitted >= max) throw new SpoolFullError(max)
    const key = keyOf(r)
    const { changes } = this.#insert.run(key.serverId, key.clientId, key.fileKey, JSON.stringify(r), r.receivedAt, r.fileError)
    this.#uncommitted += changes
    return { created: changes === 1, ...this.state() }
  }

  /** Records what examining a spooled file found; 0 when the recording is not (or no longer) spooled. */
  setFileInfo (key: RecordingKey, info: FileInfo, checkedAt: number): number {
    const [size, mtime, error] = 'error' in info ? [null, null, info.error] : [info.size, info.mtime, null]
    return this.#setInfo.run(size, mtime, error, checkedAt, key.serverId, key.clientId, key.fileKey, checkedAt).changes
  }

  /** The oldest `limit` recordings, in the order they were spooled. */
  peek (limit: number): SpooledRecording[] {
    const rows = (this.#peek.all(limit) as Row[]).map((r) => ({
      seq: r.seq, recording: JSON.parse(r.recording) as NewRecording, size: r.size, mtime: r.mtime, fileError: r.file_error, checkedAt: r.checked_at
    }))
    // Another process sharing DATA_DIR may have drained it: trust what is there.
    if (rows.length === 0) {
      this.#depth = 0
      this.#uncommitted = 0
    }
    return rows
  }

  /** Deletes drained rows; returns each one's file information as it was at that moment. */
  remove (seqs: number[]): SpoolState & { removed: SpooledInfo[] } {
    const removed: SpooledInfo[] = []
    for (const seq of seqs) {
      const r = this.#get.get(seq) as Omit<Row, 'recording'> | undefined
      if (r === undefined) continue
      this.#delete.run(seq)
      removed.push({ seq, size: r.size, mtime: r.mtime, fileError: r.file_error, checkedAt: r.checked_at })
    }
    this.#uncommitted -= removed.length
    return { removed, ...this.state() }
  }

  /** Moves recordings PostgreSQL refused to the `rejected` table, with why. */
  reject (rows: Array<{ seq: number, reason: string }>, now: number): SpoolState {
    for (const r of rows) this.#reject.run(r.reason, now, r.seq)
    return this.remove(rows.map((r) => r.seq))
  }

  close (): void {
    this.db.close()
  }
}

/** The spool as the main thread sees it: calls go to its worker; its state is kept from every answer. */
export class Spool {
  readonly file: string
  readonly max: number
  #state: SpoolState
  readonly #worker: SqliteDatabase

  private constructor (worker: SqliteDatabase, info: SpoolState & { file: string }, max: number) {
    this.#worker = worker
    this.file = info.file
    this.#state = { depth: info.depth, oldestAt: info.oldestAt }
    this.max = max
  }

  /** Opens (creating if needed) `spool.db` in `opts.dir` here, at start, and reads its state; then the worker owns it. */
  static async open (opts: SpoolFileOptions & { max: number }): Promise<Spool> {
    const options = { dir: opts.dir, busyTimeoutMs: opts.busyTimeoutMs }
    const file = new SpoolFile(options)
    const info = file.info()
    file.close()
    return new Spool(new SqliteDatabase('spool', options), info, opts.max)
  }

  /** Recordings waiting, and the receipt time of the oldest, as of the last answer from the worker. */
  get state (): SpoolState {
    return this.#state
  }

  /** Durable (committed and fsync()ed) when it resolves; rejects with code SPOOL_FULL at `max`. */
  async add (r: NewRecording): Promise<boolean> {
    const s = await this.#worker.call<SpoolState & { created: boolean }>('add', r, this.max)
    this.#state = { depth: s.depth, oldestAt: s.oldestAt }
    return s.created
  }

  async setFileInfo (key: RecordingKey, info: FileInfo, checkedAt: number): Promise<boolean> {
    return await this.#worker.call<number>('setFileInfo', key, info, checkedAt) > 0
  }

  async peek (limit: number): Promise<SpooledRecording[]> {
    const rows = await this.#worker.call<SpooledRecording[]>('peek', limit)
    if (rows.length === 0) this.#state = { depth: 0, oldestAt: null }
    return rows
  }

  async remove (seqs: number[]): Promise<SpooledInfo[]> {
    const s = await this.#worker.call<SpoolState & { removed: SpooledInfo[] }>('remove', seqs)
    this.#state = { depth: s.depth, oldestAt: s.oldestAt }
    return s.removed
  }

  async reject (rows: Array<{ seq: number, reason: string }>, now: number): Promise<void> {
    const s = await this.#worker.call<SpoolState>('reject', rows, now)
    this.#state = { depth: s.depth, oldestAt: s.oldestAt }
  }

  /** Throws unless a write reaches the spool's file now. */
  async touch (now: number): Promise<void> {
    await this.#worker.call('touch', now)
  }

  async close (): Promise<void> {
    await this.#worker.close()
  }
}
