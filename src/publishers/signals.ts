import { LRUCache } from 'lru-cache'
import { lazy } from '../lazy.js'

/**
 * Tells a waiting takeover that the media server has released a publisher: the hooks that mean
 * "released" (SRS's on_unpublish or on_close, ZLMediaKit's on_stream_changed regist:false) emit a
 * topic naming it. A topic emitted a moment before anyone waits is remembered for a while, so the
 * order of the two does not matter. With shared state, a topic emitted on one replica wakes the
 * waiters of every replica.
 */
export interface Signals {
  /** Wakes every waiter of `topic`, here and (with shared state) on the other replicas. */
  emit: (topic: string) => void
  /**
   * Resolves when `topic` is emitted, or at once if it was emitted within the last minute. Until
   * then it stays pending, also after `signal` aborts (which only lets go of the waiter): the
   * caller races it against its own bound.
   */
  wait: (topic: string, signal: AbortSignal) => Promise<void>
  /** Topics someone waits for here, for tests and diagnostics. */
  readonly waiting: number
}

/** How long an emitted topic is remembered for a late waiter. */
export const SIGNAL_MEMORY_MS = 60_000

export class MemorySignals implements Signals {
  readonly #waiters = new Map<string, Set<() => void>>()
  readonly #recent = lazy(() => new LRUCache<string, true>({ max: 10_000, ttl: SIGNAL_MEMORY_MS }))

  emit (topic: string): void {
    this.#recent().set(topic, true)
    const waiters = this.#waiters.get(topic)
    if (waiters === undefined) return
    this.#waiters.delete(topic)
    for (const wake of waiters) wake()
  }

  /** Whether `topic` was emitted within SIGNAL_MEMORY_MS. */
  seen (topic: string): boolean {
    return this.#recent().has(topic)
  }

  wait (topic: string, signal: AbortSignal): Promise<void> {
    if (this.#recent().has(topic)) return Promise.resolve()
    // Already let go of: nothing to wait for, and nothing to remember.
    if (signal.aborted) return new Promise(() => {})
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(topic)
      if (waiters === undefined) this.#waiters.set(topic, waiters = new Set())
      const set = waiters
      const wake = (): void => {
        signal.removeEventListener('abort', abort)
        resolve()
      }
      const abort = (): void => {
        set.delete(wake)
        if (set.size === 0 && this.#waiters.get(topic) === set) this.#waiters.delete(topic)
      }
      set.add(wake)
      signal.addEventListener('abort', abort, { once: true })
    })
  }

  get waiting (): number {
    return this.#waiters.size
  }
}
