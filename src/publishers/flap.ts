import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'
import type { FlapState } from './policy.js'

/**
 * The flap guard: two live encoders configured with the same stream would evict each other
 * forever. It remembers each stream's recent takeovers; once a stream has changed hands FLAP_MAX
 * times within FLAP_WINDOW_MS, the next takeover is refused instead (the policy's decision) and
 * trip() pauses takeovers of that stream for FLAP_COOLDOWN_MS. The episode's history is then
 * forgotten, so the first takeover after the cooldown (a genuine reconnect) goes through.
 *
 * Only takeovers count: a publisher that finds its stream free is never affected, so a device
 * that reconnects after the media server has dropped its old connection always gets in.
 */

/** Where the guard keeps its history: in process, or shared by the replicas. */
export interface FlapStore {
  /** Takeovers of `key` recorded after `since`, and the end of its cooldown (0: none). */
  read: (key: string, since: number) => Promise<{ recent: number, coolingUntil: number }>
  /** A takeover of `key` at `at`; it may be forgotten once older than `windowMs`. */
  record: (key: string, at: number, windowMs: number) => Promise<void>
  /** Pauses takeovers of `key` until `until` and forgets its takeovers so far. */
  trip: (key: string, until: number) => Promise<void>
}

interface Entry { times: number[], coolingUntil: number }

/** The in-process flap history's bound in bytes. */
export const FLAP_MAX_BYTES = 16 * 1024 * 1024

/** The in-process history, bounded: the least recently used streams are forgotten first. */
export class MemoryFlapStore implements FlapStore {
  readonly #streams: () => LRUCache<string, Entry>

  constructor (maxStreams = 10_000, maxBytes = FLAP_MAX_BYTES) {
    // Counted by the stream's name (up to 1.5 KB from a hook) and room for its takeovers' times.
    this.#streams = lazy(() => new LRUCache({ max: maxStreams, maxSize: maxBytes, sizeCalculation: (_e: Entry, key: string) => 2 * key.length + 8 * 64 + 200 }))
  }

  async read (key: string, since: number): Promise<{ recent: number, coolingUntil: number }> {
    const e = this.#streams().get(key)
    if (e === undefined) return { recent: 0, coolingUntil: 0 }
    e.times = e.times.filter((t) => t > since)
    return { recent: e.times.length, coolingUntil: e.coolingUntil }
  }

  async record (key: string, at: number, windowMs: number): Promise<void> {
    const e = this.#entry(key)
    e.times = e.times.filter((t) => t > at - windowMs)
    e.times.push(at)
  }

  async trip (key: string, until: number): Promise<void> {
    const e = this.#entry(key)
    e.times = []
    e.coolingUntil = until
  }

  /** Streams remembered, for tests and diagnostics. */
  get size (): number {
    return this.#streams().size
  }

  #entry (key: string): Entry {
    let e = this.#streams().get(key)
    if (e === undefined) this.#streams().set(key, e = { times: [], coolingUntil: 0 })
    return e
  }
}

export interface FlapGuardOptions {
  max: number
  windowMs: number
  cooldownMs: number
  now: () => number
  store?: FlapStore
}

export class FlapGuard {
  readonly #opts: FlapGuardOptions
  readonly #store: FlapStore

  constructor (opts: FlapGuardOptions) {
    this.#opts = opts
    this.#store = opts.store ?? new MemoryFlapStore()
  }

  async state (key: string): Promise<FlapState> {
    const now = this.#opts.now()
    const { recent, coolingUntil } = await this.#store.read(key, now - this.#opts.windowMs)
    return { coolingUntil: coolingUntil > now ? coolingUntil : 0, recent, max: this.#opts.max }
  }

  /** A takeover of `key` happened now. */
  async record (key: string): Promise<void> {
    await this.#store.record(key, this.#opts.now(), this.#opts.windowMs)
  }

  /** Starts a cooldown for `key`; returns its end (epoch ms). */
  async trip (key: string): Promise<number> {
    const until = this.#opts.now() + this.#opts.cooldownMs
    await this.#store.trip(key, until)
    return until
  }
}
