/**
 * A lock per key with a deadline on every wait. Only on_publish takes it, so racing newcomers for
 * one stream are handled one at a time; no other hook ever waits on it, and streams never wait on
 * each other.
 */
export class KeyedLock {
  readonly #queues = new Map<string, Array<(release: () => void) => void>>()

  /**
   * Resolves with a release function once the lock for `key` is held, or with null if it could not
   * be had within `timeoutMs`.
   */
  acquire (key: string, timeoutMs: number): Promise<(() => void) | null> {
    const queue = this.#queues.get(key)
    if (queue === undefined) {
      this.#queues.set(key, [])
      return Promise.resolve(this.#releaser(key))
    }
    return new Promise((resolve) => {
      const grant = (release: () => void): void => {
        clearTimeout(timer)
        resolve(release)
      }
      const timer = setTimeout(() => {
        const i = queue.indexOf(grant)
        if (i !== -1) queue.splice(i, 1)
        resolve(null)
      }, Math.max(0, timeoutMs))
      queue.push(grant)
    })
  }

  #releaser (key: string): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      const queue = this.#queues.get(key)
      const next = queue?.shift()
      if (next === undefined) {
        this.#queues.delete(key)
      } else {
        next(this.#releaser(key))
      }
    }
  }

  /** Keys held or waited on, for tests and diagnostics. */
  get size (): number {
    return this.#queues.size
  }
}
