import { MemoryPublisherStore, type Publisher, type PublisherStore } from '../publishers/store.js'
import { encodePart, exec, type RedisLink } from './link.js'

/**
 * The publisher table in Redis, shared by the replicas, with this replica's in-process table as
 * its twin. Writes go to both; reads come from Redis, or from the twin when Redis cannot answer
 * within its bound (down, hung, restarted). Nothing here ever throws or waits past REDIS_TIMEOUT_MS.
 *
 * Keys (S: the server id, F: the stream url, C: a client id, each encoded by encodePart):
 *
 *   {prefix}pub:S          hash  F -> "C <publisher as JSON>"   the table of server S
 *   {prefix}pub-client:S   hash  C -> F                         who publishes what on S (on_close)
 *   {prefix}pub-holders    hash  F -> "S1 S2 ..."               servers with an entry for F (holders())
 *   {prefix}pub-servers    set   S                              servers with a table (list())
 *
 * Each write is one Lua script (one round trip, atomic): recording a publisher writes its entry,
 * both indexes and the TTLs at once; the deletes check the client inside the script, so a replica
 * can never remove an entry a newer publisher wrote meanwhile on another.
 *
 * Lifetime: an entry lives until its publisher's unpublish/close, or until reconciliation finds
 * SRS no longer has it. The keys of a server expire `ttlMs` after the last write to that server's
 * table or the last list() of it (reconciliation lists every interval), so the table of a server
 * nobody writes or reconciles any more (taken out of SRS_API_URL) goes by itself. The twin is
 * bounded by its LRU as before.
 */

export interface RedisPublisherStoreOptions {
  link: RedisLink
  /** The local twin; a MemoryPublisherStore of `localMax` entries unless given. */
  local?: PublisherStore
  /** Bound of the default twin (MAX_PUBLISHERS). */
  localMax?: number
  /** How long a server's table outlives its last write or listing. */
  ttlMs?: number
  /** Entries fetched per HSCAN round trip by list(). */
  scanCount?: number
}

export const TABLE_TTL_MS = 24 * 3_600_000

/** Helpers shared by the scripts: an entry's client, and taking a server off a stream's holders. */
const LUA_HELPERS = `
local function client_of (v) return string.sub(v, 1, string.find(v, ' ', 1, true) - 1) end
local function unhold (holders, f, s)
  local h = redis.call('hget', holders, f)
  if not h then return end
  local keep = {}
  for x in string.gmatch(h, '%S+') do if x ~= s then keep[#keep + 1] = x end end
  if #keep == 0 then redis.call('hdel', holders, f) else redis.call('hset', holders, f, table.concat(keep, ' ')) end
end
`

/** KEYS: pub:S, pub-client:S, pub-holders, pub-servers. ARGV: F, C, value, S, ttl. */
const SET = LUA_HELPERS + `
local old = redis.call('hget', KEYS[1], ARGV[1])
if old then
  local oc = client_of(old)
  if oc ~= ARGV[2] and redis.call('hget', KEYS[2], oc) == ARGV[1] then redis.call('hdel', KEYS[2], oc) end
end
redis.call('hset', KEYS[1], ARGV[1], ARGV[3])
redis.call('hset', KEYS[2], ARGV[2], ARGV[1])
local h = redis.call('hget', KEYS[3], ARGV[1])
if not h then
  redis.call('hset', KEYS[3], ARGV[1], ARGV[4])
elseif not string.find(' ' .. h .. ' ', ' ' .. ARGV[4] .. ' ', 1, true) then
  redis.call('hset', KEYS[3], ARGV[1], h .. ' ' .. ARGV[4])
end
redis.call('sadd', KEYS[4], ARGV[4])
for i = 1, 4 do redis.call('pexpire', KEYS[i], ARGV[5]) end
return 1
`

/** KEYS: pub:S, pub-client:S, pub-holders. ARGV: F, C, S. */
const DELETE_IF_CLIENT = LUA_HELPERS + `
local v = redis.call('hget', KEYS[1], ARGV[1])
if not v or client_of(v) ~= ARGV[2] then return 0 end
redis.call('hdel', KEYS[1], ARGV[1])
if redis.call('hget', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('hdel', KEYS[2], ARGV[2]) end
unhold(KEYS[3], ARGV[1], ARGV[3])
return 1
`

/** KEYS: pub:S, pub-client:S, pub-holders. ARGV: C, S. Returns the removed value, or false. */
const DELETE_BY_CLIENT = LUA_HELPERS + `
local f = redis.call('hget', KEYS[2], ARGV[1])
if not f then return false end
redis.call('hdel', KEYS[2], ARGV[1])
local v = redis.call('hget', KEYS[1], f)
if not v or client_of(v) ~= ARGV[1] then return false end
redis.call('hdel', KEYS[1], f)
unhold(KEYS[3], f, ARGV[2])
return v
`

