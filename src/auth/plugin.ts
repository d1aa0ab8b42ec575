import fp from 'fastify-plugin'
import type { FailureCounts } from './limiter.js'
import { AuthService, authConfigOf, type AuthSettingsInput } from './service.js'

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService
  }
}

export interface AuthPluginOptions {
  config: AuthSettingsInput
  now: () => number
  /** Failed authorisations per IP; in process by default. */
  failures?: FailureCounts | undefined
}

/**
 * Authentication: the AuthService (hook callers, publish and play) and the key file's polling.
 */
export default fp<AuthPluginOptions>(async (app, { config, now, failures }) => {
  const log = app.log.child({ component: 'auth' })
  const auth = new AuthService(authConfigOf(config), { now, log, failures })
  app.decorate('auth', auth)
  // Loaded before the first hook is answered; polled until the app closes.
  if (auth.keyFile !== undefined) {
    const file = auth.keyFile
    await file.start()
    app.addHook('onClose', async () => { file.stop() })
  }
}, { name: 'auth' })
