import { LRUCache } from 'lru-cache'

/**
 * Tells a waiting takeover that SRS has released a publisher: on_unpublish and on_close of that
 * client call `released()`. A client released a moment before anyone waits is remembered for a
 * while, so the order of the two does not matter.
 */
export class ReleaseSignals {
  readonly #waiters = new Map<string, Set<() => void>>()
  readonly #recent = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 })

  released (clientId: string): void {
    this.#recent.set(clientId, true)
    const waiters = this.#waiters.get(clientId)
    if (waiters === undefined) return
    this.#waiters.delete(clientId)
    for (const wake of waiters) wake()
  }

  /** Resolves when `clientId` is released, or at once if it was released recently. */
  wait (clientId: string, signal: AbortSignal): Promise<void> {
    if (this.#recent.has(clientId)) return Promise.resolve()
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(clientId)
      if (waiters === undefined) this.#waiters.set(clientId, waiters = new Set())
      const set = waiters
      const wake = (): void => {
        signal.removeEventListener('abort', abort)
        resolve()
      }
      const abort = (): void => {
        set.delete(wake)
        if (set.size === 0 && this.#waiters.get(clientId) === set) this.#waiters.delete(clientId)
      }
      set.add(wake)
      signal.addEventListener('abort', abort, { once: true })
    })
  }

  /** Clients someone waits for, for tests and diagnostics. */
  get waiting (): number {
    return this.#waiters.size
  }
}
