import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { FlapGuard, type FlapStore } from './flap.js'
import { narrate, PublisherEvents, PublisherStats } from './events.js'
import type { Locks } from './lock.js'
import { MemoryPendingConnects, type PendingConnects } from './connects.js'
import { Reconciler } from './reconcile.js'
import { PublisherService, ServerDirectories } from './service.js'
import { parsePolicyByApp, policyFor } from './settings.js'
import type { Signals } from './signals.js'
import { MemoryPublisherStore, type PublisherStore } from './store.js'
import type { Policy } from './policy.js'

declare module 'fastify' {
  interface FastifyInstance {
    publishers: PublisherService
    publisherEvents: PublisherEvents
    publisherStats: PublisherStats
    /** Every media server, of every kind; a kind's plugin adds its directory. */
    mediaServers: ServerDirectories
    reconciler: Reconciler
    /** The takeover policy of a stream's app (TAKEOVER_POLICY_BY_APP, else TAKEOVER_POLICY). */
    policyFor: (vhost: string, app: string) => Policy
  }
}

/** Shared state for the publisher side; each part in process unless given. */
export interface PublisherState {
  store?: PublisherStore | undefined
  locks?: Locks | undefined
  signals?: Signals | undefined
  flap?: FlapStore | undefined
  pending?: PendingConnects | undefined
}

/** The settings the publishers plugin reads (the takeover's, and whether decisions are forwarded). */
export type PublishersConfig = Pick<Config, 'CROSS_SERVER' | 'FAIL_MODE' | 'FLAP_COOLDOWN_MS' | 'FLAP_MAX' | 'FLAP_WINDOW_MS' | 'FORWARD_TIMEOUT_MS' | 'FORWARD_URL' | 'FORWARD_ZLM_URL' | 'MAX_PENDING_CONNECTS_BYTES' | 'MAX_PUBLISHERS' | 'MAX_PUBLISHERS_BYTES' | 'RECONCILE_INTERVAL_MS' | 'STALE_PROBE_MS' | 'TAKEOVER_POLICY' | 'TAKEOVER_POLICY_BY_APP' | 'TAKEOVER_TIMEOUT_MS'>

export interface PublishersPluginOptions {
  config: PublishersConfig
  state?: PublisherState
  now: () => number
}

/** The publisher table, the takeover service, its events, and reconciliation with the servers. */
export default fp<PublishersPluginOptions>(async (app, { config, state = {}, now }) => {
  const log = app.log.child({ component: 'publishers' })
  const table = state.store ?? new MemoryPublisherStore(config.MAX_PUBLISHERS, config.MAX_PUBLISHERS_BYTES)
  const events = new PublisherEvents()
  events.on(narrate)
  app.decorate('publisherEvents', events)
  app.decorate('publisherStats', new PublisherStats(events))
  const byApp = parsePolicyByApp(config.TAKEOVER_POLICY_BY_APP)
  app.decorate('policyFor', (vhost: string, app: string) => policyFor(byApp, config.TAKEOVER_POLICY, vhost, app))
  const servers = new ServerDirectories()
  servers.add(app.srsServers)
  app.decorate('mediaServers', servers)
  app.decorate('publishers', new PublisherService({
    store: table,
    events,
    log,
    now,
    takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS,
    failMode: config.FAIL_MODE,
    policy: config.TAKEOVER_POLICY,
    staleProbeMs: config.STALE_PROBE_MS,
    flap: new FlapGuard({ max: config.FLAP_MAX, windowMs: config.FLAP_WINDOW_MS, cooldownMs: config.FLAP_COOLDOWN_MS, now, store: state.flap }),
    sharedLocks: state.locks,
    signals: state.signals,
    pending: state.pending ?? new MemoryPendingConnects({ maxBytes: config.MAX_PENDING_CONNECTS_BYTES, log }),
    servers,
    crossServer: config.CROSS_SERVER,
    platformMs: config.FORWARD_URL !== undefined || config.FORWARD_ZLM_URL !== undefined ? config.FORWARD_TIMEOUT_MS : 0
  }))
  const reconciler = new Reconciler({
    servers: () => servers.all(),
    store: table,
    log,
    now,
    intervalMs: config.RECONCILE_INTERVAL_MS,
    prepare: async () => { await servers.discover() },
    onCorrection: (c, at) => events.emit({ type: 'correction', server: c.server, stream: c.key, kind: c.kind, clientId: c.clientId, previous: c.previous, at }, log)
  })
  app.decorate('reconciler', reconciler)
  // Redis back after an outage (maybe restarted empty): rebuild the shared table from the servers.
  app.redis?.onRecovered(() => { void reconciler.run() })
  // Not before the first hooks are answered: a start beside 100,000 live streams lists them all.
  app.afterStart(() => { reconciler.start() })
  app.addHook('onClose', async () => {
    await reconciler.stop()
    await app.publishers.idle()
  })
}, { name: 'publishers', dependencies: ['srs-api', 'redis'] })