/** KEYS: pub:S, pub-client:S, pub-holders. ARGV: F, S. */
const DELETE = LUA_HELPERS + `
local v = redis.call('hget', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('hdel', KEYS[1], ARGV[1])
local c = client_of(v)
if redis.call('hget', KEYS[2], c) == ARGV[1] then redis.call('hdel', KEYS[2], c) end
unhold(KEYS[3], ARGV[1], ARGV[2])
return 1
`

/**
 * KEYS: pub-holders. ARGV: F, the prefix of the servers' tables. The entries of F on every server;
 * servers whose table expired meanwhile are taken off F's holders.
 */
const HOLDERS = `
local h = redis.call('hget', KEYS[1], ARGV[1])
if not h then return {} end
local out, keep, n = {}, {}, 0
for s in string.gmatch(h, '%S+') do
  n = n + 1
  local v = redis.call('hget', ARGV[2] .. s, ARGV[1])
  if v then out[#out + 1] = v; keep[#keep + 1] = s end
end
if #keep == 0 then redis.call('hdel', KEYS[1], ARGV[1])
elseif #keep < n then redis.call('hset', KEYS[1], ARGV[1], table.concat(keep, ' ')) end
return out
`

/** KEYS: pub-servers. ARGV: the prefix of the servers' tables. */
const SIZE = `
local n = 0
for _, s in ipairs(redis.call('smembers', KEYS[1])) do n = n + redis.call('hlen', ARGV[1] .. s) end
return n
`

export class RedisPublisherStore implements PublisherStore {
  readonly #link: RedisLink
  readonly #local: PublisherStore
  readonly #ttlMs: number
  readonly #scanCount: number
  readonly #holdersKey: string
  readonly #serversKey: string
  readonly #tablePrefix: string
  readonly #clientsPrefix: string
  readonly #set
  readonly #deleteIfClient
  readonly #deleteByClient
  readonly #delete
  readonly #holders
  readonly #size

  constructor (opts: RedisPublisherStoreOptions) {
    const link = this.#link = opts.link
    this.#local = opts.local ?? new MemoryPublisherStore(opts.localMax ?? 200_000)
    this.#ttlMs = opts.ttlMs ?? TABLE_TTL_MS
    this.#scanCount = opts.scanCount ?? 1000
    this.#holdersKey = link.key('pub-holders')
    this.#serversKey = link.key('pub-servers')
    this.#tablePrefix = link.key('pub') + ':'
    this.#clientsPrefix = link.key('pub-client') + ':'
    this.#set = link.script('pubSet', 4, SET)
    this.#deleteIfClient = link.script('pubDeleteIfClient', 3, DELETE_IF_CLIENT)
    this.#deleteByClient = link.script('pubDeleteByClient', 3, DELETE_BY_CLIENT)
    this.#delete = link.script('pubDelete', 3, DELETE)
    this.#holders = link.script('pubHolders', 1, HOLDERS)
    this.#size = link.script('pubSize', 1, SIZE)
  }

