import { MemoryFlapStore, type FlapStore } from '../publishers/flap.js'
import { exec, type RedisLink } from './link.js'

/**
 * The flap guard's history shared by the replicas, so that two encoders taking a stream from each
 * other through different replicas still trip it.
 *
 *   {prefix}flap:K        sorted set  takeover times (score: epoch ms), PX the window after the last
 *   {prefix}flap-cool:K   string      the cooldown's end (epoch ms), PX until then
 *
 * read() is one pipelined round trip (ZCOUNT, GET); record() and trip() are one script each. Reads
 * come from Redis; when it cannot answer, from the local twin, which knows this replica's
 * takeovers only (so a guard may trip later than it would with Redis, never wrongly earlier).
 * Restarted empty, Redis has forgotten every history and cooldown: guards start over.
 */

export interface RedisFlapStoreOptions {
  link: RedisLink
  /** The clock the guard's times come from, to turn a cooldown's end into a TTL. */
  now: () => number
  /** The local twin (a MemoryFlapStore unless given). */
  local?: FlapStore
}

/** KEYS: history. ARGV: forget up to (ms), at (ms), member, window ms. */
const RECORD = `
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
redis.call('zadd', KEYS[1], ARGV[2], ARGV[3])
redis.call('pexpire', KEYS[1], ARGV[4])
return 1
`

/** KEYS: history, cooldown. ARGV: until (ms), its TTL (ms). */
const TRIP = `
redis.call('del', KEYS[1])
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`

export class RedisFlapStore implements FlapStore {
  readonly #link: RedisLink
  readonly #now: () => number
  readonly #local: FlapStore
  readonly #record
  readonly #trip
  #seq = 0

  constructor (opts: RedisFlapStoreOptions) {
    this.#link = opts.link
    this.#now = opts.now
    this.#local = opts.local ?? new MemoryFlapStore()
    this.#record = opts.link.script('flapRecord', 1, RECORD)
    this.#trip = opts.link.script('flapTrip', 2, TRIP)
  }

  async read (key: string, since: number): Promise<{ recent: number, coolingUntil: number }> {
    const r = await this.#link.call('flap.read', async (redis) => {
      const [recent, until] = await exec(redis.pipeline()
        .zcount(this.#history(key), `(${since}`, '+inf')
        .get(this.#cooldown(key)))
      return { recent: recent as number, coolingUntil: until === null ? 0 : Number(until) }
    })
    return r.ok ? r.value : await this.#local.read(key, since)
  }

  async record (key: string, at: number, windowMs: number): Promise<void> {
    await this.#local.record(key, at, windowMs)
    // Two takeovers in the same millisecond on two replicas are two members.
    const member = `${at}:${this.#link.id}:${++this.#seq}`
    await this.#link.call('flap.record', async (redis) =>
      await this.#record(redis, [this.#history(key)], [at - windowMs, at, member, Math.max(1, Math.ceil(windowMs))]))
  }

  async trip (key: string, until: number): Promise<void> {
    await this.#local.trip(key, until)
    await this.#link.call('flap.trip', async (redis) =>
      await this.#trip(redis, [this.#history(key), this.#cooldown(key)], [until, Math.max(1, Math.ceil(until - this.#now()))]))
  }

  #history (key: string): string {
    return this.#link.key('flap', key)
  }

  #cooldown (key: string): string {
    return this.#link.key('flap-cool', key)
  }
}
