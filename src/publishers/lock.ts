/**
 * A lock per key with a bound on every wait and on every hold. Only the publish path takes it
 * (and the operator's eviction), so racing newcomers for one stream are handled one at a time; no
 * other hook ever waits on it, and streams never wait on each other.
 */

/** Lets go of a held key. Calling it twice, or after the lease lapsed, is harmless. */
export type Unlock = () => void

export interface Locks {
  /**
   * Resolves with the function that lets go once `key` is held, or with null if it could not be
   * had within `waitMs`. A hold lapses after `leaseMs` even if never let go, so a holder that died
   * (another replica) or hung cannot keep a stream locked.
   */
  acquire: (key: string, waitMs: number, leaseMs: number) => Promise<Unlock | null>
}

/** The in-process lock: waiters are served in order of arrival. */
export class MemoryLocks implements Locks {
  readonly #queues = new Map<string, Array<() => void>>()

  acquire (key: string, waitMs: number, leaseMs: number): Promise<Unlock | null> {
    const queue = this.#queues.get(key)
    if (queue === undefined) {
      this.#queues.set(key, [])
      return Promise.resolve(this.#hold(key, leaseMs))
    }
    return new Promise((resolve) => {
      const grant = (): void => {
        clearTimeout(timer)
        resolve(this.#hold(key, leaseMs))
      }
      const timer = setTimeout(() => {
        const i = queue.indexOf(grant)
        if (i !== -1) queue.splice(i, 1)
        resolve(null)
      }, Math.max(0, waitMs))
      queue.push(grant)
    })
  }

  /** Keys held or waited on, for tests and diagnostics. */
  get size (): number {
    return this.#queues.size
  }

  /** The holder's unlock: hands the key to the next waiter, by itself once the lease lapses. */
  #hold (key: string, leaseMs: number): Unlock {
    let done = false
    const unlock = (): void => {
      if (done) return
      done = true
      clearTimeout(lapse)
      const queue = this.#queues.get(key)
      const next = queue?.shift()
      if (next === undefined) this.#queues.delete(key)
      else next()
    }
    const lapse = setTimeout(unlock, Math.max(0, leaseMs))
    lapse.unref()
    return unlock
  }
}
