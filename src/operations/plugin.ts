import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { EventLog } from './events.js'
import { createMetrics, type Metrics } from './metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    eventLog: EventLog
    metrics: Metrics
  }
}

export interface OperationsPluginOptions {
  config: Config
  now: () => number
}

/**
 * What operators watch: the events log (a ring buffer fed by the publisher events) and the
 * metrics. Registered before the routes, so its onResponse hook sees every hook's outcome.
 */
export default fp<OperationsPluginOptions>(async (app, { config, now }) => {
  const events = new EventLog(config.EVENTS_MAX)
  app.publisherEvents.on('publisher', (e) => { events.add(e, now()) })
  app.publisherEvents.on('correction', (c) => { events.add({ ...c, type: 'correction' }, now()) })
  app.decorate('eventLog', events)
  app.decorate('metrics', createMetrics(app))
}, { name: 'operations', dependencies: ['publishers', 'recordings'] })
