import type Database from 'better-sqlite3'
import { openDurable, SqliteDatabase } from '../recordings/group-commit.js'
import type { Target } from './client.js'

/**
 * The outbox: notifications acknowledged to the media server and not yet delivered to the
 * platform, in SQLite (`DATA_DIR/outbox.db`, WAL, synchronous=FULL), owned by the same worker
 * thread as the recordings index and committed in groups (recordings/group-commit.ts): an add is
 * answered only once it is on disk, and the fsync never runs on the thread that answers hooks.
 *
 * Rows are kept in the order they were added (`seq`); a stream's notifications share a `lane`,
 * delivered one after the other in that order. A row that could not be delivered within
 * FORWARD_MAX_AGE stays in the file as a dead letter (`dead_at` set) until an operator retries it.
 * The file is bounded: `max` rows, waiting and dead together.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  lane TEXT NOT NULL,
  target TEXT NOT NULL,
  action TEXT NOT NULL,
  body TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  replaced_by TEXT,
  created_at INTEGER NOT NULL,
  since INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  last_error TEXT,
  dead_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (dead_at, seq) WHERE dead_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`
const OUTBOX_SCHEMA_VERSION = 1

/** A notification to add. */
export interface NewNotice {
  lane: string
  target: Target
  action: string
  body: string
  key: string
  replacedBy?: string | undefined
  at: number
}

/** What the delivery keeps in memory of a waiting notification. */
export interface Waiting {
  seq: number
  lane: string
  since: number
  attempts: number
  nextAt: number
}

/** A notification as delivered (or shown as a dead letter). */
export interface Notice extends Waiting {
  target: Target
  action: string
  body: string
  key: string
  replacedBy: string | null
  createdAt: number
  lastError: string | null
  deadAt: number | null
}

export interface OutboxCounts {
  /** Rows in the file, waiting and dead. */
  rows: number
  dead: number
}

/**
 * What the service, the operator API and /readyz use of an outbox: the SQLite file in DATA_DIR
 * (Outbox), or the queue replicas share in PostgreSQL (PgOutbox).
 */
export interface ForwardOutbox {
  readonly max: number
  /** Rows (waiting and dead) and dead letters, as last known. */
  readonly counts: OutboxCounts
  /** Durable when it resolves; rejects with code OUTBOX_FULL at `max` rows. */
  add: (n: NewNotice) => Promise<number>
  dead: (after: number, limit: number) => Promise<Notice[]>
  revive: (seqs: number[], now: number) => Promise<Waiting[]>
  /** Throws unless a write reaches the outbox now. */
  touch: (now: number) => Promise<void>
  close: () => Promise<void>
}

/** Thrown by add() when the outbox holds FORWARD_OUTBOX_MAX rows. */
export class OutboxFullError extends Error {
  readonly code = 'OUTBOX_FULL'

  constructor (max: number) {
    super(`the forwarding outbox is full (FORWARD_OUTBOX_MAX=${max})`)
    this.name = 'OutboxFullError'
  }
}

/** An outbox row as SQLite and PostgreSQL both return it (columns in snake case). */
export interface Row {
  seq: number
  lane: string
  target: Target
  action: string
  body: string
  idempotency_key: string
  replaced_by: string | null
  created_at: number
  since: number
  attempts: number
  next_at: number
  last_error: string | null
  dead_at: number | null
}

export const noticeOf = (r: Row): Notice => ({
  seq: r.seq,
  lane: r.lane,
  target: r.target,
  action: r.action,
  body: r.body,
  key: r.idempotency_key,
  replacedBy: r.replaced_by,
  createdAt: r.created_at,
  since: r.since,
  attempts: r.attempts,
  nextAt: r.next_at,
  lastError: r.last_error,
  deadAt: r.dead_at
})

export interface OutboxFileOptions {
  dir: string
  busyTimeoutMs?: number | undefined
}

