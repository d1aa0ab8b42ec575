import type { Log } from '../logger.js'
import type { RecordingStore } from './store.js'

/**
 * RECORDINGS_RETENTION_DAYS: index rows received longer ago than that are deleted, every
 * RECORDINGS_RETENTION_SWEEP_MS (and once at start), in batches of `batch` rows so that no
 * statement holds the index (or, in SQLite, the write lock) for long. Recorded files are never
 * touched: only their rows in the index go.
 */

const DAY_MS = 86_400_000

export interface RetentionOptions {
  store: RecordingStore
  days: number
  everyMs: number
  now: () => number
  log: Log
  /** Rows per DELETE; default 1000. */
  batch?: number | undefined
}

export class Retention {
  /** Rows deleted since start. */
  deleted = 0
  /** Sweeps that failed (the store did not answer); the next period tries again. */
  failures = 0
  readonly #o: RetentionOptions
  readonly #batch: number
  #timer: NodeJS.Timeout | undefined
  #running: Promise<number> | null = null
  #stopped = false

  constructor (o: RetentionOptions) {
    this.#o = o
    this.#batch = o.batch ?? 1000
  }

  start (): void {
    void this.sweep()
    this.#timer = setInterval(() => { void this.sweep() }, this.#o.everyMs)
  }

  /**
   * Deletes what is older than the retention, batch after batch, until a batch comes back short.
   * Resolves how many rows went; a sweep already running is joined, not doubled.
   */
  async sweep (): Promise<number> {
    this.#running ??= this.#sweep().finally(() => { this.#running = null })
    return await this.#running
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await this.#running
  }

  async #sweep (): Promise<number> {
    const before = this.#o.now() - this.#o.days * DAY_MS
    let total = 0
    try {
      for (;;) {
        const n = await this.#o.store.prune(before, this.#batch)
        total += n
        this.deleted += n
        if (n < this.#batch || this.#stopped) break
        // Let hooks and other replicas' writes in between batches.
        await new Promise((resolve) => setImmediate(resolve))
      }
    } catch (err) {
      this.failures++
      this.#o.log.warn({ err: (err as Error).message, deleted: total }, 'retention: deleting old recordings failed; the next sweep tries again')
      return total
    }
    if (total > 0) this.#o.log.info({ deleted: total, before, days: this.#o.days }, 'retention: deleted index rows of old recordings (files untouched)')
    return total
  }
}
