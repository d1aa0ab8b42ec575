import { realpath as fsRealpath, stat as fsStat } from 'node:fs/promises'
import { posix } from 'node:path'
import type { Log } from '../logger.js'
import type { Retention } from './retention.js'
import {
  keyOf, resolveRecordingPath, timestampOf,
  type Added, type DvrNotice, type FileInfo, type Readiness, type Recording, type RecordingKey, type RecordingPage,
  type RecordingQuery, type RecordingStore, type SpoolStatus
} from './store.js'

export type { DvrNotice }

/** The only thing ever done with a reported path, once it is known to lie under RECORDINGS_ROOTS. Injected for tests. */
export type StatFn = (path: string) => Promise<{ size: number, mtimeMs: number, isFile: () => boolean }>
/** Where a path under a root really is (symbolic links followed). */
export type RealpathFn = (path: string) => Promise<string>

/** Whether `path` (absolute, normalized) is `root` or lies under it. */
export function isUnder (path: string, root: string): boolean {
  return path === root || path.startsWith(root === '/' ? '/' : root + '/')
}

export interface RecordingServiceOptions {
  store: RecordingStore
  now: () => number
  log: Log
  minBytes: number
  statTimeoutMs: number
  stat?: StatFn
  /** By default fs.promises.realpath (with an injected stat: the path as it is). */
  realpath?: RealpathFn
  /** RECORDINGS_ROOTS: only files under these folders are examined. */
  roots: string[]
  /** RECORDINGS_MAX_ROWS; unbounded by default. */
  maxRows?: number
  /** stat() calls in flight at most; a hung mount can hold no more of libuv's threads. Default 2. */
  maxStats?: number
  /** Files waiting for a stat at most; beyond, a file is indexed without size. Default 1000. */
  maxQueued?: number
}

/**
 * An on_dvr that cannot be indexed as sent (the route answers 400). No SRS sends one: names are
 * short and C strings hold no NUL; a forged hook might, and PostgreSQL could neither store a NUL
 * nor index names past its B-tree entry limit (about 2.7 KB).
 */
export class UnindexableRecordingError extends Error {
  readonly code = 'RECORDING_UNINDEXABLE'

  constructor (why: string) {
    super(`cannot be indexed: ${why}`)
    this.name = 'UnindexableRecordingError'
  }
}

/** Bytes (UTF-8) that vhost, app and stream may take together, and server and client ids together. */
export const MAX_NAMES_BYTES = 2000
export const MAX_IDS_BYTES = 1024

function checkIndexable (n: DvrNotice): void {
  const strings = [n.vhost, n.app, n.stream, n.streamUrl, n.clientId, n.serverId, n.streamId, n.cwd, n.file]
  if (strings.some((v) => v?.includes('\0') === true)) throw new UnindexableRecordingError('a field holds a NUL character')
  const bytes = (...v: Array<string | undefined>): number => v.reduce((sum, x) => sum + Buffer.byteLength(x ?? ''), 0)
  if (bytes(n.vhost, n.app, n.stream) > MAX_NAMES_BYTES) throw new UnindexableRecordingError(`vhost, app and stream take more than ${MAX_NAMES_BYTES} bytes together`)
  if (bytes(n.serverId, n.clientId) > MAX_IDS_BYTES) throw new UnindexableRecordingError(`server_id and client_id take more than ${MAX_IDS_BYTES} bytes together`)
}

/** Thrown by index() while the index holds RECORDINGS_MAX_ROWS rows. */
export class RecordingsFullError extends Error {
  readonly code = 'RECORDINGS_FULL'

  constructor (max: number) {
    super(`the recordings index holds RECORDINGS_MAX_ROWS=${max} rows; set RECORDINGS_RETENTION_DAYS or raise RECORDINGS_MAX_ROWS`)
    this.name = 'RecordingsFullError'
  }
}

/** How often, at most, a full index is logged. */
const FULL_LOG_MS = 60_000

export interface RecordingCounters {
  /** Stored in the index. */
  stored: number
  /** Stored in the spool (PostgreSQL out of reach), to be drained into the index. */
  spooled: number
  duplicates: number
  failed: number
  statErrors: number
}