/** The outbox file itself, synchronous: what the worker runs. */
export class OutboxFile {
  readonly file: string
  readonly db: Database.Database
  #rows: number
  #dead: number
  readonly #insert: Database.Statement
  readonly #waiting: Database.Statement
  readonly #get: Database.Statement
  readonly #delete: Database.Statement
  readonly #failed: Database.Statement
  readonly #kill: Database.Statement
  readonly #deadList: Database.Statement
  readonly #revive: Database.Statement
  readonly #touch: Database.Statement

  constructor (opts: OutboxFileOptions) {
    const opened = openDurable(opts.dir, 'outbox.db', opts.busyTimeoutMs ?? 1000, (db, file) => {
      const version = db.pragma('user_version', { simple: true }) as number
      if (version > OUTBOX_SCHEMA_VERSION) {
        throw new Error(`${file} has schema version ${version}, newer than this srs-hooks knows (${OUTBOX_SCHEMA_VERSION})`)
      }
      db.exec(SCHEMA)
      db.pragma(`user_version = ${OUTBOX_SCHEMA_VERSION}`)
    })
    this.db = opened.db
    this.file = opened.file
    this.#insert = this.db.prepare(`INSERT INTO outbox (lane, target, action, body, idempotency_key, replaced_by, created_at, since, next_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`).pluck()
    this.#waiting = this.db.prepare('SELECT seq, lane, since, attempts, next_at AS nextAt FROM outbox WHERE dead_at IS NULL ORDER BY seq')
    this.#get = this.db.prepare('SELECT * FROM outbox WHERE seq = ?')
    this.#delete = this.db.prepare('DELETE FROM outbox WHERE seq = ? AND dead_at IS NULL')
    this.#failed = this.db.prepare('UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE seq = ?')
    this.#kill = this.db.prepare('UPDATE outbox SET dead_at = ?, last_error = ? WHERE seq = ? AND dead_at IS NULL')
    this.#deadList = this.db.prepare('SELECT * FROM outbox WHERE dead_at IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?')
    this.#revive = this.db.prepare('UPDATE outbox SET dead_at = NULL, attempts = 0, since = ?, next_at = ? WHERE seq = ? AND dead_at IS NOT NULL RETURNING seq, lane, since, attempts, next_at AS nextAt')
    this.#touch = this.db.prepare("INSERT INTO meta (key, value) VALUES ('ready_check', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    this.#rows = this.db.prepare('SELECT count(*) FROM outbox').pluck().get() as number
    this.#dead = this.db.prepare('SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL').pluck().get() as number
  }

