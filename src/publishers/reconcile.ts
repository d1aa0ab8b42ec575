import type { Log } from '../logger.js'
import type { MediaServer, PublishedStream } from './media.js'
import type { Publisher, PublisherStore } from './store.js'

export interface Correction {
  kind: 'added' | 'replaced' | 'dropped'
  server: string
  key: string
  clientId: string
  /** The client the table held before, for 'replaced'. */
  previous?: string
}

/**
 * Makes the publisher table agree with one server's live streams: every actively published stream
 * is in the table with the server's publisher, and entries the server no longer has are dropped.
 * Entries written by a hook after the listing began are left alone: they are newer than what the
 * listing saw. Other servers' entries are never touched.
 */
export async function reconcile (server: MediaServer, store: PublisherStore, now: () => number): Promise<Correction[]> {
  const startedAt = now()
  const live = new Map<string, PublishedStream>()
  for (const s of await server.published()) live.set(s.key, s)
  const id = server.id
  const corrections: Correction[] = []
  // Writes are gathered and made together (setMany): after a restart beside 100,000 live streams
  // that is 100,000 of them.
  const writes: Publisher[] = []
  for (const entry of await store.list(id)) {
    const s = live.get(entry.key)
    live.delete(entry.key)
    if (entry.since >= startedAt) continue
    if (s === undefined) {
      if (await store.deleteIfClient(id, entry.key, entry.clientId)) {
        corrections.push({ kind: 'dropped', server: id, key: entry.key, clientId: entry.clientId })
      }
    } else if (s.holder !== entry.clientId) {
      writes.push(fromServer(id, s, now(), entry.takeovers))
      corrections.push({ kind: 'replaced', server: id, key: entry.key, clientId: s.holder, previous: entry.clientId })
    } else if (entry.state !== 'confirmed' || entry.streamId !== s.streamId) {
      writes.push({ ...entry, state: 'confirmed', streamId: s.streamId })
    }
  }
  for (const [key, s] of live) {
    if (await store.get(id, key) !== undefined) continue
    writes.push(fromServer(id, s, now(), 0))
    corrections.push({ kind: 'added', server: id, key, clientId: s.holder })
  }
  await store.setMany(writes)
  return corrections
}

function fromServer (server: string, s: PublishedStream, since: number, takeovers: number): Publisher {
  return { server, key: s.key, vhost: s.vhost, app: s.app, stream: s.stream, clientId: s.holder, streamId: s.streamId, since, state: 'confirmed', takeovers }
}

/** Corrections of one run logged at info; the rest at debug. */
export const LOGGED_CORRECTIONS = 100

export interface ReconcilerOptions {
  /** The servers to reconcile, asked at each run (they may change). */
  servers: () => MediaServer[]
  store: PublisherStore
  log: Log
  now: () => number
  intervalMs: number
  /** Called before each run (SRS: read each server's version again). */
  prepare?: () => Promise<void>
  /** Called with every correction made, and when. */
  onCorrection?: (c: Correction, at: number) => void
}

/**
 * Runs reconcile() for every server at start and every RECONCILE_INTERVAL_MS, never two runs at
 * once. Each server is reconciled on its own: one that does not answer keeps its entries, and
 * never costs another server its own.
 */
export class Reconciler {
  readonly #opts: ReconcilerOptions
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  /** Runs that completed, corrections made and servers that failed, for tests and metrics. */
  runs = 0
  corrections = 0
  failures = 0

  constructor (opts: ReconcilerOptions) {
    this.#opts = opts
  }

  start (): void {
    if (this.#opts.intervalMs === 0) return
    void this.run()
    this.#timer = setInterval(() => { void this.run() }, this.#opts.intervalMs)
    this.#timer.unref()
  }

  /** One pass; if one is under way, waits for that one instead. */
  run (): Promise<void> {
    this.#running ??= this.#run().finally(() => { this.#running = undefined })
    return this.#running
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
  }

  async #run (): Promise<void> {
    await this.#opts.prepare?.()
    await Promise.all(this.#opts.servers().map(async (s) => await this.#one(s)))
    this.runs++
  }

  async #one (server: MediaServer): Promise<void> {
    const { store, log, now } = this.#opts
    const started = now()
    try {
      const corrections = await reconcile(server, store, now)
      this.corrections += corrections.length
      for (let i = 0; i < corrections.length; i++) {
        const c = corrections[i]!
        // Each correction is logged; past the first LOGGED_CORRECTIONS of a run (a restart beside
        // 100,000 live streams), only at debug, and the summary line counts them.
        const line = { correction: c.kind, server: c.server, stream: c.key, client: c.clientId, previous: c.previous }
        if (i < LOGGED_CORRECTIONS) log.info(line, 'reconciliation corrected the publisher table')
        else log.debug(line, 'reconciliation corrected the publisher table')
        this.#opts.onCorrection?.(c, now())
      }
      const summary = { server: server.id, ms: now() - started, corrections: corrections.length, size: await store.size() }
      if (corrections.length > LOGGED_CORRECTIONS) log.info(summary, `reconciled with the server; corrections past the first ${LOGGED_CORRECTIONS} are logged at debug`)
      else log.debug(summary, 'reconciled with the server')
    } catch (err) {
      this.failures++
      log.warn({ server: server.id, err: (err as Error).message }, 'reconciliation with the server failed; its entries are kept, will try again')
    }
  }
}
