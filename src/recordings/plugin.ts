import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { openStore, type StoreConfig } from './open.js'
import { Retention } from './retention.js'
import { RecordingService, type StatFn } from './service.js'
import { recordingRootsOf } from './settings.js'
import type { RecordingStore } from './store.js'

/** How often the index's rows are counted again for RECORDINGS_MAX_ROWS. */
const ROW_COUNT_MS = 60_000

declare module 'fastify' {
  interface FastifyInstance {
    recordings: RecordingService
  }
}

/** The settings the recordings plugin reads (and the store's). */
export type RecordingsConfig = StoreConfig & Pick<Config, 'DVR_MIN_BYTES' | 'DVR_STAT_TIMEOUT_MS' | 'RECORDINGS_MAX_ROWS' | 'RECORDINGS_RETENTION_DAYS' | 'RECORDINGS_RETENTION_SWEEP_MS' | 'RECORDINGS_ROOTS'>

export interface RecordingsPluginOptions {
  config: RecordingsConfig
  store?: RecordingStore | undefined
  stat?: StatFn | undefined
  now: () => number
}

/**
 * The DVR recordings index (SQLite in DATA_DIR, or PostgreSQL with DATABASE_URL, unless a store is
 * given), its retention, closed with the app.
 */
export default fp<RecordingsPluginOptions>(async (app, { config, store, stat, now }) => {
  const log = app.log.child({ component: 'recordings' })
  const opened = store ?? await openStore(config, log)
  const service = new RecordingService({
    store: opened,
    now,
    log,
    minBytes: config.DVR_MIN_BYTES,
    statTimeoutMs: config.DVR_STAT_TIMEOUT_MS,
    stat,
    roots: recordingRootsOf(config.RECORDINGS_ROOTS),
    maxRows: config.RECORDINGS_MAX_ROWS
  })
  // RECORDINGS_MAX_ROWS is checked against a count made at start and every minute, never on a hook's path.
  let counter: NodeJS.Timeout | undefined
  app.afterStart(() => {
    void service.countRows()
    counter = setInterval(() => { void service.countRows() }, ROW_COUNT_MS)
    counter.unref()
  })
  if (config.RECORDINGS_RETENTION_DAYS !== undefined) {
    const retention = service.retention = new Retention({ store: opened, days: config.RECORDINGS_RETENTION_DAYS, everyMs: config.RECORDINGS_RETENTION_SWEEP_MS, now, log })
    // Its first sweep is a start's background work too (http/start.ts).
    app.afterStart(() => { retention.start() })
  }
  app.decorate('recordings', service)
  if (store === undefined && opened.kind === 'sqlite') {
    // Opens the index in its worker (creating or migrating it) once the server is serving, before
    // an on_dvr needs it; a file that cannot be opened is said now, not at the first recording.
    app.afterStart(() => {
      void opened.readiness(now()).then((r) => { if (!r.ok) log.error({ reason: r.msg }, 'the recordings index cannot be opened') })
    })
  }
  app.addHook('onClose', async () => {
    clearInterval(counter)
    await service.retention?.stop()
    // Give the files being examined their bound, then close; later answers are dropped.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([service.idle(), new Promise((resolve) => { timer = setTimeout(resolve, config.DVR_STAT_TIMEOUT_MS) })])
    clearTimeout(timer)
    await service.close()
  })
}, { name: 'recordings' })
