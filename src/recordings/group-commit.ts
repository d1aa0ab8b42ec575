import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type Database from 'better-sqlite3'

/**
 * SQLite off the event loop. better-sqlite3 is synchronous, and with `synchronous=FULL` every
 * commit waits for an fsync(): done on the thread that answers SRS's hooks, a burst of on_dvr would
 * hold up the on_unpublish a waiting takeover needs. So the SQLite files (the index, the spool) are
 * owned by a worker thread (sqlite-worker.ts), and the main thread talks to it by messages.
 *
 * In the worker, calls are committed in groups: every call that arrived while the previous group
 * was committing runs in the next single transaction, one commit and one fsync for all of them.
 * A call is answered only after the commit of its group returned, so a write that is answered is
 * on disk; if the commit fails, every call of the group is answered with the error.
 */

/**
 * Opens (creating its directory) one of our SQLite files for durable writes: WAL, `synchronous=FULL`
 * (a commit returns once on disk), and `prepare` (its schema) run before anything else; a failure
 * closes it again.
 */
export function openDurable (dir: string, name: string, busyTimeoutMs: number, prepare: (db: Database.Database, file: string) => void): { db: Database.Database, file: string } {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, name)
  const db = new (sqlite())(file)
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    prepare(db, file)
  } catch (err) {
    db.close()
    throw err
  }
  return { db, file }
}

/**
 * better-sqlite3, loaded when a file is first opened: its compiled binding takes tens of ms to load,
 * and the thread that serves hooks never opens one in production (the worker does).
 */
function sqlite (): typeof Database {
  return load('better-sqlite3') as typeof Database
}
const load = createRequire(import.meta.url)

/** One operation a worker offers: `write` ones run inside the group's transaction. */
export interface Op {
  write: boolean
  run: (...args: any[]) => unknown
}
export type Ops = Record<string, Op>

export interface Call { id: number, op: string, args: unknown[] }
export type Reply = { id: number, value: unknown } | { id: number, error: { message: string, code?: string | undefined } }

/** Calls beyond this many wait for the next group, so one group's commit stays short. */
const MAX_GROUP = 1000

/** Groups run, commits made (a group of reads alone commits nothing), calls answered. */
export interface GroupStats { groups: number, commits: number, calls: number }

/**
 * Runs calls against one connection in groups; `send` gets each group's replies once committed.
 * Besides `ops`, it answers `stats` (its GroupStats).
 */
export class GroupCommit {
  readonly stats: GroupStats = { groups: 0, commits: 0, calls: 0 }
  readonly #db: Database.Database
  readonly #ops: Map<string, { write: boolean, run: (...args: unknown[]) => unknown }>
  readonly #send: (replies: Reply[]) => void
  readonly #settled: ((committed: boolean) => void) | undefined
  readonly #queue: Call[] = []
  #scheduled = false

  /** `settled` is told whether each group's writes were committed or rolled back, before its replies go out. */
  constructor (db: Database.Database, ops: Ops, send: (replies: Reply[]) => void, settled?: (committed: boolean) => void) {
    this.#db = db
    this.#send = send
    this.#settled = settled
    // Each call in its own savepoint (better-sqlite3 nests transactions so), so a call that
    // fails leaves nothing half-done in the group's transaction.
    this.#ops = new Map(Object.entries(ops).map(([name, op]) => [name, { write: op.write, run: op.write ? db.transaction(op.run) : op.run }]))
    this.#ops.set('stats', { write: false, run: () => ({ ...this.stats }) })
  }

