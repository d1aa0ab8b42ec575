import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { MemoryEventStore, type EventStore } from './events.js'
import { createMetrics, type Metrics } from './metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    eventLog: EventStore
    metrics: Metrics
  }
}

/** The settings the operations plugin reads. */
export type OperationsConfig = Pick<Config, 'EVENTS_MAX'>

export interface OperationsPluginOptions {
  config: OperationsConfig
  now: () => number
  /** The events log; by default in process (EVENTS_MAX entries). */
  events?: EventStore | undefined
  /** Names this replica in the events it logs (several may share one log); by default host, pid and a random part. */
  replica?: string
}

/**
 * What operators watch: the events log (fed by the publisher events) and the metrics. Registered
 * before the routes, so its onResponse hook sees every hook's outcome.
 */
export default fp<OperationsPluginOptions>(async (app, { config, events, replica = `${hostname()}:${process.pid}:${randomBytes(2).toString('hex')}` }) => {
  const log = events ?? new MemoryEventStore(config.EVENTS_MAX)
  app.publisherEvents.on((e) => {
    log.add({ ...e, replica }).catch((err: unknown) => {
      /* c8 ignore next */
      app.log.warn({ err: (err as Error).message }, 'could not add to the events log')
    })
  })
  app.decorate('eventLog', log)
  app.decorate('metrics', createMetrics(app))
}, { name: 'operations', dependencies: ['publishers', 'recordings'] })
