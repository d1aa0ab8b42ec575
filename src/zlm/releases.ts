import type { Log } from '../logger.js'
import type { PublisherStore } from '../publishers/store.js'
import { zlmReleaseTopic, type ZlmMediaServer } from './adapter.js'

/**
 * ZLMediaKit's release signal, made safe. ZLMediaKit has no on_unpublish: a stream that goes is
 * on_stream_changed regist:false, once per schema, naming the stream but not the session that
 * held it, and hooks arrive out of order. So a regist:false (or a publisher's on_flow_report, which
 * a session's end sends) only prompts a check: ZLMediaKit's API says who holds the stream now, and
 * every holder known to be waited for (a takeover in this process) or known to have held it (the
 * table's entry, once confirmed by its own regist:true) that no longer holds it is signalled
 * released, by a topic naming that holder. A late or old regist:false then signals nothing the API
 * does not confirm. The checks of one stream are collapsed: one at a time, and at most one more
 * for whatever came while it ran.
 */

export interface StreamReleasesOptions {
  store: PublisherStore
  /** Wakes the takeovers waiting for these topics (PublisherService.released). */
  emit: (topics: string[]) => void
  log: Log
  now: () => number
  /** Bound of one check's API call. */
  timeoutMs: number
}

interface Running { again: boolean, done: Promise<void> }

export class StreamReleases {
  /** Checks run, for tests and diagnostics. */
  checks = 0
  readonly #opts: StreamReleasesOptions
  readonly #running = new Map<string, Running>()

  constructor (opts: StreamReleasesOptions) {
    this.#opts = opts
  }

  /**
   * Something about `key` on `server` changed (a regist:false, a publisher's session ended):
   * checks who holds it now. Resolves when the checks this call asked for are done; never throws.
   */
  changed (server: ZlmMediaServer, key: string): Promise<void> {
    const id = `${server.id}\n${key}`
    const running = this.#running.get(id)
    if (running !== undefined) {
      running.again = true
      return running.done
    }
    const r: Running = { again: false, done: Promise.resolve() }
    r.done = (async () => {
      try {
        do {
          r.again = false
          await this.#check(server, key)
        } while (r.again)
      } catch (err) {
        this.#opts.log.warn({ server: server.id, stream: key, err: (err as Error).message }, 'the release check failed (the publisher table did not answer)')
      } finally {
        this.#running.delete(id)
      }
    })()
    this.#running.set(id, r)
    return r.done
  }

  /**
   * regist:true names the stream's origin session: the table's entry for that very session is
   * confirmed (it did get the stream), so that its later release can be signalled.
   */
  async registered (server: ZlmMediaServer, key: string, holder: string): Promise<boolean> {
    const { store } = this.#opts
    const entry = await store.get(server.id, key)
    if (entry === undefined || entry.clientId !== holder || entry.state === 'confirmed') return false
    // Read again just before writing: the entry may have been replaced meanwhile.
    const again = await store.get(server.id, key)
    if (again?.clientId !== holder) return false
    await store.set({ ...again, state: 'confirmed' })
    return true
  }

  /** Resolves once no check is running. */
  async idle (): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()].map((r) => r.done))
  }

  async #check (server: ZlmMediaServer, key: string): Promise<void> {
    const { store, log, now } = this.#opts
    const entry = await store.get(server.id, key)
    const confirmed = entry?.state === 'confirmed' ? entry.clientId : undefined
    const candidates = new Set(server.awaited(key))
    if (confirmed !== undefined) candidates.add(confirmed)
    if (candidates.size === 0) return
    this.checks++
    let holder: string | undefined
    try {
      const live = await server.live({ key, vhost: '', app: '', stream: '' }, now() + this.#opts.timeoutMs)
      holder = live.active ? live.holder : undefined
    } catch (err) {
      // A waiting takeover polls the API itself; the table waits for reconciliation.
      log.debug({ server: server.id, stream: key, err: (err as Error).message }, 'could not check who holds the stream after its release hook')
      return
    }
    const released = [...candidates].filter((c) => c !== holder)
    if (released.length === 0) return
    this.#opts.emit(released.map((c) => zlmReleaseTopic(server.id, key, c)))
    server.forget(key, released)
    if (confirmed !== undefined && holder === undefined && await store.deleteIfClient(server.id, key, confirmed)) {
      log.debug({ server: server.id, stream: key, client: confirmed }, 'the stream was released: its publisher left the table')
    }
    log.debug({ server: server.id, stream: key, released, holder: holder ?? null }, 'ZLMediaKit confirmed the release')
  }
}
