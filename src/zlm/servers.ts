import { LRUCache } from 'lru-cache'
import type { Dispatcher } from 'undici'
import type { Log } from '../logger.js'
import type { ServerDirectory } from '../publishers/service.js'
import { ZlmMediaServer } from './adapter.js'
import { ZlmApi, type ZlmApiError } from './api.js'

/**
 * The ZLMediaKit servers srs-hooks serves (ZLM_API_URL, a comma-separated list). Each is known by
 * its `mediaServerId` (general.mediaServerId), which every hook body carries and which its API
 * reports in getServerConfig; hooks are routed to the API of the server that sent them.
 *
 * The API needs ZLMediaKit's api.secret. ZLM_SECRET gives it; unset, each server's secret is learnt
 * from its on_server_started (which carries every configuration key), once the API accepted it
 * and reported the same mediaServerId. A secret is never logged.
 */

/** ZLMediaKit's hook.timeoutSec default. */
export const DEFAULT_HOOK_TIMEOUT_S = 10

/** The part of a hook's bound kept for the reply to reach ZLMediaKit: a tenth, 100 ms to 1 s. */
export function hookBudgetOf (timeoutMs: number): number {
  return timeoutMs - Math.min(1000, Math.max(100, Math.round(timeoutMs / 10)))
}

export interface ZlmNode {
  /** The API's origin. */
  url: string
  api: ZlmApi
  server: ZlmMediaServer
  /** general.mediaServerId, once the API or an on_server_started said it. */
  mediaServerId: string | undefined
  /** hook.timeoutSec in ms, once known. */
  hookTimeoutMs: number | undefined
  /** The secret learnt from on_server_started (ZLM_SECRET unset); never logged. */
  learntSecret: string | undefined
}

export interface ZlmServersOptions {
  urls: string[]
  /** ZLM_SECRET; undefined: learnt per server. */
  secret: string | undefined
  timeoutMs: number
  retries: number
  log: Log
  now: () => number
  /** Injected for tests: one dispatcher for every server (by default a Pool per server). */
  dispatcher?: Dispatcher | undefined
  /** How often an unknown mediaServerId may send us to ask every server who it is; default 5000 ms. */
  rediscoverMs?: number
  statsIntervalMs?: number | undefined
}

/** A hook from a mediaServerId none of the servers has: after one rediscovery it is answered per FAIL_MODE. */
export const UNKNOWN = Symbol('unknown ZLMediaKit')

export class ZlmServers implements ServerDirectory {
  readonly nodes: ZlmNode[]
  /** Hooks from mediaServerIds no server has, in all. */
  unknownHooks = 0
  readonly #opts: ZlmServersOptions
  // mediaServerIds come from hook bodies, which anyone who reaches the hook URL can forge: bounded.
  readonly #lastDiscovery = new LRUCache<string, number>({ max: 1000 })
  readonly #reported = new LRUCache<string, true>({ max: 1000 })
  #discovering: Promise<void> | undefined

  constructor (opts: ZlmServersOptions) {
    this.#opts = opts
    this.nodes = opts.urls.map((url) => {
      const node = { url, mediaServerId: undefined, hookTimeoutMs: undefined, learntSecret: undefined } as ZlmNode
      node.api = new ZlmApi({
        url,
        secret: () => opts.secret ?? node.learntSecret,
        timeoutMs: opts.timeoutMs,
        retries: opts.retries,
        dispatcher: opts.dispatcher,
        now: opts.now
      })
      node.server = new ZlmMediaServer(node.api, {
        get id () { return node.mediaServerId ?? url },
        get hookBudgetMs () { return hookBudgetOf(node.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_S * 1000) }
      }, opts.now, opts.statsIntervalMs)
      return node
    })
  }

  get size (): number {
    return this.nodes.length
  }

  /** The server with this id (its mediaServerId, or its API's URL before it is known). */
  get (id: string): ZlmMediaServer | undefined {
    return this.node(id)?.server
  }

  all (): ZlmMediaServer[] {
    return this.nodes.map((n) => n.server)
  }

  /** The node an id names: its mediaServerId or its API's URL. */
  node (id: string): ZlmNode | undefined {
    return this.nodes.find((n) => n.server.id === id || n.url === id)
  }

  /**
   * Reads each server's configuration (mediaServerId, hook.timeoutSec), or one server's. Never
   * throws: a server that does not answer keeps what was known.
   */
  async discover (only?: ZlmNode, deadline?: number): Promise<void> {
    const nodes = only === undefined ? this.nodes : [only]
    await Promise.all(nodes.map(async (n) => {
      try {
        this.#learn(n, await n.api.serverConfig({ deadline }))
      } catch (err) {
        this.#opts.log.debug({ zlmApi: n.url, err: (err as Error).message }, 'could not read ZLMediaKit\'s configuration')
      }
    }))
  }

