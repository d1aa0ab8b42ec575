import fp from 'fastify-plugin'
import type { Dispatcher } from 'undici'
import type { Config } from '../config.js'
import { SrsApi } from './api.js'

declare module 'fastify' {
  interface FastifyInstance {
    srs: SrsApi
  }
}

export interface SrsPluginOptions {
  config: Config
  dispatcher?: Dispatcher | undefined
  now: () => number
}

/** SRS's HTTP API client, shared by the app, closed with it. */
export default fp<SrsPluginOptions>(async (app, { config, dispatcher, now }) => {
  const srs = SrsApi.fromConfig(config, { dispatcher, now })
  app.decorate('srs', srs)
  app.addHook('onClose', async () => { await srs.close() })
}, { name: 'srs-api' })
