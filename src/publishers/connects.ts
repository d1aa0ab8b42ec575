import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'
import type { Credentials, Policy } from './policy.js'
import type { StreamRef } from './media.js'

/**
 * Clients whose on_connect named a stream and that have not played or published yet. On SRS >=
 * 7.0.62 a second publisher is refused by the stream's publish token right after its on_connect
 * and closes without ever sending on_publish: a client that closes while still pending here was
 * such a publisher, and its close may start a deferred takeover so that its retry gets in.
 */
export interface PendingConnect {
  server: string
  clientId: string
  ref: StreamRef
  ip?: string | undefined
  credentials: Credentials
  policy: Policy
  at: number
  /** Its on_connect already decided about the stream (took it over, or refused it): nothing to defer. */
  decided?: boolean
}

export interface PendingConnects {
  add: (p: PendingConnect) => Promise<void>
  /** Marks a pending client as decided at its on_connect. */
  decide: (server: string, clientId: string) => Promise<void>
  /** Forgets a client at its close and returns what was pending for it (undefined: nothing, or it cannot be told). */
  take: (server: string, clientId: string) => Promise<PendingConnect | undefined>
  /** The client played or published: it is never taken for a refused publisher. Returns what its connect said. */
  progressed: (server: string, clientId: string) => Promise<PendingConnect | undefined>
}

/** How long a connection may stay between on_connect and on_play/on_publish/on_close and still be judged. */
export const PENDING_CONNECT_TTL_MS = 60_000

export class MemoryPendingConnects implements PendingConnects {
  readonly #entries = lazy(() => new LRUCache<string, PendingConnect>({ max: 50_000, ttl: PENDING_CONNECT_TTL_MS }))

  async add (p: PendingConnect): Promise<void> {
    this.#entries().set(`${p.server}\n${p.clientId}`, p)
  }

  async decide (server: string, clientId: string): Promise<void> {
    const p = this.#entries().get(`${server}\n${clientId}`)
    if (p !== undefined) p.decided = true
  }

  async progressed (server: string, clientId: string): Promise<PendingConnect | undefined> {
    return await this.take(server, clientId)
  }

  async take (server: string, clientId: string): Promise<PendingConnect | undefined> {
    const id = `${server}\n${clientId}`
    const p = this.#entries().get(id)
    this.#entries().delete(id)
    return p
  }
}
