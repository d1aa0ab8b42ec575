import { EventEmitter } from 'node:events'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { Reconciler, type Correction } from './reconcile.js'
import { PublisherService, type PublisherEvent } from './service.js'
import { MemoryPublisherStore, type PublisherStore } from './store.js'

/** What the publisher side reports, for whoever keeps an events log or metrics. */
export interface PublisherEvents {
  publisher: [PublisherEvent]
  correction: [Correction & { at: number }]
}

declare module 'fastify' {
  interface FastifyInstance {
    publishers: PublisherService
    reconciler: Reconciler
    publisherEvents: EventEmitter<PublisherEvents>
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
  const events = new EventEmitter<PublisherEvents>()
  app.decorate('publisherEvents', events)
  app.decorate('publishers', new PublisherService({
    api: app.srs,
    store: table,
    log,
    now,
    takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS,
    failMode: config.FAIL_MODE,
    onEvent: (e) => events.emit('publisher', e)
  }))
  const reconciler = new Reconciler({
    api: app.srs,
    store: table,
    log,
    now,
    intervalMs: config.RECONCILE_INTERVAL_MS,
    onCorrection: (c) => events.emit('correction', c)
  })
  app.decorate('reconciler', reconciler)
  app.addHook('onReady', async () => { reconciler.start() })
  app.addHook('onClose', async () => { await reconciler.stop() })
}, { name: 'publishers', dependencies: ['srs-api'] })
