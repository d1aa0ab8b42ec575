import type { Log } from '../logger.js'
import { bounded, isDataError, isPermanent } from './database.js'
import type { PgRecordingStore } from './postgres.js'
import type { Spool, SpooledRecording } from './spool.js'
import {
  keyOf,
  type Added, type FileInfo, type NewRecording, type Readiness, type RecordingKey, type RecordingPage, type RecordingQuery,
  type RecordingStore, type SpoolStatus
} from './store.js'

/**
 * PostgreSQL behind a local spool: what runs when DATABASE_URL is set.
 *
 * - A recording goes to PostgreSQL when it answers within DATABASE_WRITE_TIMEOUT_MS. When it does
 *   not (down, hanging, failing over, read-only), the recording goes to the spool (SQLite in
 *   DATA_DIR, fsync()ed) and is acknowledged from there: either way it is stored when on_dvr is
 *   answered.
 * - While the spool holds anything, new recordings join its back instead of overtaking it, and it
 *   drains oldest first: PostgreSQL receives this replica's recordings in the order they arrived.
 *   A row drained twice (the process died between PostgreSQL's commit and the spool's delete, or
 *   a write that timed out did land) is one row: every write is keyed (server, client, file).
 * - The drain starts at open (a spool left by a process that died is drained when it starts
 *   again), after each spooled recording, and retries every SPOOL_RETRY_MS while PostgreSQL fails.
 * - The spool holds at most SPOOL_MAX_ROWS: past it, an on_dvr that cannot reach PostgreSQL is
 *   refused (HTTP 503, code 1101, SRS logs it): never acknowledged without being stored.
 */

export interface SpooledStoreOptions {
  writeTimeoutMs: number
  retryMs: number
  log: Log
  /** Rows per drained batch (one INSERT); default 500. */
  batch?: number | undefined
}

export interface SpoolCounters {
  /** Recordings written to the spool. */
  spooled: number
  /** Spooled recordings drained into PostgreSQL (new there, or already there). */
  drained: number
  /** Drain attempts that failed (PostgreSQL still out of reach). */
  drainFailures: number
  /** Spooled recordings PostgreSQL refused for what they hold, set aside in the spool's `rejected` table. */
  rejected: number
}

export class SpooledStore implements RecordingStore {
  readonly kind = 'postgres'
  readonly pg: PgRecordingStore
  readonly spoolFile: Spool
  readonly counters: SpoolCounters = { spooled: 0, drained: 0, drainFailures: 0, rejected: 0 }
  readonly #opts: SpooledStoreOptions
  readonly #log: Log
  readonly #batch: number
  /** Spool writes in flight: they count as "the spool holds something" until they land. */
  #spooling = 0
  #draining: Promise<void> | null = null
  #retry: NodeJS.Timeout | undefined
  #closed = false
  /** The last reason PostgreSQL could not be used (logged once); null once it worked again. */
  #lastError: string | null = null

  constructor (pg: PgRecordingStore, spool: Spool, opts: SpooledStoreOptions) {
    this.pg = pg
    this.spoolFile = spool
    this.#opts = opts
    this.#log = opts.log
    this.#batch = opts.batch ?? 500
  }

  /**
   * Migrates the schema (within `boundMs`) and starts draining what a previous run left. A
   * permanent failure (credentials, no such database, a newer schema) rejects; anything else is
   * logged and retried by the drain, with recordings spooled meanwhile.
   */
  async start (boundMs: number): Promise<void> {
    try {
      await bounded(this.pg.migrate(), boundMs, 'migrating the schema')
    } catch (err) {
      if (isPermanent(err)) throw err
      this.#failed(err, 'PostgreSQL is out of reach at start; recordings go to the spool until it answers')
    }
    if (this.spoolFile.state.depth > 0) this.#log.info({ spooled: this.spoolFile.state.depth }, 'draining the spool a previous run left')
    this.drain()
  }

  async add (r: NewRecording): Promise<Added> {
    if (this.pg.migrated && this.#spoolEmpty()) {
      try {
        const added = await this.pg.add(r)
        this.#lastError = null
        return added
      } catch (err) {
        // PostgreSQL refused the row itself: it would refuse it from the spool too. Not stored, said so.
        if (isDataError(err)) throw err
        this.#failed(err, 'PostgreSQL did not take a recording within its bound; spooling it')
      }
    }
    this.#spooling++
    let created
    try {
      created = await this.spoolFile.add(r)
    } finally {
      this.#spooling--
    }
    if (created) this.counters.spooled++
    this.drain()
    return { id: null, created, spooled: true }
  }

  /**
   * To the spool's row while the recording waits there, else to PostgreSQL. A row being drained
   * right now is caught by the drain (remove() hands back what the row held when it left).
   */
  async setFileInfo (key: RecordingKey, info: FileInfo, checkedAt: number): Promise<void> {
    if (this.spoolFile.state.depth > 0 || this.#spooling > 0) {
      if (await this.spoolFile.setFileInfo(key, info, checkedAt)) return
    }
    await this.pg.setFileInfo(key, info, checkedAt)
  }

