import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'

/**
 * Counts failed publish/play authorisations per client IP in fixed windows. An IP past `max`
 * failures in its window is refused at once, without its credentials being checked, until the
 * window ends. Nobody is ever delayed: a refusal is as fast as an allow, and other IPs are not
 * affected.
 */

/** Where the counts are kept: in process, or shared by the replicas. */
export interface FailureCounts {
  /** Failures counted for `id` in its current window (0 when none, or the window ended). */
  get: (id: string) => Promise<number>
  /** Counts one failure of `id`; its window of `windowMs` starts at its first. Returns the count. */
  add: (id: string, windowMs: number) => Promise<number>
  /** Takes back one count of `id` (an attempt counted before its check, which passed). */
  remove: (id: string) => Promise<void>
}

/** The in-process counts, bounded: the least recently seen IPs are forgotten first. */
export class MemoryFailureCounts implements FailureCounts {
  readonly #now: () => number
  readonly #entries: () => LRUCache<string, { count: number, resetAt: number }>

  constructor (opts: { now: () => number, maxIds?: number, maxBytes?: number }) {
    this.#now = opts.now
    // Counted by the IP's length (a hook's `ip` is at most 64 characters) and its counter.
    this.#entries = lazy(() => new LRUCache({ max: opts.maxIds ?? 10_000, maxSize: opts.maxBytes ?? 4 * 1024 * 1024, sizeCalculation: (_e: { count: number, resetAt: number }, id: string) => 2 * id.length + 150 }))
  }

  async get (id: string): Promise<number> {
    const e = this.#entries().get(id)
    return e !== undefined && e.resetAt > this.#now() ? e.count : 0
  }

  async add (id: string, windowMs: number): Promise<number> {
    const now = this.#now()
    let e = this.#entries().get(id)
    if (e === undefined || e.resetAt <= now) this.#entries().set(id, e = { count: 0, resetAt: now + windowMs })
    return ++e.count
  }

  async remove (id: string): Promise<void> {
    const e = this.#entries().get(id)
    if (e !== undefined && e.count > 0) e.count--
  }
}

export class FailureLimiter {
  readonly #max: number
  readonly #windowMs: number
  readonly #counts: FailureCounts

  constructor (opts: { max: number, windowMs: number, now: () => number, counts?: FailureCounts }) {
    this.#max = opts.max
    this.#windowMs = opts.windowMs
    this.#counts = opts.counts ?? new MemoryFailureCounts({ now: opts.now })
  }

  /** Whether `ip` has used up its failures for the current window. */
  async blocked (ip: string): Promise<boolean> {
    return await this.#counts.get(ip) >= this.#max
  }

  /** Failures counted for `ip` in its current window. */
  async failures (ip: string): Promise<number> {
    return await this.#counts.get(ip)
  }

  /**
   * Counts an attempt before its credentials are checked (one atomic increment), so that attempts
   * at the same moment cannot all pass: resolves with its number in the window. More than `max`:
   * refused unchecked. One that passes its check is taken back with forgive().
   */
  async attempt (ip: string): Promise<number> {
    return await this.#counts.add(ip, this.#windowMs)
  }

  /** Takes back an attempt counted by attempt() that was no failure. */
  async forgive (ip: string): Promise<void> {
    await this.#counts.remove(ip)
  }

  /** Whether an attempt numbered `n` by attempt() is past the allowance. */
  over (n: number): boolean {
    return n > this.#max
  }

  /** Counts a failure; returns true when this one used up the IP's allowance. */
  async fail (ip: string): Promise<boolean> {
    return await this.#counts.add(ip, this.#windowMs) === this.#max
  }
}
