import fp from 'fastify-plugin'
import type { Dispatcher } from 'undici'
import type { Config } from '../config.js'
import { probeBudget } from '../publishers/probe.js'
import { SRS_STATS_INTERVAL_MS } from './adapter.js'
import { SrsServers } from './servers.js'

declare module 'fastify' {
  interface FastifyInstance {
    srsServers: SrsServers
  }
}

/** The settings the SRS plugin reads. */
export type SrsPluginConfig = Pick<Config, 'SRS_API_PAGE_SIZE' | 'SRS_API_RETRIES' | 'SRS_API_TIMEOUT_MS' | 'STALE_PROBE_MS' | 'TAKEOVER_AT' | 'srsApis'>

export interface SrsPluginOptions {
  config: SrsPluginConfig
  dispatcher?: Dispatcher | undefined
  now: () => number
  statsIntervalMs?: number | undefined
}

/**
 * The SRS servers (SRS_API_URL) and their API clients, shared by the app, closed with it. Their
 * versions (which decide where takeovers happen) are read once the server is serving (afterStart),
 * without holding up the first hooks.
 */
export default fp<SrsPluginOptions>(async (app, { config, dispatcher, now, statsIntervalMs }) => {
  const servers = new SrsServers({
    apis: config.srsApis,
    api: { timeoutMs: config.SRS_API_TIMEOUT_MS, retries: config.SRS_API_RETRIES, pageSize: config.SRS_API_PAGE_SIZE },
    takeoverAt: config.TAKEOVER_AT,
    log: app.log.child({ component: 'srs' }),
    now,
    dispatcher,
    statsIntervalMs
  })
  app.decorate('srsServers', servers)
  if (config.STALE_PROBE_MS !== undefined && config.STALE_PROBE_MS < probeBudget(SRS_STATS_INTERVAL_MS)) {
    app.log.warn({ STALE_PROBE_MS: config.STALE_PROBE_MS, needs: probeBudget(SRS_STATS_INTERVAL_MS) },
      `STALE_PROBE_MS is shorter than two of SRS's ${SRS_STATS_INTERVAL_MS} ms counter refreshes: takeover-stale may run out of time before it can tell, and then evicts nobody`)
  }
  app.afterStart(() => {
    // The versions not read yet (an embedding may have read them already).
    for (const node of servers.nodes) if (node.version === undefined) void servers.discover(node)
  })
  app.addHook('onClose', async () => { await servers.close() })
}, { name: 'srs-api' })