/**
 * Indexes on_dvr notices. The row is stored durably before index() resolves (in the index, or in
 * the spool when PostgreSQL is out of reach); the file's size and time are examined afterwards,
 * off the reply's path: at most `maxStats` stat() calls at once, each bounded by `statTimeoutMs`.
 * A stat that outlives its bound keeps its slot until it returns, so a hung mount slows indexing
 * of sizes, never the hook or the event loop.
 */
export class RecordingService {
  readonly store: RecordingStore
  readonly minBytes: number
  readonly counters: RecordingCounters = { stored: 0, spooled: 0, duplicates: 0, failed: 0, statErrors: 0 }
  /** RECORDINGS_RETENTION_DAYS at work, when set. */
  retention: Retention | null = null
  readonly #now: () => number
  readonly #log: Log
  readonly #stat: StatFn
  readonly #realpath: RealpathFn
  readonly #roots: string[]
  readonly #maxRows: number
  /** Rows in the index as last counted (countRows) plus those added since; null until counted. */
  #rows: number | null = null
  #fullLoggedAt = -Infinity
  readonly #timeoutMs: number
  readonly #maxStats: number
  readonly #maxQueued: number
  readonly #queue: Array<{ key: RecordingKey, path: string }> = []
  readonly #idle = new Set<() => void>()
  #running = 0
  /** Writes of file information not under a running stat (a file refused a place in the queue). */
  #writing = 0
  #closed = false

  constructor (opts: RecordingServiceOptions) {
    this.store = opts.store
    this.minBytes = opts.minBytes
    this.#now = opts.now
    this.#log = opts.log
    this.#stat = opts.stat ?? fsStat
    // An injected stat is a pretend file system, with no links to follow.
    this.#realpath = opts.realpath ?? (opts.stat === undefined ? fsRealpath : async (p) => p)
    this.#roots = opts.roots
    this.#maxRows = opts.maxRows ?? Infinity
    this.#timeoutMs = opts.statTimeoutMs
    this.#maxStats = opts.maxStats ?? 2
    this.#maxQueued = opts.maxQueued ?? 1000
  }

  /**
   * Stores the recording (rejects if it cannot be stored; with UnindexableRecordingError, before
   * trying, if it never could be) and queues the examination of its file.
   */
  async index (n: DvrNotice): Promise<Added> {
    try {
      checkIndexable(n)
      if (this.#rows !== null && this.#rows >= this.#maxRows) throw new RecordingsFullError(this.#maxRows)
    } catch (err) {
      this.counters.failed++
      if (err instanceof RecordingsFullError && this.#now() - this.#fullLoggedAt >= FULL_LOG_MS) {
        this.#fullLoggedAt = this.#now()
        this.#log.warn({ rows: this.#rows, maxRows: this.#maxRows }, 'the recordings index is full: on_dvr refused until rows are deleted (RECORDINGS_RETENTION_DAYS) or RECORDINGS_MAX_ROWS is raised')
      }
      throw err
    }
    const resolved = resolveRecordingPath(n.file, n.cwd)
    // A path outside the operator's recording folders is never looked at: the recording is indexed, unexamined, with why.
    const outside = resolved !== null && !this.#roots.some((r) => isUnder(resolved, r))
    const path = outside ? null : resolved
    const fileError = resolved === null
      ? 'relative path without an absolute cwd: not examined'
      : outside ? 'outside RECORDINGS_ROOTS: not examined' : null
    if (outside) this.#log.warn({ file: n.file, cwd: n.cwd, roots: this.#roots }, 'on_dvr names a file outside RECORDINGS_ROOTS: indexed, not examined')
    const recording = {
      ...n,
      path,
      startedAt: n.startedAt ?? timestampOf(n.file),
      receivedAt: this.#now(),
      fileError
    }
    let result
    try {
      result = await this.store.add(recording)
    } catch (err) {
      this.counters.failed++
      throw err
    }
    if (!result.created) {
      this.counters.duplicates++
      return result
    }
    if (result.spooled) this.counters.spooled++
    else this.counters.stored++
    if (this.#rows !== null) this.#rows++
    if (path !== null) {
      const key = keyOf(recording)
      if (this.#queue.length >= this.#maxQueued) {
        this.#writing++
        void this.#record(key, { error: 'not examined: too many files waiting for stat()' }).finally(() => {
          this.#writing--
          this.#settled()
        })
      } else {
        this.#queue.push({ key, path })
        this.#pump()
      }
    }
    return result
  }

