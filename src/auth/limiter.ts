import { LRUCache } from 'lru-cache'

/**
 * Counts failed publish/play authorisations per client IP in fixed windows. An IP past `max`
 * failures in its window is refused at once, without its credentials being checked, until the
 * window ends. Nobody is ever delayed: a refusal is as fast as an allow, and other IPs are not
 * affected. Memory is bounded: the least recently seen IPs are forgotten first.
 */
export class FailureLimiter {
  readonly #max: number
  readonly #windowMs: number
  readonly #now: () => number
  readonly #entries: LRUCache<string, { count: number, resetAt: number }>

  constructor (opts: { max: number, windowMs: number, now: () => number, maxIps?: number }) {
    this.#max = opts.max
    this.#windowMs = opts.windowMs
    this.#now = opts.now
    this.#entries = new LRUCache({ max: opts.maxIps ?? 10_000 })
  }

  /** Whether `ip` has used up its failures for the current window. */
  blocked (ip: string): boolean {
    const e = this.#entries.get(ip)
    return e !== undefined && e.resetAt > this.#now() && e.count >= this.#max
  }

  /** Counts a failure; returns true when this one used up the IP's allowance. */
  fail (ip: string): boolean {
    const now = this.#now()
    let e = this.#entries.get(ip)
    if (e === undefined || e.resetAt <= now) {
      e = { count: 0, resetAt: now + this.#windowMs }
      this.#entries.set(ip, e)
    }
    e.count++
    return e.count === this.#max
  }

  /** IPs tracked, for tests and diagnostics. */
  get size (): number {
    return this.#entries.size
  }
}
