import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'
import type { Log } from '../logger.js'
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
  /** Records dropped since start because the bound was reached (in this process). */
  readonly dropped: number
}

/** How long a connection may stay between on_connect and on_play/on_publish/on_close and still be judged. */
export const PENDING_CONNECT_TTL_MS = 60_000

/** MAX_PENDING_CONNECTS_BYTES' default: 50,000 records of usual names (about 600 bytes each), about 10,000 of the longest a hook may carry (about 6.3 KB each). */
export const PENDING_CONNECTS_MAX_BYTES = 64 * 1024 * 1024
/** The most records held, whatever their size. */
export const PENDING_CONNECTS_MAX = 50_000
/** How often, at most, drops are logged (with the number dropped since the last line). */
const DROP_LOG_MS = 60_000

/** What a record costs, in bytes, at most: its strings (two bytes a character), its key, and the objects around them. */
export function pendingConnectBytes (p: PendingConnect): number {
  const r = p.ref
  const credentials = p.credentials.kind === 'invalid' ? p.credentials.msg.length : 0
  const chars = 2 * (p.server.length + p.clientId.length) + r.key.length + r.vhost.length + r.app.length + r.stream.length +
    (r.streamId?.length ?? 0) + (p.ip?.length ?? 0) + credentials
  return 2 * chars + 400
}

export interface MemoryPendingConnectsOptions {
  /** Bound in bytes (MAX_PENDING_CONNECTS_BYTES). */
  maxBytes?: number
  /** Bound in records. */
  max?: number
  log?: Log
  /** A monotonic clock in ms, for the pace of the drop lines. */
  now?: () => number
}

/**
 * In process, bounded in records and in bytes (a forged on_connect's names may be long): when full,
 * the oldest records go first. A dropped record only means that its client's close starts no
 * deferred takeover: nobody is ever evicted because of it. Drops are counted, and logged at warn
 * at most once a minute.
 */
export class MemoryPendingConnects implements PendingConnects {
  readonly #entries: () => LRUCache<string, PendingConnect>
  readonly #log: Log | undefined
  readonly #now: () => number
  #dropped = 0
  #unlogged = 0
  #loggedAt: number | undefined

  constructor (opts: MemoryPendingConnectsOptions = {}) {
    this.#log = opts.log
    this.#now = opts.now ?? performance.now.bind(performance)
    this.#entries = lazy(() => new LRUCache<string, PendingConnect>({
      max: opts.max ?? PENDING_CONNECTS_MAX,
      maxSize: opts.maxBytes ?? PENDING_CONNECTS_MAX_BYTES,
      sizeCalculation: pendingConnectBytes,
      ttl: PENDING_CONNECT_TTL_MS,
      dispose: (_p, _id, reason) => { if (reason === 'evict') this.#drop() }
    }))
  }

  get dropped (): number {
    return this.#dropped
  }

  async add (p: PendingConnect): Promise<void> {
    // Records are read with peek(), which does not renew them: the oldest goes first.
    this.#entries().set(`${p.server}\n${p.clientId}`, p)
  }

  async decide (server: string, clientId: string): Promise<void> {
    const p = this.#entries().peek(`${server}\n${clientId}`)
    if (p !== undefined) p.decided = true
  }

  async progressed (server: string, clientId: string): Promise<PendingConnect | undefined> {
    return await this.take(server, clientId)
  }

  async take (server: string, clientId: string): Promise<PendingConnect | undefined> {
    const id = `${server}\n${clientId}`
    const p = this.#entries().peek(id)
    this.#entries().delete(id)
    return p
  }

  #drop (): void {
    this.#dropped++
    this.#unlogged++
    const now = this.#now()
    if (this.#loggedAt !== undefined && now - this.#loggedAt < DROP_LOG_MS) return
    this.#loggedAt = now
    this.#log?.warn({ dropped: this.#unlogged, total: this.#dropped },
      'clients awaiting their publish or close reached MAX_PENDING_CONNECTS_BYTES or 50,000 records: the oldest are dropped (their close starts no deferred takeover; nobody is evicted for it)')
    this.#unlogged = 0
  }
}