  push (call: Call): void {
    this.#queue.push(call)
    if (this.#scheduled) return
    this.#scheduled = true
    // After the messages already delivered in this turn: they join the group.
    setImmediate(() => { this.flush() })
  }

  /** Runs everything queued, in groups, now (before the database is closed). */
  flushAll (): void {
    while (this.#queue.length > 0) this.flush()
  }

  /** Runs what is queued now (up to MAX_GROUP calls) as one group, and schedules the rest. */
  flush (): void {
    this.#scheduled = false
    const group = this.#queue.splice(0, MAX_GROUP)
    if (this.#queue.length > 0) {
      this.#scheduled = true
      setImmediate(() => { this.flush() })
    }
    if (group.length === 0) return
    this.stats.groups++
    this.stats.calls += group.length
    const writes = group.some((c) => this.#ops.get(c.op)?.write === true)
    try {
      if (writes) this.#db.exec('BEGIN IMMEDIATE')
    } catch (err) {
      this.#send(group.map((c) => failure(c.id, err)))
      return
    }
    const replies = group.map((c): Reply => {
      const op = this.#ops.get(c.op)
      if (op === undefined) return failure(c.id, new Error(`no operation ${c.op}`))
      try {
        return { id: c.id, value: op.run(...c.args) }
      } catch (err) {
        return failure(c.id, err)
      }
    })
    if (writes) {
      try {
        // SQLite may have rolled the transaction back itself (SQLITE_FULL, an I/O error): then
        // COMMIT throws, and nothing of the group is answered as stored.
        this.#db.exec('COMMIT')
        this.stats.commits++
      } catch (err) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK')
        this.#settled?.(false)
        this.#send(group.map((c) => failure(c.id, err)))
        return
      }
      this.#settled?.(true)
    }
    this.#send(replies)
  }
}

export function failure (id: number, err: unknown): Reply {
  const e = err as Error & { code?: unknown }
  return { id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } }
}

/** An error thrown in the worker, with SQLite's code (SQLITE_FULL...) when there was one. */
export class SqliteWorkerError extends Error {
  readonly code: string | undefined

