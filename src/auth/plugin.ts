import fp from 'fastify-plugin'
import type { Config } from '../config.js'
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
 * Authentication: the AuthService (hook callers, publish and play) and the key file's polling.
 */
export default fp<AuthPluginOptions>(async (app, { config, now }) => {
  const log = app.log.child({ component: 'auth' })
  const auth = new AuthService(checkAuthConfig(config), { now, log })
  app.decorate('auth', auth)
  // Loaded before the first hook is answered; polled until the app closes.
  if (auth.keyFile !== undefined) {
    const file = auth.keyFile
    await file.start()
    app.addHook('onClose', async () => { file.stop() })
  }
}, { name: 'auth' })
