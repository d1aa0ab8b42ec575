import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { DEFAULT_VHOST } from '../streams.js'
import type { PublisherEvent } from '../publishers/events.js'
import { LiveEvents } from './live-events.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This replica's events as they happen, for GET events/stream. */
    liveEvents: LiveEvents
  }
}

export interface LiveEventsPluginOptions {
  config: Config
  now: () => number
  /** How often the SRS servers' and Redis's state is looked at for changes; default 500 ms. */
  watchMs?: number
}

/**
 * Feeds LiveEvents: every publisher event (a takeover carries its stream's policy), and the
 * changes of state it sees in SRS's API clients and in the link to Redis (`server-down`,
 * `server-up`, `redis-down`, `redis-up`). Those states change when a call fails or answers (a
 * hook, reconciliation, the operator API): looking at them costs nothing and calls no server.
 */
export default fp<LiveEventsPluginOptions>(async (app, { config, now, watchMs = 500 }) => {
  const live = new LiveEvents(config.EVENTS_MAX)
  app.decorate('liveEvents', live)
  app.publisherEvents.on((e) => { live.publish(e.type === 'takeover' || e.type === 'takeover-timeout' ? { ...e, policy: policyOf(e) } : { ...e }) })

  function policyOf (e: PublisherEvent): string {
    // `[vhost]/app/stream`, the vhost left out for the default one.
    const parts = e.stream.split('/')
    return app.policyFor(parts[0] === '' ? DEFAULT_VHOST : parts[0]!, parts[1]!)
  }

  const srsUp = new Map(app.srsServers.nodes.map((n) => [n, n.api.status.up]))
  let redisUp = app.redis?.check().ok
  const timer = setInterval(() => {
    for (const [n, was] of srsUp) {
      const up = n.api.status.up
      if (up === was) continue
      srsUp.set(n, up)
      live.publish({ type: up ? 'server-up' : 'server-down', at: now(), server: n.server.id, kind: 'srs', api: n.url })
    }
    if (app.redis !== undefined) {
      const check = app.redis.check()
      if (check.ok !== redisUp) {
        redisUp = check.ok
        live.publish({ type: check.ok ? 'redis-up' : 'redis-down', at: now(), msg: check.msg })
      }
    }
  }, watchMs)
  timer.unref()
  app.addHook('preClose', async () => { live.end() })
  app.addHook('onClose', async () => { clearInterval(timer) })
}, { name: 'live-events', dependencies: ['srs-api', 'redis', 'publishers'] })
