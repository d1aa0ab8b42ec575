import { LRUCache } from 'lru-cache'

/**
 * The publisher table: who publishes which stream, as far as we know. It is a cache of SRS's truth,
 * kept by the hooks and corrected by reconciliation; takeover decisions are checked against SRS.
 *
 * The interface is asynchronous so that a shared store (Redis, SQL) can replace the in-process one
 * without touching the routes or the takeover logic.
 */

export type PublisherState =
  /** on_publish was allowed; SRS's own StreamBusy check may still refuse it. */
  | 'publishing'
  /** seen active in SRS's API by reconciliation. */
  | 'confirmed'

export interface Publisher {
  /** SRS's stream_url: `[vhost]/app/stream`. */
  key: string
  vhost: string
  app: string
  stream: string
  clientId: string
  serverId?: string | undefined
  streamId?: string | undefined
  ip?: string | undefined
  /** Epoch ms when this client became the publisher (when we learnt of it). */
  since: number
  state: PublisherState
  /** Takeovers on this stream since the entry was created (carried across replacements). */
  takeovers: number
}

export interface PublisherStore {
  get: (key: string) => Promise<Publisher | undefined>
  set: (publisher: Publisher) => Promise<void>
  /** Removes the entry for `key` only if `clientId` is its publisher; true if removed. */
  deleteIfClient: (key: string, clientId: string) => Promise<boolean>
  /** Removes whatever entry `clientId` publishes (on_close carries no stream); returns it. */
  deleteByClient: (clientId: string) => Promise<Publisher | undefined>
  delete: (key: string) => Promise<boolean>
  list: () => Promise<Publisher[]>
  size: () => Promise<number>
}

/** In-process store, bounded by an LRU so a flood of stream names cannot exhaust memory. */
export class MemoryPublisherStore implements PublisherStore {
  readonly #entries: LRUCache<string, Publisher>
  readonly #byClient = new Map<string, string>()

  constructor (max: number) {
    this.#entries = new LRUCache({
      max,
      dispose: (value, key) => {
        if (this.#byClient.get(value.clientId) === key) this.#byClient.delete(value.clientId)
      }
    })
  }

  async get (key: string): Promise<Publisher | undefined> {
    return this.#entries.get(key)
  }

  async set (publisher: Publisher): Promise<void> {
    this.#entries.set(publisher.key, publisher)
    this.#byClient.set(publisher.clientId, publisher.key)
  }

  async deleteIfClient (key: string, clientId: string): Promise<boolean> {
    if (this.#entries.peek(key)?.clientId !== clientId) return false
    return this.#entries.delete(key)
  }

  async deleteByClient (clientId: string): Promise<Publisher | undefined> {
    const key = this.#byClient.get(clientId)
    if (key === undefined) return undefined
    const entry = this.#entries.peek(key)
    this.#entries.delete(key)
    return entry
  }

  async delete (key: string): Promise<boolean> {
    return this.#entries.delete(key)
  }

  async list (): Promise<Publisher[]> {
    return [...this.#entries.values()]
  }

  async size (): Promise<number> {
    return this.#entries.size
  }
}
