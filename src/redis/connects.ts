import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'
import { MemoryPendingConnects, PENDING_CONNECT_TTL_MS, type PendingConnect, type PendingConnects } from '../publishers/connects.js'
import type { RedisLink } from './link.js'

/**
 * Clients between on_connect and on_play/on_publish/on_close, shared by the replicas: SRS's
 * on_connect of a client may reach one replica and its on_close another, and the deferred takeover
 * needs what the on_connect said.
 *
 *   {prefix}pending:SERVER:CLIENT   JSON   PX 60 s (a client is judged within a minute of its connect)
 *
 * add() is one SET; decide() one script (rewrite with decided, keeping the TTL); take() and
 * progressed() one GETDEL each.
 *
 * A client seen playing or publishing must never be taken for a refused publisher, and when that
 * cannot be told nobody is evicted: a take() that Redis cannot answer returns nothing (the local
 * twin is not trusted for it, since another replica may have seen the client play); a
 * progressed() that Redis cannot answer is remembered here, so that this replica never judges the
 * client, and its record is deleted when Redis returns.
 *
 * That memory is bounded in bytes (PLAYED_MAX_BYTES). When it overflows, the records of the
 * players it forgot stay in Redis with nothing saying they played: on the return, this replica
 * sets {prefix}pending:blind (PX 60 s, the records' own lifetime), and while it exists take()
 * returns nothing on every replica, so those records evict nobody.
 */

export interface RedisPendingConnectsOptions {
  link: RedisLink
  local?: PendingConnects
  ttlMs?: number
  /** Bytes the memory of players seen while Redis failed may hold (default PLAYED_MAX_BYTES). */
  playedMaxBytes?: number
}

/** Default bound of that memory: about 100,000 typical keys. */
export const PLAYED_MAX_BYTES = 16 * 1024 * 1024

/** KEYS: entry, blind marker. Takes the entry; nothing while the marker exists. */
const TAKE = `
local v = redis.call('getdel', KEYS[1])
if redis.call('exists', KEYS[2]) == 1 then return false end
return v
`

/** KEYS: entry. Marks it decided, keeping its expiry. */
const DECIDE = `
local v = redis.call('get', KEYS[1])
if not v then return 0 end
local p = cjson.decode(v)
p['decided'] = true
redis.call('set', KEYS[1], cjson.encode(p), 'KEEPTTL')
return 1
`

export class RedisPendingConnects implements PendingConnects {
  readonly #link: RedisLink
  readonly #local: PendingConnects
  readonly #ttlMs: number
  readonly #decide
  readonly #take
  /** Clients seen playing or publishing whose record Redis could not delete then. */
  readonly #played
  /** Players forgotten at the bound since start, and whether any since Redis last returned. */
  #playedDropped = 0
  #blind = false

  constructor (opts: RedisPendingConnectsOptions) {
    this.#link = opts.link
    this.#local = opts.local ?? new MemoryPendingConnects()
    this.#ttlMs = opts.ttlMs ?? PENDING_CONNECT_TTL_MS
    this.#decide = opts.link.script('pendingDecide', 1, DECIDE)
    this.#take = opts.link.script('pendingTake', 2, TAKE)
    const maxSize = opts.playedMaxBytes ?? PLAYED_MAX_BYTES
    this.#played = lazy(() => new LRUCache<string, true>({ maxSize, sizeCalculation: (_v, key) => 64 + key.length * 2, ttl: PENDING_CONNECT_TTL_MS }))
    // Records of clients seen playing while Redis failed: deleted once it answers again; if some
    // were forgotten, every record is untrusted for their lifetime.
    opts.link.onRecovered(async () => {
      if (this.#blind) {
        const r = await this.#link.call('pending.blind', async (redis) => await redis.set(this.#blindKey(), '1', 'PX', this.#ttlMs))
        this.#blind = !r.ok
      }
      const keys = [...this.#played().keys()]
      if (keys.length > 0) await this.#link.call('pending.progressed', async (redis) => await redis.del(...keys))
    })
  }

  /**
   * Records dropped at the bounds: local pending connects, and players forgotten by the memory
   * above (those in Redis expire with their TTL).
   */
  get dropped (): number {
    return this.#local.dropped + this.#playedDropped
  }

  async add (p: PendingConnect): Promise<void> {
    await this.#local.add(p)
    await this.#link.call('pending.add', async (redis) => await redis.set(this.#key(p.server, p.clientId), JSON.stringify(p), 'PX', this.#ttlMs))
  }

  async decide (server: string, clientId: string): Promise<void> {
    await this.#local.decide(server, clientId)
    await this.#link.call('pending.decide', async (redis) => await this.#decide(redis, [this.#key(server, clientId)], []))
  }

  async take (server: string, clientId: string): Promise<PendingConnect | undefined> {
    const local = await this.#local.take(server, clientId)
    const played = this.#played().has(this.#key(server, clientId))
    const r = await this.#link.call('pending.take', async (redis) => await this.#take(redis, [this.#key(server, clientId), this.#blindKey()], []) as string | null)
    // Redis cannot say whether another replica saw it play: nobody is evicted.
    if (!r.ok || r.value === null || played) return undefined
    try {
      return JSON.parse(r.value) as PendingConnect
    } catch {
      return local
    }
  }

  async progressed (server: string, clientId: string): Promise<PendingConnect | undefined> {
    const local = await this.#local.take(server, clientId)
    const key = this.#key(server, clientId)
    const r = await this.#link.call('pending.progressed', async (redis) => await redis.getdel(key))
    if (!r.ok) {
      this.#remember(key)
      return local
    }
    if (r.value === null) return local
    try {
      return JSON.parse(r.value) as PendingConnect
    } catch {
      return local
    }
  }

  #key (server: string, clientId: string): string {
    return this.#link.key('pending', server, clientId)
  }

  /** Remembers a player whose record Redis could not delete; at the bound the oldest are forgotten. */
  #remember (key: string): void {
    const played = this.#played()
    const expected = played.size + (played.has(key) ? 0 : 1)
    played.set(key, true)
    const forgotten = expected - played.size
    if (forgotten > 0) {
      this.#playedDropped += forgotten
      this.#blind = true
    }
  }

  #blindKey (): string {
    return this.#link.key('pending', 'blind')
  }
}
