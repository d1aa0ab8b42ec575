import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { FlapGuard } from '../publishers/flap.js'
import { SRS_STATS_INTERVAL_MS } from '../publishers/service.js'
import { AuthService, checkAuthConfig } from './service.js'

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService
  }
}

export interface AuthPluginOptions {
  config: Config
  now: () => number
}

/**
 * Authentication and takeover guards: the AuthService (hook callers, publish and play), the key
 * file's polling, and the publisher service's staleness probe and flap guard.
 */
export default fp<AuthPluginOptions>(async (app, { config, now }) => {
  const log = app.log.child({ component: 'auth' })
  const auth = new AuthService(checkAuthConfig(config), { now, log })
  app.decorate('auth', auth)
  if (config.STALE_PROBE_MS <= SRS_STATS_INTERVAL_MS) {
    log.warn({ STALE_PROBE_MS: config.STALE_PROBE_MS }, `STALE_PROBE_MS is not longer than SRS's ${SRS_STATS_INTERVAL_MS} ms statistics interval: takeover-stale may take a sending publisher for a stalled one`)
  }
  app.publishers.configure({
    staleProbeMs: config.STALE_PROBE_MS,
    flap: new FlapGuard({ max: config.FLAP_MAX, windowMs: config.FLAP_WINDOW_MS, cooldownMs: config.FLAP_COOLDOWN_MS, now })
  })
  // Loaded before the first hook is answered; polled until the app closes.
  if (auth.keyFile !== undefined) {
    const file = auth.keyFile
    await file.start()
    app.addHook('onClose', async () => { file.stop() })
  }
}, { name: 'auth', dependencies: ['publishers'] })
