import fp from 'fastify-plugin'
import type { FailureCounts } from '../auth/limiter.js'
import type { Config } from '../config.js'
import type { EventStore } from '../operations/events.js'
import { MemoryPendingConnects } from '../publishers/connects.js'
import type { PublisherState } from '../publishers/plugin.js'
import type { RedisLink } from './link.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The connection to Redis when REDIS_URL is set (the replicas' shared state); else undefined. */
    redis: RedisLink | undefined
    /** The state the replicas share in Redis, for the plugins that keep it; undefined without REDIS_URL. */
    sharedState: SharedState | undefined
  }
}

export interface SharedState {
  publishers: PublisherState
  failures: FailureCounts
  events: EventStore
}

/** The settings the Redis plugin reads. */
export type RedisPluginConfig = Pick<Config, 'EVENTS_MAX' | 'MAX_PENDING_CONNECTS_BYTES' | 'MAX_PUBLISHERS' | 'REDIS_PREFIX' | 'REDIS_TIMEOUT_MS' | 'REDIS_URL'>

export interface RedisPluginOptions {
  config: RedisPluginConfig
  now: () => number
}

/**
 * With REDIS_URL set, the replicas share in Redis: the publisher table, the per-stream takeover
 * locks, the release signals, the flap guard's history, the brute-force counts, clients between
 * their connect and their publish, and the events log. Each keeps a local twin and falls back to it
 * when Redis is down or slow, within REDIS_TIMEOUT_MS. Without REDIS_URL nothing is shared.
 */
export default fp<RedisPluginOptions>(async (app, { config, now }) => {
  if (config.REDIS_URL === undefined) {
    app.decorate('redis', undefined)
    app.decorate('sharedState', undefined)
    return
  }
  // Redis's client and the shared stores are loaded only with REDIS_URL (a start loads less).
  const [{ RedisPendingConnects }, { RedisEventStore }, { RedisFailureCounts }, { RedisFlapStore }, { RedisLink }, { RedisLocks }, { RedisSignals }, { RedisPublisherStore }] = await Promise.all([
    import('./connects.js'), import('./events.js'), import('./failures.js'), import('./flap.js'), import('./link.js'), import('./locks.js'), import('./signals.js'), import('./store.js')
  ])
  const link = new RedisLink({ url: config.REDIS_URL, log: app.log.child({ component: 'redis' }), prefix: config.REDIS_PREFIX, timeoutMs: config.REDIS_TIMEOUT_MS, now })
  app.decorate('redis', link)
  app.decorate('sharedState', {
    publishers: {
      store: new RedisPublisherStore({ link, localMax: config.MAX_PUBLISHERS }),
      locks: new RedisLocks({ link, log: app.log.child({ component: 'redis' }) }),
      signals: new RedisSignals({ link }),
      flap: new RedisFlapStore({ link, now }),
      pending: new RedisPendingConnects({ link, local: new MemoryPendingConnects({ maxBytes: config.MAX_PENDING_CONNECTS_BYTES, log: app.log.child({ component: 'publishers' }) }) })
    },
    failures: new RedisFailureCounts({ link, now }),
    events: new RedisEventStore({ link, max: config.EVENTS_MAX })
  })
  app.addHook('onClose', async () => { await link.close() })
}, { name: 'redis' })