  async list (q: RecordingQuery): Promise<RecordingPage> {
    return await this.store.list(q)
  }

  async count (): Promise<number> {
    return await this.store.count()
  }

  /** Rows as last counted plus those added since (RECORDINGS_MAX_ROWS is checked against it); null before the first count. */
  get rows (): number | null {
    return this.#rows
  }

  /**
   * Counts the index's rows, off the hooks' path (at start, then now and then: retention and other
   * replicas change it). A count that fails leaves the last one.
   */
  async countRows (): Promise<void> {
    try {
      this.#rows = await this.store.count()
    } catch (err) {
      // The index being out of reach is said by /readyz and the on_dvr that fail; the last count stands.
      this.#log.debug({ err: (err as Error).message }, 'could not count the recordings index\'s rows')
    }
  }

  async readiness (): Promise<Readiness> {
    return await this.store.readiness(this.#now())
  }

  /** The spool's depth and oldest row, null without one (SQLite). */
  spool (): SpoolStatus | null {
    return this.store.spool()
  }

  /** How long the oldest spooled recording has waited, ms; null when nothing waits. */
  spoolAgeMs (): number | null {
    const oldest = this.store.spool()?.oldestAt ?? null
    return oldest === null ? null : Math.max(0, this.#now() - oldest)
  }

  /** Whether a recording of this size is below DVR_MIN_BYTES; null when the size is unknown. */
  tiny (r: Recording): boolean | null {
    return r.size === null ? null : r.size < this.minBytes
  }

  /** Resolves when no stat() is queued or running and its result is recorded (bounded by the stat timeout per file). */
  async idle (): Promise<void> {
    if (this.#isIdle()) return
    await new Promise<void>((resolve) => this.#idle.add(resolve))
  }

  /** Stops examining files; results that come later are dropped. Closes the store. */
  async close (): Promise<void> {
    this.#closed = true
    this.#queue.length = 0
    await this.store.close()
  }

  #pump (): void {
    while (this.#running < this.#maxStats && this.#queue.length > 0) {
      const job = this.#queue.shift()!
      this.#running++
      void this.#examine(job.key, job.path).finally(() => {
        this.#running--
        this.#pump()
        this.#settled()
      })
    }
  }

  #isIdle (): boolean {
    return this.#running === 0 && this.#queue.length === 0 && this.#writing === 0
  }

  #settled (): void {
    if (!this.#isIdle()) return
    for (const wake of this.#idle) wake()
    this.#idle.clear()
  }

  /**
   * The file's real place, stat()ed only if it is still under a root once its links are followed
   * (a link under a root to /etc/shadow is refused, and never stat()ed).
   */
  async #statUnderRoots (path: string): Promise<FileInfo> {
    const real = await this.#realpath(path)
    const roots = await Promise.all(this.#roots.map(async (r) => await this.#realpath(r).catch(() => r)))
    if (!roots.some((r) => isUnder(posix.normalize(real), r))) {
      this.#log.warn({ path, real }, 'a recorded file\'s links lead outside RECORDINGS_ROOTS: not examined')
      return { error: 'links outside RECORDINGS_ROOTS: not examined' }
    }
    const s = await this.#stat(real)
    return s.isFile() ? { size: s.size, mtime: Math.round(s.mtimeMs) } : { error: 'not a regular file' }
  }

  async #examine (key: RecordingKey, path: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const stat = this.#statUnderRoots(path).then(
      (info) => info,
      (err: NodeJS.ErrnoException): FileInfo => ({ error: `cannot stat: ${err.code ?? err.message}` })
    )
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), this.#timeoutMs) })
    const first = await Promise.race([stat, timeout])
    clearTimeout(timer)
    if (first === 'timeout') {
      await this.#record(key, { error: `stat() did not answer within ${this.#timeoutMs} ms` })
      // Keep the slot until the stat returns; record the size if it ever comes.
      const late = await stat
      if (!('error' in late)) await this.#record(key, late)
      return
    }
    await this.#record(key, first)
  }

  /** Never rejects: a failure to record a file's size is logged (the recording itself is stored). */
  async #record (key: RecordingKey, info: FileInfo): Promise<void> {
    if (this.#closed) return
    if ('error' in info) this.counters.statErrors++
    try {
      await this.store.setFileInfo(key, info, this.#now())
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, file: key.fileKey }, 'could not record what stat() found')
    }
  }
}