  async list (q: RecordingQuery): Promise<RecordingPage> {
    const page = await this.pg.list(q)
    return { ...page, spooled: this.spoolFile.state.depth }
  }

  async count (): Promise<number> {
    return await this.pg.count()
  }

  /**
   * Ready when PostgreSQL takes a write, or when it does not but the spool does and has room:
   * on_dvr is still acknowledged and stored. `msg` then says so; metrics carry the spool's depth
   * and age for alerting.
   */
  async readiness (now: number): Promise<Readiness> {
    const db = await this.pg.readiness(now)
    if (db.ok) return db
    const s = this.spoolFile.state
    if (s.depth >= this.spoolFile.max) return { ok: false, msg: `${db.msg}; the spool is full (SPOOL_MAX_ROWS=${this.spoolFile.max}): on_dvr is refused` }
    try {
      await this.spoolFile.touch(now)
    } catch (err) {
      return { ok: false, msg: `${db.msg}; the spool ${this.spoolFile.file} is not writable either: ${(err as Error).message}` }
    }
    return { ok: true, msg: `${db.msg}; recordings go to the spool (${s.depth} waiting)`, degraded: 'postgres' }
  }

  async prune (before: number, limit: number): Promise<number> {
    return await this.pg.prune(before, limit)
  }

  spool (): SpoolStatus {
    return { ...this.spoolFile.state, max: this.spoolFile.max }
  }

  /**
   * Starts draining (migrating first, if PostgreSQL was out of reach at start) unless a drain
   * runs already or waits to retry: a failure is retried after SPOOL_RETRY_MS, not at every
   * recording spooled meanwhile.
   */
  drain (): void {
    if (this.#draining !== null || this.#retry !== undefined || this.#closed) return
    if (this.pg.migrated && this.#spoolEmpty()) return
    this.#draining = this.#drainAll().finally(() => { this.#draining = null })
  }

  /** Resolves when no drain is running (for tests and close). */
  async drained (): Promise<void> {
    await this.#draining
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    await this.#draining
    await this.pg.close()
    await this.spoolFile.close()
  }

  async #drainAll (): Promise<void> {
    try {
      if (!this.pg.migrated) await this.pg.migrate()
      while (!this.#closed) {
        let rows = await this.spoolFile.peek(this.#batch)
        if (rows.length === 0) break
        let created
        try {
          created = await this.pg.insertMany(rows)
        } catch (err) {
          if (!isDataError(err)) throw err
          // A row PostgreSQL refuses must not hold up the others: one by one, and set it aside.
          ;({ rows, created } = await this.#oneByOne(rows))
        }
        const removed = await this.spoolFile.remove(rows.map((r) => r.seq))
        this.counters.drained += rows.length
        // File information recorded in the spool while the batch was on its way to PostgreSQL.
        const sent = new Map(rows.map((r) => [r.seq, r]))
        for (const now of removed) {
          const row = sent.get(now.seq)!
          if (now.checkedAt === row.checkedAt && now.size === row.size && now.mtime === row.mtime && now.fileError === row.fileError) continue
          await this.pg.setFileInfo(keyOf(row.recording), now.fileError !== null ? { error: now.fileError } : { size: now.size!, mtime: now.mtime! }, now.checkedAt!)
        }
        this.#lastError = null
        this.#log.info({ drained: rows.length, new: created, spooled: this.spoolFile.state.depth }, 'drained spooled recordings into PostgreSQL')
      }
    } catch (err) {
      this.counters.drainFailures++
      this.#failed(err, 'draining the spool failed; trying again later')
      if (!this.#closed) {
        this.#retry = setTimeout(() => {
          this.#retry = undefined
          this.drain()
        }, this.#opts.retryMs)
      }
    }
  }

  /** Inserts `rows` one at a time; those PostgreSQL refuses go to the spool's `rejected` table. */
  async #oneByOne (rows: SpooledRecording[]): Promise<{ rows: SpooledRecording[], created: number }> {
    const taken: SpooledRecording[] = []
    const refused: Array<{ seq: number, reason: string }> = []
    let created = 0
    for (const row of rows) {
      try {
        created += await this.pg.insertMany([row])
        taken.push(row)
      } catch (err) {
        if (!isDataError(err)) throw err
        refused.push({ seq: row.seq, reason: `${(err as { code: string }).code}: ${(err as Error).message}` })
        this.#log.error({ err: (err as Error).message, code: (err as { code: string }).code, file: row.recording.file, spool: this.spoolFile.file },
          'PostgreSQL refuses a spooled recording; it is kept in the spool\'s rejected table')
      }
    }
    await this.spoolFile.reject(refused, Date.now())
    this.counters.rejected += refused.length
    return { rows: taken, created }
  }

  #spoolEmpty (): boolean {
    return this.spoolFile.state.depth === 0 && this.#spooling === 0
  }

  /** Logs a failure once per reason (a down database would otherwise log every retry). */
  #failed (err: unknown, what: string): void {
    const reason = (err as Error).message
    if (reason === this.#lastError) return
    this.#lastError = reason
    this.#log.warn({ err: reason, code: (err as { code?: unknown }).code, database: this.pg.where, spooled: this.spoolFile.state.depth }, what)
  }
}
