import pg from 'pg'
import type { Log } from '../logger.js'
import { bounded, quoteSchema, redactUrl } from '../recordings/database.js'
import { connection } from '../recordings/postgres.js'
import { noticeOf, Outbox, OutboxFullError, type ForwardOutbox, type NewNotice, type Notice, type OutboxCounts, type Row, type Waiting } from './outbox.js'

/**
 * The outbox replicas share, in PostgreSQL (DATABASE_URL): the table `forward_outbox` in
 * DATABASE_SCHEMA, one queue for every replica, delivered by PgDelivery (claims with a lease).
 *
 * When PostgreSQL does not take a notification within DATABASE_WRITE_TIMEOUT_MS (down, hanging,
 * failing over), the notification is written to the local SQLite outbox (`DATA_DIR/outbox.db`,
 * fsync()ed) and acknowledged from there: a spool. While the spool holds anything, new
 * notifications join its back (this replica's order is kept), and it is moved into PostgreSQL,
 * oldest first, once PostgreSQL answers (retried every SPOOL_RETRY_MS). A row moved twice (the
 * process died between PostgreSQL's commit and the spool's delete, or a write that timed out did
 * land) is one row: the Idempotency-Key is unique in the table.
 */

/** Rows moved from the spool into PostgreSQL per statement. */
const MOVE_BATCH = 200

/** The table, created under an advisory lock by whichever replica gets it first (IF NOT EXISTS: the others find it). */
const SCHEMA = (s: string): string => `
  CREATE TABLE IF NOT EXISTS ${s}.forward_outbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lane text NOT NULL,
    target text NOT NULL,
    action text NOT NULL,
    body text NOT NULL,
    idempotency_key text NOT NULL,
    replaced_by text,
    created_at bigint NOT NULL,
    since bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_at bigint NOT NULL,
    last_error text,
    dead_at bigint,
    claimed_by text,
    claimed_until bigint
  );
  CREATE UNIQUE INDEX IF NOT EXISTS forward_outbox_key ON ${s}.forward_outbox (idempotency_key);
  CREATE INDEX IF NOT EXISTS forward_outbox_lanes ON ${s}.forward_outbox (lane, seq) WHERE dead_at IS NULL;
  CREATE INDEX IF NOT EXISTS forward_outbox_dead ON ${s}.forward_outbox (seq) WHERE dead_at IS NOT NULL;
  CREATE TABLE IF NOT EXISTS ${s}.forward_meta (key text PRIMARY KEY, value text NOT NULL);`

/** PostgreSQL's text holds no NUL character (a hook's field may): replaced, the same way everywhere. */
const text = (v: string): string => v.replaceAll('\0', '\uFFFD')

const COLUMNS = 'lane, target, action, body, idempotency_key, replaced_by, created_at, since, next_at'

export interface PgOutboxOptions {
  url: string
  schema: string
  /** Bound on connecting, each statement, and reads. */
  queryTimeoutMs: number
  /** Bound on a notification's write; past it, the spool takes it. */
  writeTimeoutMs: number
  /** How long to wait before moving the spool again after PostgreSQL failed. */
  retryMs: number
  poolMax: number
  /** The spool's folder (DATA_DIR). */
  dir: string
  max: number
  log: Log
}

export class PgOutbox implements ForwardOutbox {
  readonly max: number
  readonly where: string
  readonly schema: string
  /** The local outbox that takes notifications while PostgreSQL does not. */
  readonly spool: Outbox
  readonly counters = { spooled: 0, moved: 0 }
  readonly #o: PgOutboxOptions
  readonly #pool: pg.Pool
  readonly #s: string
  /** PostgreSQL's counts, as last read (refresh()) and kept since by this replica's own writes. */
  #waiting = 0
  #dead = 0
  /** Infinity when none waits. */
  #oldest = Infinity
  /** What the spool holds, oldest first, and how many of it per lane. */
  #spooled: Waiting[] = []
  readonly #spooledLanes = new Map<string, number>()
  /** Spool writes in flight: they count as "the spool holds something" until they land. */
  #spooling = 0
  #migrated = false
  #moving: Promise<void> | null = null
  #retry: NodeJS.Timeout | undefined
  #closed = false
  /** Why PostgreSQL last failed (logged once per outage); null while it works. */
  #failure: string | null = null

