import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { RecordingService, type StatFn } from './service.js'
import { SqliteRecordingStore } from './sqlite.js'
import type { RecordingStore } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    recordings: RecordingService
  }
}

export interface RecordingsPluginOptions {
  config: Config
  store?: RecordingStore | undefined
  stat?: StatFn | undefined
  now: () => number
}

/** The DVR recordings index (SQLite under DATA_DIR unless a store is given), closed with the app. */
export default fp<RecordingsPluginOptions>(async (app, { config, store, stat, now }) => {
  let opened = store
  if (opened === undefined) {
    try {
      opened = new SqliteRecordingStore(config.DATA_DIR)
    } catch (err) {
      throw new Error(`cannot open the recordings index in DATA_DIR=${config.DATA_DIR}: ${(err as Error).message}`, { cause: err })
    }
  }
  const service = new RecordingService({
    store: opened,
    now,
    log: app.log.child({ component: 'recordings' }),
    minBytes: config.DVR_MIN_BYTES,
    statTimeoutMs: config.DVR_STAT_TIMEOUT_MS,
    stat
  })
  app.decorate('recordings', service)
  app.addHook('onClose', async () => {
    // Give the files being examined their bound, then close; later answers are dropped.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([service.idle(), new Promise((resolve) => { timer = setTimeout(resolve, config.DVR_STAT_TIMEOUT_MS) })])
    clearTimeout(timer)
    service.close()
  })
}, { name: 'recordings' })
