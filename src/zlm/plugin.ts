import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { Dispatcher } from 'undici'
import type { Config } from '../config.js'
import { StreamReleases } from './releases.js'
import { RtpServers } from './rtp.js'
import { hookBudgetOf, DEFAULT_HOOK_TIMEOUT_S, ZlmServers } from './servers.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The ZLMediaKit servers (ZLM_API_URL). */
    zlmServers: ZlmServers
    zlm: ZlmServices
  }
}

export interface ZlmServices {
  releases: StreamReleases
  rtp: RtpServers
  /** Runs work that no reply waits for (a release check, learning a secret); the app's close waits for it. It must not throw. */
  background: (work: Promise<unknown>) => void
  /** Checks every server's kept RTP servers against its map; never throws. */
  reconcileRtp: () => Promise<void>
  /** Resolves once no background work is running. */
  idle: () => Promise<void>
}

/** The settings the ZLMediaKit plugin reads. */
export type ZlmPluginConfig = Pick<Config, 'RECONCILE_INTERVAL_MS' | 'TAKEOVER_TIMEOUT_MS' | 'ZLM_API_RETRIES' | 'ZLM_API_TIMEOUT_MS' | 'ZLM_RTP_OPEN_TIMEOUT_MS' | 'ZLM_SECRET' | 'zlmApis'>

export interface ZlmPluginOptions {
  config: ZlmPluginConfig
  now: () => number
  dispatcher?: Dispatcher | undefined
  /** ZLMediaKit's counter refresh interval; injected for tests. */
  statsIntervalMs?: number | undefined
}

/**
 * The ZLMediaKit servers (ZLM_API_URL) and their API clients, the release checks of their
 * streams, and their RTP servers. The servers join the media-server directory, so the takeover
 * core, reconciliation and the operator API reach them; their identities are read once the
 * server listens, without holding up the first hooks.
 */
export default fp<ZlmPluginOptions>(async (app, { config, now, dispatcher, statsIntervalMs }) => {
  const log = app.log.child({ component: 'zlm' })
  const servers = new ZlmServers({
    urls: config.zlmApis,
    secret: config.ZLM_SECRET,
    timeoutMs: config.ZLM_API_TIMEOUT_MS,
    retries: config.ZLM_API_RETRIES,
    log,
    now,
    dispatcher,
    statsIntervalMs
  })
  app.decorate('zlmServers', servers)
  app.mediaServers.add(servers)

  const releases = new StreamReleases({
    store: app.publishers.store,
    emit: (topics) => app.publishers.released(topics),
    log,
    now,
    timeoutMs: config.ZLM_API_TIMEOUT_MS
  })
  const rtp = new RtpServers({
    log,
    now,
    openTimeoutMs: config.ZLM_RTP_OPEN_TIMEOUT_MS,
    event: (e) => {
      app.eventLog.add(e).catch((err: unknown) => {
        /* c8 ignore next */
        log.warn({ err: (err as Error).message }, 'could not add to the events log')
      })
    }
  })
  const pending = new Set<Promise<unknown>>()
  const services: ZlmServices = {
    releases,
    rtp,
    background: (work) => {
      pending.add(work)
      void work.finally(() => pending.delete(work))
    },
    reconcileRtp: async () => {
      await Promise.all(servers.nodes.map(async (n) => {
        try {
          await rtp.reconcile(n.server)
        } catch (err) {
          log.warn({ server: n.server.id, err: (err as Error).message }, 'could not check the kept RTP servers against ZLMediaKit\'s map; will try again')
        }
      }))
    },
    idle: async () => {
      while (pending.size > 0) await Promise.all([...pending])
      await releases.idle()
    }
  }
  app.decorate('zlm', services)

  new Counter({ // eslint-disable-line no-new
    name: 'srs_hooks_rtp_server_opens_total',
    help: 'RTP server opens on ZLMediaKit, by outcome: opened, existing (the same one was there), reopened (another was closed first), port_in_use, conflict, failed (the API); restored: kept ones reopened after a timeout or a vanishing.',
    labelNames: ['outcome'] as const,
    registers: [app.metrics.registry],
    collect () {
      this.reset()
      const c = rtp.counters
      this.inc({ outcome: 'opened' }, c.opened)
      this.inc({ outcome: 'existing' }, c.existing)
      this.inc({ outcome: 'reopened' }, c.reopened)
      this.inc({ outcome: 'port_in_use' }, c.portInUse)
      this.inc({ outcome: 'conflict' }, c.conflicts)
      this.inc({ outcome: 'failed' }, c.failed)
      this.inc({ outcome: 'restored' }, c.restored)
    }
  })

  if (servers.size > 0 && config.TAKEOVER_TIMEOUT_MS > hookBudgetOf(DEFAULT_HOOK_TIMEOUT_S * 1000)) {
    app.log.warn({ TAKEOVER_TIMEOUT_MS: config.TAKEOVER_TIMEOUT_MS, hookBudgetMs: hookBudgetOf(DEFAULT_HOOK_TIMEOUT_S * 1000) },
      'TAKEOVER_TIMEOUT_MS is longer than ZLMediaKit waits for on_publish (hook.timeoutSec, 10 s by default): takeovers on ZLMediaKit are cut to its hook timeout')
  }

  let timer: NodeJS.Timeout | undefined
  app.afterStart(() => {
    if (servers.size === 0) return
    // The servers whose identity is not known yet (an embedding may have read it already).
    for (const node of servers.nodes) if (node.mediaServerId === undefined) void servers.discover(node)
    if (config.RECONCILE_INTERVAL_MS > 0) {
      timer = setInterval(() => { services.background(services.reconcileRtp()) }, config.RECONCILE_INTERVAL_MS)
      timer.unref()
    }
  })
  app.addHook('onClose', async () => {
    clearInterval(timer)
    await services.idle()
    await servers.close()
  })
}, { name: 'zlm', dependencies: ['publishers', 'operations'] })
