import { LRUCache } from 'lru-cache'
import type { FlapState } from './policy.js'

/**
 * The flap guard: two live encoders configured with the same stream would evict each other
 * forever. It remembers each stream's recent takeovers; once a stream has changed hands FLAP_MAX
 * times within FLAP_WINDOW_MS, the next takeover is refused instead (the policy's decision) and
 * trip() pauses takeovers of that stream for FLAP_COOLDOWN_MS. The episode's history is then
 * forgotten, so the first takeover after the cooldown (a genuine reconnect) goes through.
 *
 * Only takeovers count: a publisher that finds its stream free is never affected, so a device
 * that reconnects after SRS has dropped its old connection always gets in.
 */
export interface FlapGuardOptions {
  max: number
  windowMs: number
  cooldownMs: number
  now: () => number
  /** Streams remembered at most (least recently used go first). */
  maxStreams?: number
}

interface Entry { times: number[], coolingUntil: number }

export class FlapGuard {
  readonly #opts: FlapGuardOptions
  readonly #streams: LRUCache<string, Entry>

  constructor (opts: FlapGuardOptions) {
    this.#opts = opts
    this.#streams = new LRUCache({ max: opts.maxStreams ?? 10_000 })
  }

  state (key: string): FlapState {
    const e = this.#entry(key, false)
    return { coolingUntil: e?.coolingUntil ?? 0, recent: e?.times.length ?? 0, max: this.#opts.max }
  }

  /** A takeover of `key` happened now. */
  record (key: string): void {
    this.#entry(key, true)!.times.push(this.#opts.now())
  }

  /** Starts a cooldown for `key`; returns its end (epoch ms). */
  trip (key: string): number {
    const e = this.#entry(key, true)!
    e.times = []
    e.coolingUntil = this.#opts.now() + this.#opts.cooldownMs
    return e.coolingUntil
  }

  /** Streams remembered, for tests and diagnostics. */
  get size (): number {
    return this.#streams.size
  }

  /** The stream's entry with takeovers older than the window dropped. */
  #entry (key: string, create: boolean): Entry | undefined {
    const now = this.#opts.now()
    let e = this.#streams.get(key)
    if (e !== undefined) {
      const from = now - this.#opts.windowMs
      e.times = e.times.filter((t) => t > from)
      if (e.coolingUntil <= now) e.coolingUntil = 0
      if (!create && e.times.length === 0 && e.coolingUntil === 0) {
        this.#streams.delete(key)
        return undefined
      }
    } else if (create) {
      e = { times: [], coolingUntil: 0 }
      this.#streams.set(key, e)
    }
    return e
  }
}