  async get (server: string, key: string): Promise<Publisher | undefined> {
    const r = await this.#link.call('store.get', async (redis) => {
      const v = await redis.hget(this.#table(server), encodePart(key))
      return v === null ? undefined : parse(v)
    })
    return r.ok ? r.value : await this.#local.get(server, key)
  }

  async holders (key: string): Promise<Publisher[]> {
    const r = await this.#link.call('store.holders', async (redis) => {
      const values = await this.#holders(redis, [this.#holdersKey], [encodePart(key), this.#tablePrefix]) as string[]
      return values.map(parse)
    })
    return r.ok ? r.value : await this.#local.holders(key)
  }

  async set (publisher: Publisher): Promise<void> {
    await this.#local.set(publisher)
    await this.#link.call('store.set', async (redis) => await this.#set(redis, ...this.#setArgs(publisher)))
  }

  /**
   * set() of each: the twin first, then Redis, the set script of each publisher in pipelines of
   * `scanCount` (one round trip each, each bounded), in order.
   */
  async setMany (publishers: Publisher[]): Promise<void> {
    await this.#local.setMany(publishers)
    for (let i = 0; i < publishers.length; i += this.#scanCount) {
      const chunk = publishers.slice(i, i + this.#scanCount)
      await this.#link.call('store.set', async (redis) => {
        const batch = redis.pipeline()
        for (const p of chunk) void this.#set(batch as never, ...this.#setArgs(p))
        return await exec(batch)
      })
    }
  }

  #setArgs (publisher: Publisher): [string[], Array<string | number>] {
    const s = encodePart(publisher.server)
    const c = encodePart(publisher.clientId)
    return [
      [this.#table(publisher.server), this.#clients(publisher.server), this.#holdersKey, this.#serversKey],
      [encodePart(publisher.key), c, `${c} ${JSON.stringify(publisher)}`, s, this.#ttlMs]
    ]
  }

  async deleteIfClient (server: string, key: string, clientId: string): Promise<boolean> {
    const local = await this.#local.deleteIfClient(server, key, clientId)
    const r = await this.#link.call('store.deleteIfClient', async (redis) => await this.#deleteIfClient(redis,
      [this.#table(server), this.#clients(server), this.#holdersKey],
      [encodePart(key), encodePart(clientId), encodePart(server)]))
    return r.ok ? r.value === 1 : local
  }

  async deleteByClient (server: string, clientId: string): Promise<Publisher | undefined> {
    const local = await this.#local.deleteByClient(server, clientId)
    const r = await this.#link.call('store.deleteByClient', async (redis) => {
      const v = await this.#deleteByClient(redis,
        [this.#table(server), this.#clients(server), this.#holdersKey],
        [encodePart(clientId), encodePart(server)]) as string | null
      return v === null ? undefined : parse(v)
    })
    return r.ok ? r.value : local
  }

  async delete (server: string, key: string): Promise<boolean> {
    const local = await this.#local.delete(server, key)
    const r = await this.#link.call('store.delete', async (redis) => await this.#delete(redis,
      [this.#table(server), this.#clients(server), this.#holdersKey],
      [encodePart(key), encodePart(server)]))
    return r.ok ? r.value === 1 : local
  }

  /**
   * Every entry, or one server's, a chunk of `scanCount` per round trip (each bounded): with
   * 100,000 entries that is a hundred short commands, never one that blocks Redis. If any of them
   * fails, the twin's entries are listed instead. Refreshes the TTL of the tables it lists.
   */
  async list (server?: string): Promise<Publisher[]> {
    let servers: string[]
    if (server === undefined) {
      const r = await this.#link.call('store.list', async (redis) => {
        const [members] = await exec(redis.multi()
          .smembers(this.#serversKey)
          .pexpire(this.#serversKey, this.#ttlMs)
          .pexpire(this.#holdersKey, this.#ttlMs))
        return members as string[]
      })
      if (!r.ok) return await this.#local.list()
      servers = r.value
    } else {
      servers = [encodePart(server)]
    }
    const out: Publisher[] = []
    for (const s of servers) {
      const entries = await this.#scan(s)
      if (entries === undefined) return await this.#local.list(server)
      out.push(...entries)
    }
    return out
  }

  async size (): Promise<number> {
    const r = await this.#link.call('store.size', async (redis) => await this.#size(redis, [this.#serversKey], [this.#tablePrefix]) as number)
    return r.ok ? r.value : await this.#local.size()
  }

  /** The entries of server `s` (encoded), or undefined if Redis failed on the way. */
  async #scan (s: string): Promise<Publisher[] | undefined> {
    const table = this.#tablePrefix + s
    const clients = this.#clientsPrefix + s
    // HSCAN may return a field twice (while Redis rehashes the hash): keep one.
    const seen = new Map<string, Publisher>()
    let cursor = '0'
    let first = true
    do {
      const r = await this.#link.call('store.list', async (redis) => {
        let page: [string, string[]]
        if (first) {
          [page] = await exec(redis.multi()
            .hscan(table, cursor, 'COUNT', this.#scanCount)
            .pexpire(table, this.#ttlMs)
            .pexpire(clients, this.#ttlMs)) as [[string, string[]]]
        } else {
          page = await redis.hscan(table, cursor, 'COUNT', this.#scanCount)
        }
        const [next, flat] = page
        for (let i = 0; i < flat.length; i += 2) seen.set(flat[i]!, parse(flat[i + 1]!))
        return next
      })
      if (!r.ok) return undefined
      first = false
      cursor = r.value
    } while (cursor !== '0')
    return [...seen.values()]
  }

  #table (server: string): string {
    return this.#tablePrefix + encodePart(server)
  }

  #clients (server: string): string {
    return this.#clientsPrefix + encodePart(server)
  }
}

/** "C <json>" -> the publisher. Throws on a malformed value (the call then falls back). */
function parse (value: string): Publisher {
  const p: unknown = JSON.parse(value.slice(value.indexOf(' ') + 1))
  if (typeof p !== 'object' || p === null) throw new TypeError('a publisher entry in Redis is not an object')
  return p as Publisher
}