  /**
   * on_server_started: the server (re)started with this configuration. Its secret is adopted (when
   * ZLM_SECRET is unset) by the server whose API accepts it and reports the same mediaServerId.
   * Resolves with that server, or undefined when none is.
   */
  async started (mediaServerId: string, secret: string | undefined, deadline?: number): Promise<ZlmNode | undefined> {
    const log = this.#opts.log
    if (this.#opts.secret !== undefined || secret === undefined || secret === '') {
      if (this.#opts.secret !== undefined && secret !== undefined && secret !== this.#opts.secret) {
        log.warn({ mediaServerId }, 'ZLM_SECRET differs from the api.secret this ZLMediaKit reports in on_server_started: every API call to it will fail (-100); set ZLM_SECRET to its api.secret, or unset it to learn the secret')
      }
      const node = this.nodes.find((n) => n.mediaServerId === mediaServerId)
      if (node !== undefined) {
        await this.discover(node, deadline)
        return node
      }
      await this.#rediscover(mediaServerId, deadline)
      return this.#find(mediaServerId)
    }
    // Try the reported secret on the server with that id first, then on those whose id is unknown or another.
    const candidates = [...this.nodes].sort((a, b) => rank(a) - rank(b))
    function rank (n: ZlmNode): number {
      return n.mediaServerId === mediaServerId ? 0 : n.mediaServerId === undefined ? 1 : 2
    }
    for (const n of candidates) {
      let config
      try {
        config = await n.api.serverConfig({ deadline, secret })
      } catch (err) {
        log.debug({ zlmApi: n.url, kind: (err as ZlmApiError).kind }, 'the secret of on_server_started does not open this server\'s API')
        continue
      }
      if (config['general.mediaServerId'] !== mediaServerId) continue
      const learnt = n.learntSecret !== secret
      n.learntSecret = secret
      this.#learn(n, config)
      if (learnt) log.info({ zlmApi: n.url, mediaServerId }, 'learnt ZLMediaKit\'s API secret from its on_server_started (ZLM_SECRET is unset)')
      return n
    }
    log.warn({ mediaServerId, known: this.nodes.map((n) => ({ zlmApi: n.url, mediaServerId: n.mediaServerId ?? null })) },
      'on_server_started from a ZLMediaKit none of ZLM_API_URL answers to with that secret and id; its secret was not adopted')
    return undefined
  }

  /**
   * The server a hook came from, without waiting: by its mediaServerId; the only server while its
   * id is not known yet. An id no server has is UNKNOWN, and sends us to ask every server who it
   * is in the background.
   */
  lookup (mediaServerId: string): ZlmNode | typeof UNKNOWN {
    const found = this.#find(mediaServerId)
    if (found !== undefined) return found
    void this.#rediscover(mediaServerId)
    const only = this.nodes.length === 1 ? this.nodes[0]! : undefined
    if (only !== undefined && only.mediaServerId === undefined) return only
    return this.#unknown(mediaServerId)
  }

  /**
   * The server a hook came from, by its mediaServerId. An id no server has sends us to ask every
   * server who it is (at most once per rediscovery interval per id) and waits for the answers up to
   * `deadline`; still unknown, it is UNKNOWN, logged once per id and counted. The only server whose
   * id is still unknown (its API never answered) is presumed to be the one.
   */
  async resolve (mediaServerId: string, deadline: number): Promise<ZlmNode | typeof UNKNOWN> {
    const found = this.#find(mediaServerId)
    if (found !== undefined) return found
    await this.#rediscover(mediaServerId, deadline)
    const again = this.#find(mediaServerId)
    if (again !== undefined) return again
    const only = this.nodes.length === 1 ? this.nodes[0]! : undefined
    if (only !== undefined && only.mediaServerId === undefined) return only
    return this.#unknown(mediaServerId)
  }

  async close (): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => await n.api.close()))
  }

  #find (mediaServerId: string): ZlmNode | undefined {
    return this.nodes.find((n) => n.mediaServerId === mediaServerId)
  }

  #learn (n: ZlmNode, config: Record<string, string>): void {
    const id = config['general.mediaServerId']
    const timeout = Number(config['hook.timeoutSec'])
    if (Number.isFinite(timeout) && timeout > 0) n.hookTimeoutMs = timeout * 1000
    if (id === undefined || id === '' || id === n.mediaServerId) return
    this.#opts.log.info({ zlmApi: n.url, mediaServerId: id, before: n.mediaServerId ?? null, hookTimeoutMs: n.hookTimeoutMs ?? null }, 'ZLMediaKit\'s mediaServerId read from its API')
    n.mediaServerId = id
  }

  async #rediscover (mediaServerId: string, deadline?: number): Promise<void> {
    const now = this.#opts.now()
    const last = this.#lastDiscovery.get(mediaServerId)
    if (last !== undefined && now - last < (this.#opts.rediscoverMs ?? 5000)) return
    this.#lastDiscovery.set(mediaServerId, now)
    this.#discovering ??= this.discover(undefined, deadline).finally(() => { this.#discovering = undefined })
    await this.#discovering
  }

  #unknown (mediaServerId: string): typeof UNKNOWN {
    this.unknownHooks++
    if (!this.#reported.has(mediaServerId)) {
      this.#reported.set(mediaServerId, true)
      this.#opts.log.warn({ mediaServerId, known: this.nodes.map((n) => ({ zlmApi: n.url, mediaServerId: n.mediaServerId ?? null })) },
        'a hook came from a ZLMediaKit none of ZLM_API_URL is (its mediaServerId matches no server\'s): it is answered per FAIL_MODE and nobody is evicted on its behalf')
    }
    return UNKNOWN
  }
}
