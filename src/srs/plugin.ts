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
  const srs = new SrsApi({
    url: config.SRS_API_URL,
    auth: config.srsAuth,
    timeoutMs: config.SRS_API_TIMEOUT_MS,
    retries: config.SRS_API_RETRIES,
    pageSize: config.SRS_API_PAGE_SIZE,
    dispatcher,
    now
  })
  app.decorate('srs', srs)
  app.addHook('onClose', async () => { await srs.close() })
}, { name: 'srs-api' })
