import { LRUCache } from 'lru-cache'
import type { Dispatcher } from 'undici'
import type { Log } from '../logger.js'
import { SrsMediaServer } from './adapter.js'
import { SrsApi, type SrsApiOptions, type SrsVersion } from './api.js'

/**
 * The SRS servers srs-hooks serves (SRS_API_URL, a comma-separated list). Each is known by the
 * server id its API reports (`server`, kept across restarts of SRS), which is also what its hooks
 * carry as `server_id`, so every hook is routed to the API of the SRS that sent it.
 */

/**
 * Where a takeover happens on a server: inside on_publish (SRS before 7.0.62), or inside
 * on_connect, where SRS >= 7.0.62 decides its publish token (docs/srs-protocol.md section 4b).
 * 'both' while the version is not known yet: each hook does what is safe on either.
 */
export type Strategy = 'publish' | 'connect' | 'both'

export type TakeoverAt = 'auto' | 'publish' | 'connect'

/** SRS >= 7.0.62 takes a per-stream publish token before on_publish (PR #4452). */
export function takesToken (v: Pick<SrsVersion, 'major' | 'minor' | 'revision'>): boolean {
  return v.major > 7 || (v.major === 7 && (v.minor > 0 || v.revision >= 62))
}

export interface SrsNode {
  /** SRS's API origin, without credentials. */
  url: string
  api: SrsApi
  server: SrsMediaServer
  /** What /api/v1/versions said last; undefined until it answered. */
  version: SrsVersion | undefined
  strategy: Strategy
}

export interface SrsServersOptions {
  apis: Array<{ url: string, auth?: { username: string, password: string } | undefined }>
  api: Omit<SrsApiOptions, 'url' | 'auth' | 'onChange' | 'dispatcher'>
  takeoverAt: TakeoverAt
  log: Log
  now: () => number
  /** Injected for tests: one dispatcher for every server (by default a Pool per server). */
  dispatcher?: Dispatcher | undefined
  /** How often an unknown server id may send us to ask every server who it is; default 5000 ms. */
  rediscoverMs?: number
  /** SRS's counter refresh interval (3 s in SRS); injected for tests of a faster simulator. */
  statsIntervalMs?: number | undefined
}

/** A hook from a server_id none of the servers has: after one rediscovery it is answered per FAIL_MODE. */
export const UNKNOWN = Symbol('unknown server')

export class SrsServers {
  readonly nodes: SrsNode[]
  readonly #opts: SrsServersOptions
  // Server ids come from hook bodies, which anyone who reaches the hook URL can forge: bounded.
  readonly #lastDiscovery = new LRUCache<string, number>({ max: 1000 })
  readonly #reported = new LRUCache<string, true>({ max: 1000 })
  #discovering: Promise<void> | undefined
  /** Hooks from server ids no server has (the most recent 1000 ids); for the logs. */
  readonly unknown = new LRUCache<string, number>({ max: 1000 })
  /** Hooks from server ids no server has, in all. */
  unknownHooks = 0

  constructor (opts: SrsServersOptions) {
    this.#opts = opts
    this.nodes = opts.apis.map(({ url, auth }) => {
      const node = { url } as SrsNode
      node.api = new SrsApi({
        ...opts.api,
        url,
        auth,
        dispatcher: opts.dispatcher,
        now: opts.now,
        onChange: (status, why) => {
          opts.log.info({ srsApi: url, server: status.server, service: status.service, why }, why === 'recovered' ? 'SRS\'s API answers again; reading its version' : 'SRS restarted or changed; reading its version')
          void this.discover(node)
        }
      })
      node.server = new SrsMediaServer(node.api, opts.now, opts.statsIntervalMs)
      node.version = undefined
      node.strategy = opts.takeoverAt === 'auto' ? 'both' : opts.takeoverAt
      return node
    })
  }

  /** How many servers there are. */
  get size (): number {
    return this.nodes.length
  }

  /** The server with this id, as the takeover core names servers. */
  get (id: string): SrsMediaServer | undefined {
    return this.nodes.find((n) => n.server.id === id)?.server
  }

  all (): SrsMediaServer[] {
    return this.nodes.map((n) => n.server)
  }

  /** The node a server id names (its API's id, or its API's URL before it answered). */
  node (id: string): SrsNode | undefined {
    return this.nodes.find((n) => n.server.id === id || n.url === id)
  }

