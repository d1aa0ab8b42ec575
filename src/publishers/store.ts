import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'

/**
 * The publisher table: who publishes which stream on which media server, as far as we know. It is
 * a cache of the servers' truth, kept by the hooks and corrected by reconciliation; takeover
 * decisions are checked against the server's API.
 *
 * The interface is asynchronous so that a shared store (Redis) can replace the in-process one
 * without touching the routes or the takeover logic.
 */

export type PublisherState =
  /** the publish hook was allowed; the server's own busy check may still refuse it. */
  | 'publishing'
  /** seen actively published in the server's API by reconciliation. */
  | 'confirmed'

export interface Publisher {
  /** The media server's id (SRS's `server`, ZLMediaKit's `mediaServerId`). */
  server: string
  /** The stream's url on that server: `[vhost]/app/stream` (SRS's stream_url). */
  key: string
  vhost: string
  app: string
  stream: string
  /** The publishing client's (session's) id on that server. */
  clientId: string
  /** The server's own id for the stream, when it has one (SRS's stream id). */
  streamId?: string | undefined
  ip?: string | undefined
  /** Epoch ms when this client became the publisher (when we learnt of it). */
  since: number
  state: PublisherState
  /** Takeovers on this stream since the entry was created (carried across replacements). */
  takeovers: number
}

export interface PublisherStore {
  get: (server: string, key: string) => Promise<Publisher | undefined>
  /** The entries for stream `key` on every server (the same stream pushed to several origins). */
  holders: (key: string) => Promise<Publisher[]>
  set: (publisher: Publisher) => Promise<void>
  /** set() of each, in order, in as few writes as the store can (reconciliation writes thousands at once). */
  setMany: (publishers: Publisher[]) => Promise<void>
  /** Removes the entry for `key` on `server` only if `clientId` is its publisher; true if removed. */
  deleteIfClient: (server: string, key: string, clientId: string) => Promise<boolean>
  /** Removes whatever entry `clientId` publishes on `server` (on_close carries no stream); returns it. */
  deleteByClient: (server: string, clientId: string) => Promise<Publisher | undefined>
  delete: (server: string, key: string) => Promise<boolean>
  /** Every entry, or those of one server. */
  list: (server?: string) => Promise<Publisher[]>
  size: () => Promise<number>
}

const join = (server: string, id: string): string => `${server}\n${id}`

/** MAX_PUBLISHERS_BYTES' default: MAX_PUBLISHERS entries of usual names (about 700 bytes each), about 20,000 of the longest a hook may carry. */
export const PUBLISHERS_MAX_BYTES = 256 * 1024 * 1024

/**
 * What an entry costs, in bytes, at most: its strings (two bytes a character), held by the entry
 * and by the two indexes, and the objects around them.
 */
export function publisherBytes (p: Publisher): number {
  const chars = 3 * (p.key.length + p.server.length) + 2 * p.clientId.length + p.vhost.length + p.app.length + p.stream.length +
    (p.streamId?.length ?? 0) + (p.ip?.length ?? 0)
  return 2 * chars + 400
}

/**
 * In-process store, bounded by an LRU in entries and in bytes (a forged hook's names may be long),
 * so a flood of stream names cannot exhaust memory: the least recently used entries go first.
 */
export class MemoryPublisherStore implements PublisherStore {
  readonly #entries: () => LRUCache<string, Publisher>
  /** server + client id -> server + key */
  readonly #byClient = new Map<string, string>()
  /** key -> the server that has an entry for it, or the servers when several do (a Set only then) */
  readonly #byKey = new Map<string, string | Set<string>>()

  constructor (max: number, maxBytes = PUBLISHERS_MAX_BYTES) {
    this.#entries = lazy(() => new LRUCache({
      max,
      maxSize: maxBytes,
      sizeCalculation: publisherBytes,
      dispose: (value, id) => {
        const client = join(value.server, value.clientId)
        if (this.#byClient.get(client) === id) this.#byClient.delete(client)
        const servers = this.#byKey.get(value.key)
        if (servers === value.server) this.#byKey.delete(value.key)
        else if (typeof servers === 'object') {
          servers.delete(value.server)
          if (servers.size === 1) this.#byKey.set(value.key, servers.values().next().value!)
        }
      }
    }))
  }

  async get (server: string, key: string): Promise<Publisher | undefined> {
    return this.#entries().get(join(server, key))
  }

  async holders (key: string): Promise<Publisher[]> {
    const out: Publisher[] = []
    const servers = this.#byKey.get(key)
    for (const server of servers === undefined ? [] : typeof servers === 'string' ? [servers] : servers) {
      const p = this.#entries().peek(join(server, key))
      if (p !== undefined) out.push(p)
    }
    return out
  }

  async set (publisher: Publisher): Promise<void> {
    this.#set(publisher)
  }

  async setMany (publishers: Publisher[]): Promise<void> {
    for (const p of publishers) this.#set(p)
  }

  #set (publisher: Publisher): void {
    const id = join(publisher.server, publisher.key)
    // Replacing an entry disposes the old one first, so the indexes are written after.
    this.#entries().set(id, publisher)
    this.#byClient.set(join(publisher.server, publisher.clientId), id)
    const servers = this.#byKey.get(publisher.key)
    if (servers === undefined) this.#byKey.set(publisher.key, publisher.server)
    else if (typeof servers === 'string') {
      if (servers !== publisher.server) this.#byKey.set(publisher.key, new Set([servers, publisher.server]))
    } else servers.add(publisher.server)
  }

  async deleteIfClient (server: string, key: string, clientId: string): Promise<boolean> {
    const id = join(server, key)
    if (this.#entries().peek(id)?.clientId !== clientId) return false
    return this.#entries().delete(id)
  }

  async deleteByClient (server: string, clientId: string): Promise<Publisher | undefined> {
    const id = this.#byClient.get(join(server, clientId))
    if (id === undefined) return undefined
    const entry = this.#entries().peek(id)
    this.#entries().delete(id)
    return entry
  }

  async delete (server: string, key: string): Promise<boolean> {
    return this.#entries().delete(join(server, key))
  }

  async list (server?: string): Promise<Publisher[]> {
    const all = [...this.#entries().values()]
    return server === undefined ? all : all.filter((p) => p.server === server)
  }

  async size (): Promise<number> {
    return this.#entries().size
  }
}
