import type { Log } from '../logger.js'
import { DEFAULT_VHOST } from '../srs/hooks.js'
import type { SrsApi, SrsStream } from '../srs/api.js'
import type { Publisher, PublisherStore } from './store.js'

export interface Correction {
  kind: 'added' | 'replaced' | 'dropped'
  key: string
  clientId: string
  /** The client the table held before, for 'replaced'. */
  previous?: string
}

/**
 * Makes the publisher table agree with SRS's live streams: every actively published stream is in
 * the table with SRS's publisher, and entries SRS no longer has are dropped. Entries written by a
 * hook after the listing began are left alone: they are newer than what the listing saw.
 */
export async function reconcile (api: SrsApi, store: PublisherStore, now: () => number): Promise<Correction[]> {
  const startedAt = now()
  const live = new Map<string, SrsStream>()
  for (const s of await api.allStreams()) {
    if (s.publish.active && s.publish.cid !== undefined) live.set(keyOf(s), s)
  }
  const corrections: Correction[] = []
  for (const entry of await store.list()) {
    const s = live.get(entry.key)
    live.delete(entry.key)
    if (entry.since >= startedAt) continue
    if (s === undefined) {
      if (await store.deleteIfClient(entry.key, entry.clientId)) {
        corrections.push({ kind: 'dropped', key: entry.key, clientId: entry.clientId })
      }
    } else if (s.publish.cid !== entry.clientId) {
      await store.set(fromSrs(s, entry.key, now(), entry.takeovers))
      corrections.push({ kind: 'replaced', key: entry.key, clientId: s.publish.cid!, previous: entry.clientId })
    } else if (entry.state !== 'confirmed') {
      await store.set({ ...entry, state: 'confirmed', streamId: s.id })
    }
  }
  for (const [key, s] of live) {
    if (await store.get(key) !== undefined) continue
    await store.set(fromSrs(s, key, now(), 0))
    corrections.push({ kind: 'added', key, clientId: s.publish.cid! })
  }
  return corrections
}

/** SRS's stream url; SRS < 5.0.55 lists none, so assume the default vhost there. */
function keyOf (s: SrsStream): string {
  return s.url ?? `/${s.app}/${s.name}`
}

function fromSrs (s: SrsStream, key: string, since: number, takeovers: number): Publisher {
  const vhost = key.startsWith('/') ? DEFAULT_VHOST : key.slice(0, key.indexOf('/'))
  return { key, vhost, app: s.app, stream: s.name, clientId: s.publish.cid!, streamId: s.id, since, state: 'confirmed', takeovers }
}

/** Corrections of one run logged at info; the rest at debug. */
export const LOGGED_CORRECTIONS = 100

export interface ReconcilerOptions {
  api: SrsApi
  store: PublisherStore
  log: Log
  now: () => number
  intervalMs: number
  /** Called with every correction made. */
  onCorrection?: (c: Correction & { at: number }) => void
}

/** Runs reconcile() at start and every RECONCILE_INTERVAL_MS, never two at once. */
export class Reconciler {
  readonly #opts: ReconcilerOptions
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  /** Runs that completed, and corrections made, for tests and metrics. */
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
    const { api, store, log, now } = this.#opts
    const started = now()
    try {
      const corrections = await reconcile(api, store, now)
      this.runs++
      this.corrections += corrections.length
      corrections.forEach((c, i) => {
        // Each correction is logged; past the first LOGGED_CORRECTIONS of a run (a restart beside
        // 100,000 live streams), only at debug, and the summary line counts them.
        const line = { correction: c.kind, stream: c.key, client: c.clientId, previous: c.previous }
        if (i < LOGGED_CORRECTIONS) log.info(line, 'reconciliation corrected the publisher table')
        else log.debug(line, 'reconciliation corrected the publisher table')
        this.#opts.onCorrection?.({ ...c, at: now() })
      })
      const summary = { ms: now() - started, corrections: corrections.length, size: await store.size() }
      if (corrections.length > LOGGED_CORRECTIONS) log.info(summary, `reconciled with SRS; corrections past the first ${LOGGED_CORRECTIONS} are logged at debug`)
      else log.debug(summary, 'reconciled with SRS')
    } catch (err) {
      this.failures++
      log.warn({ err: (err as Error).message }, 'reconciliation with SRS failed; will try again')
    }
  }
}
