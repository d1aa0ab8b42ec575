import { MemoryFailureCounts, type FailureCounts } from '../auth/limiter.js'
import type { RedisLink } from './link.js'

/**
 * Failed authorisations per client IP shared by the replicas, so that the brute-force limit counts
 * every attempt whichever replica sees it.
 *
 *   {prefix}authfail:IP   integer  failures in the window, PX the window from the first failure
 *
 * add() is one script (INCR, and PEXPIRE on the first: a fixed window from the first failure, as
 * in process); get() is one GET. When Redis cannot answer, the local twin counts this replica's
 * failures only, so an IP may get more attempts than the limit while Redis is out, never fewer.
 * The window runs on Redis's clock.
 */

export interface RedisFailureCountsOptions {
  link: RedisLink
  /** The local twin; a MemoryFailureCounts on `now` unless given. */
  local?: FailureCounts
  now?: () => number
}

/** KEYS: count. ARGV: window ms. The count; the window starts with the first (or a count left without one). */
const ADD = `
local n = redis.call('incr', KEYS[1])
if n == 1 or redis.call('pttl', KEYS[1]) < 0 then redis.call('pexpire', KEYS[1], ARGV[1]) end
return n
`

/** KEYS: count. One count less, never below 0 nor for a window that ended. */
const REMOVE = `
if (tonumber(redis.call('get', KEYS[1]) or '0') > 0) then redis.call('decr', KEYS[1]) end
return 0
`

export class RedisFailureCounts implements FailureCounts {
  readonly #link: RedisLink
  readonly #local: FailureCounts
  readonly #add
  readonly #remove

  constructor (opts: RedisFailureCountsOptions) {
    this.#link = opts.link
    this.#local = opts.local ?? new MemoryFailureCounts({ now: opts.now ?? Date.now })
    this.#add = opts.link.script('authFailAdd', 1, ADD)
    this.#remove = opts.link.script('authFailRemove', 1, REMOVE)
  }

  async get (id: string): Promise<number> {
    const r = await this.#link.call('failures.get', async (redis) => Number(await redis.get(this.#key(id))))
    return r.ok ? r.value : await this.#local.get(id)
  }

  async add (id: string, windowMs: number): Promise<number> {
    const local = await this.#local.add(id, windowMs)
    const r = await this.#link.call('failures.add', async (redis) =>
      await this.#add(redis, [this.#key(id)], [Math.max(1, Math.ceil(windowMs))]) as number)
    return r.ok ? r.value : local
  }

  async remove (id: string): Promise<void> {
    await this.#local.remove(id)
    await this.#link.call('failures.remove', async (redis) => await this.#remove(redis, [this.#key(id)], []))
  }

  #key (id: string): string {
    return this.#link.key('authfail', id)
  }
}