  /**
   * Reads the version (and so the server id) of one server, or of all. Never throws: a server
   * that does not answer keeps what was known.
   */
  async discover (only?: SrsNode, deadline?: number): Promise<void> {
    const nodes = only === undefined ? this.nodes : [only]
    await Promise.all(nodes.map(async (n) => {
      try {
        const v = await n.api.versions({ deadline })
        const before = n.strategy
        n.version = v
        n.server.version = v
        if (this.#opts.takeoverAt === 'auto') n.strategy = takesToken(v) ? 'connect' : 'publish'
        if (n.strategy !== before) {
          this.#opts.log.info({ srsApi: n.url, server: n.server.id, version: v.version, strategy: n.strategy },
            n.strategy === 'connect' ? 'SRS takes a publish token before on_publish (>= 7.0.62): takeovers happen at on_connect' : 'takeovers happen inside on_publish')
        }
      } catch (err) {
        this.#opts.log.debug({ srsApi: n.url, err: (err as Error).message }, 'could not read SRS\'s version')
      }
    }))
  }

  /**
   * The server a hook came from, without waiting: by its `server_id`; a hook without one (SRS
   * before 4.0.151), or from the only server before its API ever answered, is the only server's.
   * An id no server has is UNKNOWN, and sends us to ask every server who it is in the background.
   * For the hooks that must not wait on SRS's API (players, releases).
   */
  lookup (serverId: string | undefined): SrsNode | typeof UNKNOWN {
    const only = this.nodes.length === 1 ? this.nodes[0]! : undefined
    if (serverId === undefined || serverId === '') return only ?? this.#unknown('(none)')
    const found = this.#find(serverId)
    if (found !== undefined) return found
    if (only !== undefined && only.api.status.server === undefined) {
      void this.#rediscover(serverId)
      return only
    }
    void this.#rediscover(serverId)
    return this.#unknown(serverId)
  }

  /**
   * The server a hook came from, by its `server_id`. A hook without one (SRS before 4.0.151) is
   * the only server's, when there is one. An id no server has sends us to ask every server who it
   * is (at most once per rediscovery interval per id), and waits for the answers up to
   * `deadline`; still unknown, it is UNKNOWN, logged once per id and counted.
   */
  async resolve (serverId: string | undefined, deadline: number): Promise<SrsNode | typeof UNKNOWN> {
    const only = this.nodes.length === 1 ? this.nodes[0]! : undefined
    if (serverId === undefined || serverId === '') return only ?? this.#unknown('(none)')
    const found = this.#find(serverId)
    if (found !== undefined) return found
    // One server that never answered yet: it is presumably the one (its API will tell soon).
    if (only !== undefined && only.api.status.server === undefined) {
      await this.#rediscover(serverId, deadline)
      return this.#find(serverId) ?? (only.api.status.server === undefined ? only : this.#unknown(serverId))
    }
    await this.#rediscover(serverId, deadline)
    return this.#find(serverId) ?? this.#unknown(serverId)
  }

  async close (): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => await n.api.close()))
  }

  #find (serverId: string): SrsNode | undefined {
    return this.nodes.find((n) => n.api.status.server === serverId)
  }

  async #rediscover (serverId: string, deadline?: number): Promise<void> {
    const now = this.#opts.now()
    const last = this.#lastDiscovery.get(serverId)
    if (last !== undefined && now - last < (this.#opts.rediscoverMs ?? 5000)) return
    this.#lastDiscovery.set(serverId, now)
    this.#discovering ??= this.discover(undefined, deadline).finally(() => { this.#discovering = undefined })
    await this.#discovering
  }

  #unknown (serverId: string): typeof UNKNOWN {
    this.unknownHooks++
    this.unknown.set(serverId, (this.unknown.get(serverId) ?? 0) + 1)
    if (!this.#reported.has(serverId)) {
      this.#reported.set(serverId, true)
      this.#opts.log.warn({ serverId, known: this.nodes.map((n) => ({ srsApi: n.url, server: n.api.status.server ?? null })) },
        'a hook came from an SRS none of SRS_API_URL is (its server_id matches no server\'s API): it is answered per FAIL_MODE and nobody is evicted on its behalf')
    }
    return UNKNOWN
  }
}
