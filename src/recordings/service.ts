import { stat as fsStat } from 'node:fs/promises'
import type { Log } from '../logger.js'
import {
  resolveRecordingPath, timestampOf,
  type DvrNotice, type FileInfo, type Recording, type RecordingPage, type RecordingQuery, type RecordingStore
} from './store.js'

export type { DvrNotice }

/** The only thing ever done with a reported path. Injected for tests. */
export type StatFn = (path: string) => Promise<{ size: number, mtimeMs: number, isFile: () => boolean }>

export interface RecordingServiceOptions {
  store: RecordingStore
  now: () => number
  log: Log
  minBytes: number
  statTimeoutMs: number
  stat?: StatFn
  /** stat() calls in flight at most; a hung mount can hold no more of libuv's threads. Default 2. */
  maxStats?: number
  /** Files waiting for a stat at most; beyond, a file is indexed without size. Default 1000. */
  maxQueued?: number
}

export interface RecordingCounters {
  stored: number
  duplicates: number
  failed: number
  statErrors: number
}

/**
 * Indexes on_dvr notices. The row is written synchronously (durable when index() returns); the
 * file's size and time are examined afterwards, off the reply's path: at most `maxStats` stat()
 * calls at once, each bounded by `statTimeoutMs`. A stat that outlives its bound keeps its slot
 * until it returns, so a hung mount slows indexing of sizes, never the hook or the event loop.
 */
export class RecordingService {
  readonly store: RecordingStore
  readonly minBytes: number
  readonly counters: RecordingCounters = { stored: 0, duplicates: 0, failed: 0, statErrors: 0 }
  readonly #now: () => number
  readonly #log: Log
  readonly #stat: StatFn
  readonly #timeoutMs: number
  readonly #maxStats: number
  readonly #maxQueued: number
  readonly #queue: Array<{ id: number, path: string }> = []
  readonly #idle = new Set<() => void>()
  #running = 0
  #closed = false

  constructor (opts: RecordingServiceOptions) {
    this.store = opts.store
    this.minBytes = opts.minBytes
    this.#now = opts.now
    this.#log = opts.log
    this.#stat = opts.stat ?? fsStat
    this.#timeoutMs = opts.statTimeoutMs
    this.#maxStats = opts.maxStats ?? 2
    this.#maxQueued = opts.maxQueued ?? 1000
  }

  /** Stores the recording (throws if the store fails) and queues the examination of its file. */
  index (n: DvrNotice): { recording: Recording, created: boolean } {
    const path = resolveRecordingPath(n.file, n.cwd)
    let result
    try {
      result = this.store.add({
        ...n,
        path,
        startedAt: n.startedAt ?? timestampOf(n.file),
        receivedAt: this.#now(),
        fileError: path === null ? 'relative path without an absolute cwd: not examined' : null
      })
    } catch (err) {
      this.counters.failed++
      throw err
    }
    if (!result.created) {
      this.counters.duplicates++
      return result
    }
    this.counters.stored++
    if (path !== null) {
      if (this.#queue.length >= this.#maxQueued) {
        this.#record(result.recording.id, { error: 'not examined: too many files waiting for stat()' })
      } else {
        this.#queue.push({ id: result.recording.id, path })
        this.#pump()
      }
    }
    return result
  }

  list (q: RecordingQuery): RecordingPage {
    return this.store.list(q)
  }

  /** Whether a recording of this size is below DVR_MIN_BYTES; null when the size is unknown. */
  tiny (r: Recording): boolean | null {
    return r.size === null ? null : r.size < this.minBytes
  }

  /** Resolves when no stat() is queued or running (bounded by the stat timeout per file). */
  async idle (): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return
    await new Promise<void>((resolve) => this.#idle.add(resolve))
  }

  /** Stops examining files; results that come later are dropped. Closes the store. */
  close (): void {
    this.#closed = true
    this.#queue.length = 0
    this.store.close()
  }

  #pump (): void {
    while (this.#running < this.#maxStats && this.#queue.length > 0) {
      const job = this.#queue.shift()!
      this.#running++
      void this.#examine(job.id, job.path).finally(() => {
        this.#running--
        this.#pump()
        if (this.#running === 0 && this.#queue.length === 0) {
          for (const wake of this.#idle) wake()
          this.#idle.clear()
        }
      })
    }
  }

  async #examine (id: number, path: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const stat = this.#stat(path).then(
      (s): FileInfo => s.isFile() ? { size: s.size, mtime: Math.round(s.mtimeMs) } : { error: 'not a regular file' },
      (err: NodeJS.ErrnoException): FileInfo => ({ error: `cannot stat: ${err.code ?? err.message}` })
    )
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), this.#timeoutMs) })
    const first = await Promise.race([stat, timeout])
    clearTimeout(timer)
    if (first === 'timeout') {
      this.#record(id, { error: `stat() did not answer within ${this.#timeoutMs} ms` })
      // Keep the slot until the stat returns; record the size if it ever comes.
      const late = await stat
      if (!('error' in late)) this.#record(id, late)
      return
    }
    this.#record(id, first)
  }

  #record (id: number, info: FileInfo): void {
    if (this.#closed) return
    if ('error' in info) this.counters.statErrors++
    try {
      this.store.setFileInfo(id, info, this.#now())
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, recording: id }, 'could not record what stat() found')
    }
  }
}