  constructor (message: string, code?: string) {
    super(message)
    this.name = 'SqliteWorkerError'
    this.code = code
  }
}

/** Which database to open in the worker: the recordings index, the spool or the forwarding outbox (sqlite-worker.ts maps them). */
export type DatabaseKind = 'index' | 'spool' | 'outbox'

/** A message to the worker: open a database, or a call on (or the close of) an open one. */
export type HostCall =
  | { id: number, op: 'open', db: null, args: [kind: DatabaseKind, options: unknown] }
  | { id: number, op: string, db: number, args: unknown[] }

/**
 * The main thread's side: one worker thread per process hosts every SQLite database the process
 * opens (the index or the spool, and the forwarding outbox when FORWARD_URL is set), each with its own group
 * commit. Starting a thread costs more than a hook (over a second under the tests' TypeScript
 * loader), so it is started once and kept. It holds the process open only while a call waits for
 * its answer: an open database that is idle does not, so a process that forgot one still ends.
 */
/**
 * Starts sqlite-worker.cjs beside the build's bundle, or sqlite-worker.ts beside this file when the
 * tests run the TypeScript sources through tsx. Node 20's worker threads do not inherit the module
 * hooks that `--import=tsx` registers in the main thread (Node 22 and later do), so there the worker
 * first registers tsx's CommonJS hook, then requires its entry.
 */
function startWorker (self: string): Worker {
  const entry = join(dirname(self), `sqlite-worker${extname(self)}`)
  /* c8 ignore next */ // the build's path: test/build.test.ts runs the bundle, outside coverage
  if (extname(self) !== '.ts') return new Worker(entry)
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(entry)})`, { eval: true })
}

class SqliteHost {
  static #current: SqliteHost | null = null
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  #next = 0
  #dead: Error | null = null

  private constructor () {
    this.#worker = startWorker(fileURLToPath(import.meta.url))
    this.#worker.unref()
    this.#worker.on('message', (replies: Reply[]) => {
      for (const r of replies) {
        const p = this.#pending.get(r.id)!
        this.#pending.delete(r.id)
        if (this.#pending.size === 0) this.#worker.unref()
        if ('error' in r) p.reject(new SqliteWorkerError(r.error.message, r.error.code))
        else p.resolve(r.value)
      }
    })
    /* c8 ignore next 2 */ // the worker catches what its databases throw; this is for a crash
    this.#worker.on('error', (err) => { this.#fail(err) })
    this.#worker.once('exit', (code) => {
      process.off('beforeExit', this.#retire)
      this.#fail(new Error(`the SQLite worker exited (code ${code})`))
    })
    process.on('beforeExit', this.#retire)
  }

  /**
   * When the process has nothing left to do (no call waiting), the thread is ended cleanly
   * rather than cut off at exit: it leaves nothing behind, and a coverage run can record it.
   */
  readonly #retire = (): void => {
    this.#worker.ref()
    this.#worker.postMessage('exit')
  }

  get dead (): boolean {
    return this.#dead !== null
  }

  /** The process's host, started if there is none (or the last one died). */
  static get (): SqliteHost {
    if (SqliteHost.#current === null || SqliteHost.#current.#dead !== null) SqliteHost.#current = new SqliteHost()
    return SqliteHost.#current
  }

  /** Stops the worker (tests: what happens to open databases when it dies). */
  static async stop (): Promise<void> {
    const host = SqliteHost.#current
    if (host !== null) await host.#worker.terminate()
  }

  /** Ends the worker cleanly, as at the process's end (tests: before one is stopped). */
  static async retire (): Promise<void> {
    const host = SqliteHost.get()
    const exited = new Promise((resolve) => host.#worker.once('exit', resolve))
    host.#retire()
    await exited
  }

  async open (kind: DatabaseKind, options: unknown): Promise<{ db: number, info: unknown }> {
    return await this.send<{ db: number, info: unknown }>({ id: 0, op: 'open', db: null, args: [kind, options] })
  }

  async closeDb (db: number): Promise<void> {
    await this.send({ id: 0, op: 'close', db, args: [] })
  }

  async send<T> (call: HostCall): Promise<T> {
    // SqliteDatabase asks for a live host first; a message to an ended thread would never be answered.
    /* c8 ignore next */
    if (this.#dead !== null) throw this.#dead
    const id = this.#next++
    return await new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      if (this.#pending.size === 1) this.#worker.ref()
      this.#worker.postMessage({ ...call, id })
    })
  }

  #fail (err: Error): void {
    this.#dead ??= err
    for (const p of this.#pending.values()) p.reject(err)
    this.#pending.clear()
  }
}

/**
 * One SQLite database of the worker: its calls, answered once their group is committed. The
 * caller opened (and migrated) the file on its own thread at start, where blocking harms nothing
 * and errors stop the start; the worker is started, and the database opened in it, at the first
 * call. A process that never records (most tests, a CLI) never starts the thread. If the worker
 * dies, the calls it held fail (never answered as stored) and the next call opens the database in
 * a new one.
 */
export class SqliteDatabase {
  readonly #kind: DatabaseKind
  readonly #options: unknown
  /** The worker's host and this database's number in it, once asked for (set synchronously: calls at once share one open). */
  #opened: Promise<{ host: SqliteHost, db: number }> | null = null
  #host: SqliteHost | null = null
  #closed: Promise<void> | null = null

  constructor (kind: DatabaseKind, options: unknown) {
    this.#kind = kind
    this.#options = options
  }

  /** Stops the process's worker, as a crash would (for tests). */
  static async stopWorker (): Promise<void> {
    await SqliteHost.stop()
  }

  /** Ends the process's worker cleanly, as when the process ends (for tests). */
  static async retireWorker (): Promise<void> {
    await SqliteHost.retire()
  }

  async call<T> (op: string, ...args: unknown[]): Promise<T> {
    if (this.#closed !== null) throw new SqliteWorkerError('the SQLite database is closed')
    const { host, db } = await this.#open()
    return await host.send<T>({ id: 0, op, db, args })
  }

  /** Answers what is queued, then closes the database (if it was ever opened in the worker). */
  async close (): Promise<void> {
    this.#closed ??= (async () => {
      const opened = await this.#opened?.catch(() => null)
      if (opened !== undefined && opened !== null && !opened.host.dead) await opened.host.closeDb(opened.db).catch(() => {})
    })()
    await this.#closed
  }

  #open (): Promise<{ host: SqliteHost, db: number }> {
    if (this.#opened !== null && this.#host?.dead !== true) return this.#opened
    const host = this.#host = SqliteHost.get()
    const opened = this.#opened = host.open(this.#kind, this.#options).then(({ db }) => ({ host, db }))
    // A failed open is tried again at the next call.
    opened.catch(() => { if (this.#opened === opened) this.#opened = null })
    return opened
  }
}
