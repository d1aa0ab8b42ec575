import { EventEmitter } from 'node:events'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { Reconciler, type Correction } from './reconcile.js'
import { FlapGuard } from './flap.js'
import { PublisherService, SRS_STATS_INTERVAL_MS, type PublisherEvent } from './service.js'
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
    onEvent: (e) => events.emit('publisher', e),
    staleProbeMs: config.STALE_PROBE_MS,
    flap: new FlapGuard({ max: config.FLAP_MAX, windowMs: config.FLAP_WINDOW_MS, cooldownMs: config.FLAP_COOLDOWN_MS, now })
  }))
  if (config.STALE_PROBE_MS <= SRS_STATS_INTERVAL_MS) {
    log.warn({ STALE_PROBE_MS: config.STALE_PROBE_MS }, `STALE_PROBE_MS is not longer than SRS's ${SRS_STATS_INTERVAL_MS} ms statistics interval: takeover-stale may take a sending publisher for a stalled one`)
  }
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
