import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { Reconciler } from './reconcile.js'
import { PublisherService } from './service.js'
import { MemoryPublisherStore, type PublisherStore } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    publishers: PublisherService
    reconciler: Reconciler
  }
}

export interface PublishersPluginOptions {
  config: Config
  store?: PublisherStore | undefined
  now: () => number
}

/** The publisher table, the takeover service and reconciliation with SRS. */
export default fp<PublishersPluginOptions>(async (app, { config, store, now }) => {
  const log = app.log.child({ component: 'publishers' })
  const table = store ?? new MemoryPublisherStore(config.MAX_PUBLISHERS)
  app.decorate('publishers', new PublisherService({
    api: app.srs,
    store: table,
    log,
    now,
    takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS,
    failMode: config.FAIL_MODE
  }))
  const reconciler = new Reconciler({ api: app.srs, store: table, log, now, intervalMs: config.RECONCILE_INTERVAL_MS })
  app.decorate('reconciler', reconciler)
  app.addHook('onReady', async () => { reconciler.start() })
  app.addHook('onClose', async () => { await reconciler.stop() })
}, { name: 'publishers', dependencies: ['srs-api'] })