  readonly ops = {
    add: { write: true, run: (n: NewNotice, max: number) => this.add(n, max) },
    waiting: { write: false, run: () => this.waiting() },
    get: { write: false, run: (seqs: number[]) => this.get(seqs) },
    done: { write: true, run: (seqs: number[]) => this.done(seqs) },
    failed: { write: true, run: (seq: number, attempts: number, nextAt: number, error: string) => { this.#failed.run(attempts, nextAt, error, seq) } },
    kill: { write: true, run: (seq: number, at: number, error: string) => this.kill(seq, at, error) },
    dead: { write: false, run: (after: number, limit: number) => (this.#deadList.all(after, limit) as Row[]).map(noticeOf) },
    revive: { write: true, run: (seqs: number[], now: number) => this.revive(seqs, now) },
    touch: { write: true, run: (now: number) => { this.#touch.run(String(now)) } }
  }

  info (): OutboxCounts & { file: string } {
    return { file: this.file, ...this.counts() }
  }

  counts (): OutboxCounts {
    return { rows: this.#rows, dead: this.#dead }
  }

  add (n: NewNotice, max: number): OutboxCounts & { seq: number } {
    if (this.#rows >= max) throw new OutboxFullError(max)
    const seq = this.#insert.get(n.lane, n.target, n.action, n.body, n.key, n.replacedBy ?? null, n.at, n.at, n.at) as number
    this.#rows++
    return { seq, ...this.counts() }
  }

  waiting (): Waiting[] {
    return this.#waiting.all() as Waiting[]
  }

  get (seqs: number[]): Notice[] {
    const out: Notice[] = []
    for (const seq of seqs) {
      const r = this.#get.get(seq) as Row | undefined
      if (r !== undefined) out.push(noticeOf(r))
    }
    return out
  }

  done (seqs: number[]): OutboxCounts {
    for (const seq of seqs) this.#rows -= this.#delete.run(seq).changes
    return this.counts()
  }

  kill (seq: number, at: number, error: string): OutboxCounts {
    this.#dead += this.#kill.run(at, error, seq).changes
    return this.counts()
  }

  revive (seqs: number[], now: number): OutboxCounts & { revived: Waiting[] } {
    const revived: Waiting[] = []
    for (const seq of seqs) {
      const r = this.#revive.get(now, now, seq) as Waiting | undefined
      if (r !== undefined) revived.push(r)
    }
    this.#dead -= revived.length
    return { revived, ...this.counts() }
  }

  close (): void {
    this.db.close()
  }
}

/** The outbox as the main thread sees it: calls go to the worker; its counts are kept from every answer. */
export class Outbox implements ForwardOutbox {
  readonly file: string
  readonly max: number
  #counts: OutboxCounts
  readonly #worker: SqliteDatabase

  private constructor (worker: SqliteDatabase, info: OutboxCounts & { file: string }, max: number) {
    this.#worker = worker
    this.file = info.file
    this.#counts = { rows: info.rows, dead: info.dead }
    this.max = max
  }

  /** Opens (creating if needed) `outbox.db` in `opts.dir` here, at start, and reads its counts; then the worker owns it. */
  static open (opts: OutboxFileOptions & { max: number }): Outbox {
    const options = { dir: opts.dir, busyTimeoutMs: opts.busyTimeoutMs }
    const file = new OutboxFile(options)
    const info = file.info()
    file.close()
    return new Outbox(new SqliteDatabase('outbox', options), info, opts.max)
  }

  get counts (): OutboxCounts {
    return this.#counts
  }

  /** Durable (committed and fsync()ed) when it resolves; rejects with code OUTBOX_FULL at `max` rows. */
  async add (n: NewNotice): Promise<number> {
    const r = await this.#worker.call<OutboxCounts & { seq: number }>('add', n, this.max)
    this.#counts = { rows: r.rows, dead: r.dead }
    return r.seq
  }

  async waiting (): Promise<Waiting[]> {
    return await this.#worker.call<Waiting[]>('waiting')
  }

  async get (seqs: number[]): Promise<Notice[]> {
    return await this.#worker.call<Notice[]>('get', seqs)
  }

  async done (seqs: number[]): Promise<void> {
    this.#counts = await this.#worker.call<OutboxCounts>('done', seqs)
  }

  async failed (seq: number, attempts: number, nextAt: number, error: string): Promise<void> {
    await this.#worker.call('failed', seq, attempts, nextAt, error)
  }

  async kill (seq: number, at: number, error: string): Promise<void> {
    this.#counts = await this.#worker.call<OutboxCounts>('kill', seq, at, error)
  }

  async dead (after: number, limit: number): Promise<Notice[]> {
    return await this.#worker.call<Notice[]>('dead', after, limit)
  }

  async revive (seqs: number[], now: number): Promise<Waiting[]> {
    const r = await this.#worker.call<OutboxCounts & { revived: Waiting[] }>('revive', seqs, now)
    this.#counts = { rows: r.rows, dead: r.dead }
    return r.revived
  }

  /** Throws unless a write reaches the file now. */
  async touch (now: number): Promise<void> {
    await this.#worker.call('touch', now)
  }

  async close (): Promise<void> {
    await this.#worker.close()
  }
}