  private constructor (opts: PgOutboxOptions, spool: Outbox) {
    this.#o = opts
    this.max = opts.max
    this.schema = opts.schema
    this.where = redactUrl(opts.url)
    this.spool = spool
    this.#s = quoteSchema(opts.schema)
    this.#pool = new pg.Pool({ ...connection(opts), max: opts.poolMax, idleTimeoutMillis: 30_000 })
    this.#pool.on('error', (err) => { opts.log.warn({ err: err.message, database: this.where }, 'an idle PostgreSQL connection of the forwarding queue broke; it will be replaced') })
  }

  /** Opens the spool (`outbox.db` in `dir`) here, at start; PostgreSQL is reached by start(). */
  static open (opts: PgOutboxOptions): PgOutbox {
    return new PgOutbox(opts, Outbox.open({ dir: opts.dir, max: opts.max }))
  }

  get counts (): OutboxCounts {
    return { rows: this.#waiting + this.#dead + this.#spooled.length, dead: this.#dead }
  }

  /** Notifications waiting, in PostgreSQL and in the spool. */
  get depth (): number {
    return this.#waiting + this.#spooled.length
  }

  /** When the oldest waiting notification was received (or retried); null when none waits. */
  get oldestSince (): number | null {
    const oldest = Math.min(this.#spooled[0]?.since ?? Infinity, this.#oldest)
    return oldest === Infinity ? null : oldest
  }

  /** Notifications in the spool, waiting for PostgreSQL. */
  get spooled (): number {
    return this.#spooled.length
  }

  /** Whether the spool holds notifications of `lane` (they reach PostgreSQL, and the platform, after it answers). */
  spooledIn (lane: string): boolean {
    return this.#spooledLanes.has(lane)
  }

  /** Reads what a previous run left in the spool, and moves it (creating the table first); within `boundMs`, then in the background. */
  async start (boundMs: number): Promise<void> {
    for (const w of await this.spool.waiting()) this.#spooledAdd(w)
    this.#move()
    await bounded(this.#moving!, boundMs, 'preparing the forwarding queue').catch(() => {})
  }

  /**
   * Creates the schema and the table once across replicas: one implicit transaction under a
   * transaction advisory lock. The schema is made only when missing (CREATE SCHEMA needs CREATE on
   * the database even with IF NOT EXISTS; a schema a DBA made is enough).
   */
  async migrate (): Promise<void> {
    // DATABASE_SCHEMA is a checked lower-case name: safe in a literal.
    await this.#query(`SELECT pg_advisory_xact_lock(hashtext('srs-hooks forward ${this.schema}'));
      DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '${this.schema}') THEN CREATE SCHEMA ${this.#s}; END IF;
      END $$;
      ${SCHEMA(this.#s)}`)
    this.#migrated = true
  }

  async add (n: NewNotice): Promise<number> {
    if (this.counts.rows >= this.max) throw new OutboxFullError(this.max)
    const deadline = performance.now() + this.#o.writeTimeoutMs
    // The queue still being prepared (a start, or PostgreSQL back): wait for it within the write's
    // bound, rather than spool a notification that would reach PostgreSQL after later ones that
    // other replicas queued meanwhile.
    if (!this.#migrated && this.#moving !== null) await bounded(this.#moving, this.#o.writeTimeoutMs, 'preparing the forwarding queue').catch(() => {})
    if (this.#migrated && this.#spooled.length === 0 && this.#spooling === 0) {
      const left = Math.max(1, Math.round(deadline - performance.now()))
      try {
        const res = await bounded(this.#query<{ seq: number }>(`INSERT INTO ${this.#s}.forward_outbox (${COLUMNS})
          VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) RETURNING seq`,
        [text(n.lane), n.target, n.action, text(n.body), n.key, n.replacedBy ?? null, n.at], left),
        left, 'queueing a notification')
        this.#waiting++
        this.#oldest = Math.min(this.#oldest, n.at)
        return res.rows[0]!.seq
      } catch (err) {
        this.#failed(err)
      }
    }
    return await this.#spool(n)
  }

  /**
   * Claims up to `limit` lane heads for `replica` until `now + leaseMs`: the oldest waiting row of
   * each lane, due, and not claimed by a replica whose lease runs. Locked rows are skipped: two
   * replicas claiming at once take different lanes.
   */
  async claim (replica: string, now: number, leaseMs: number, limit: number): Promise<Notice[]> {
    const s = this.#s
    const res = await this.#query<Row>(`UPDATE ${s}.forward_outbox o SET claimed_by = $1, claimed_until = $2::bigint + $3::bigint
      WHERE o.seq IN (
        SELECT h.seq FROM ${s}.forward_outbox h
        WHERE h.seq IN (SELECT min(seq) FROM ${s}.forward_outbox WHERE dead_at IS NULL GROUP BY lane)
          AND h.dead_at IS NULL AND h.next_at <= $2 AND (h.claimed_until IS NULL OR h.claimed_until <= $2)
        ORDER BY h.seq LIMIT $4 FOR UPDATE SKIP LOCKED)
      RETURNING o.*`, [replica, now, leaseMs, limit])
    return res.rows.map(noticeOf).sort((a, b) => a.seq - b.seq)
  }

  /** Delivered: the row leaves the queue (whoever holds its claim now). */
  async done (seq: number): Promise<void> {
    const res = await this.#query(`DELETE FROM ${this.#s}.forward_outbox WHERE seq = $1 AND dead_at IS NULL`, [seq], this.#o.writeTimeoutMs)
    this.#waiting = Math.max(0, this.#waiting - Number(res.rowCount))
  }

  /** Not delivered: tried again at `nextAt`, by any replica; the claim is released (only when still this replica's). */
  async failed (seq: number, replica: string, attempts: number, nextAt: number, error: string): Promise<void> {
    await this.#query(`UPDATE ${this.#s}.forward_outbox SET attempts = $3, next_at = $4, last_error = $5, claimed_by = NULL, claimed_until = NULL
      WHERE seq = $1 AND claimed_by = $2`, [seq, replica, attempts, nextAt, text(error)], this.#o.writeTimeoutMs)
  }

  /** Older than FORWARD_MAX_AGE: a dead letter. */
  async kill (seq: number, replica: string, at: number, error: string): Promise<void> {
    const res = await this.#query(`UPDATE ${this.#s}.forward_outbox SET dead_at = $3, last_error = $4, claimed_by = NULL, claimed_until = NULL
      WHERE seq = $1 AND claimed_by = $2 AND dead_at IS NULL`, [seq, replica, at, text(error)], this.#o.writeTimeoutMs)
    const n = Number(res.rowCount)
    this.#waiting = Math.max(0, this.#waiting - n)
    this.#dead += n
  }

  async dead (after: number, limit: number): Promise<Notice[]> {
    const res = await this.#query<Row>(`SELECT * FROM ${this.#s}.forward_outbox WHERE dead_at IS NOT NULL AND seq > $1 ORDER BY seq LIMIT $2`, [after, limit])
    return res.rows.map(noticeOf)
  }

  async revive (seqs: number[], now: number): Promise<Waiting[]> {
    const res = await this.#query<Waiting>(`UPDATE ${this.#s}.forward_outbox SET dead_at = NULL, attempts = 0, since = $2, next_at = $2, claimed_by = NULL, claimed_until = NULL
      WHERE seq = ANY($1::bigint[]) AND dead_at IS NOT NULL RETURNING seq, lane, since, attempts, next_at AS "nextAt"`, [seqs, now])
    this.#dead = Math.max(0, this.#dead - res.rows.length)
    this.#waiting += res.rows.length
    return res.rows
  }

  /** The newest waiting row of `lane` now (null when none waits). */
  async lastOf (lane: string): Promise<number | null> {
    const res = await this.#query<{ seq: number | null }>(`SELECT max(seq) AS seq FROM ${this.#s}.forward_outbox WHERE lane = $1 AND dead_at IS NULL`, [text(lane)])
    return res.rows[0]!.seq
  }

  /** Whether a row of `lane` up to `seq` still waits. */
  async waitsUpTo (lane: string, seq: number): Promise<boolean> {
    const res = await this.#query(`SELECT 1 FROM ${this.#s}.forward_outbox WHERE lane = $1 AND seq <= $2 AND dead_at IS NULL LIMIT 1`, [text(lane), seq])
    return res.rows.length > 0
  }

  /** Reads the queue's counts (every replica's rows). */
  async refresh (): Promise<void> {
    const res = await this.#query<{ waiting: number, dead: number, oldest: number | null }>(`SELECT count(*) FILTER (WHERE dead_at IS NULL) AS waiting,
      count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead, min(since) FILTER (WHERE dead_at IS NULL) AS oldest FROM ${this.#s}.forward_outbox`)
    const r = res.rows[0]!
    this.#waiting = r.waiting
    this.#dead = r.dead
    this.#oldest = r.oldest ?? Infinity
  }

  /** A committed write to PostgreSQL, or (while it fails) to the spool, which then takes notifications. */
  async touch (now: number): Promise<void> {
    await bounded(this.#query(`INSERT INTO ${this.#s}.forward_meta (key, value) VALUES ('ready_check', $1)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(now)], this.#o.writeTimeoutMs), this.#o.writeTimeoutMs, 'the readiness write')
      .catch(async () => { await this.spool.touch(now) })
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    await this.#moving
    await Promise.all([this.#pool.end(), this.spool.close()])
  }

  async #spool (n: NewNotice): Promise<number> {
    this.#spooling++
    try {
      const seq = await this.spool.add(n)
      this.#spooledAdd({ seq, lane: n.lane, since: n.at, attempts: 0, nextAt: n.at })
      this.counters.spooled++
      this.#move()
      return seq
    } finally {
      this.#spooling--
    }
  }

  #spooledAdd (w: Waiting): void {
    this.#spooled.push(w)
    this.#spooledLanes.set(w.lane, (this.#spooledLanes.get(w.lane) ?? 0) + 1)
  }

  #failed (err: unknown): void {
    const msg = (err as Error).message
    if (this.#failure === null) {
      this.#o.log.warn({ err: msg, database: this.where }, 'forwarding: PostgreSQL does not take notifications; they are kept in DATA_DIR/outbox.db and moved into PostgreSQL when it answers')
    }
    this.#failure = msg
  }

  /** Moves the spool into PostgreSQL unless a move runs or waits to retry. */
  #move (): void {
    if (this.#moving !== null || this.#retry !== undefined || this.#closed) return
    this.#moving = this.#moveAll().then(() => {
      if (this.#failure !== null) this.#o.log.info({ database: this.where, moved: this.counters.moved }, 'forwarding: PostgreSQL takes notifications again; the spool is moved into it')
      this.#failure = null
    }, (err: unknown) => {
      this.#failed(err)
      if (!this.#closed) this.#retry = setTimeout(() => { this.#retry = undefined; this.#move() }, this.#o.retryMs)
    }).finally(() => { this.#moving = null })
  }

  async #moveAll (): Promise<void> {
    if (!this.#migrated) await bounded(this.migrate(), this.#o.queryTimeoutMs, 'creating the forwarding queue')
    while (this.#spooled.length > 0 && !this.#closed) {
      const batch = this.#spooled.slice(0, MOVE_BATCH)
      const seqs = batch.map((w) => w.seq)
      const rows = await this.spool.get(seqs)
      const params: unknown[] = []
      const tuples = rows.map((r) => {
        params.push(text(r.lane), r.target, r.action, text(r.body), r.key, r.replacedBy, r.createdAt, r.since, r.since)
        const at = params.length - 9
        return `(${Array.from({ length: 9 }, (_, i) => `$${at + i + 1}`).join(', ')})`
      })
      let inserted = 0
      if (tuples.length > 0) {
        const res = await this.#query(`INSERT INTO ${this.#s}.forward_outbox (${COLUMNS}) VALUES ${tuples.join(', ')}
          ON CONFLICT (idempotency_key) DO NOTHING`, params)
        inserted = Number(res.rowCount)
      }
      await this.spool.done(seqs)
      this.#spooled.splice(0, batch.length)
      for (const w of batch) {
        const left = this.#spooledLanes.get(w.lane)! - 1
        if (left === 0) this.#spooledLanes.delete(w.lane)
        else this.#spooledLanes.set(w.lane, left)
      }
      this.#waiting += inserted
      this.counters.moved += batch.length
    }
  }

  async #query<R extends pg.QueryResultRow = pg.QueryResultRow> (sql: string, params: unknown[] = [], timeoutMs = this.#o.queryTimeoutMs): Promise<pg.QueryResult<R>> {
    return await this.#pool.query<R>({ text: sql, values: params, query_timeout: timeoutMs } as pg.QueryConfig)
  }
}
