import type { FastifyInstance } from 'fastify'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { registerRecordingMetrics } from '../recordings/metrics.js'

/**
 * Prometheus metrics, in a registry of the app's own (never prom-client's global one: a process,
 * or a test, may build several apps). Counts come from the hooks' own log data
 * (`request.hookLog`), the publisher events and the services' counters, so nothing is counted
 * twice or in a second way.
 */
export interface Metrics {
  registry: Registry
}

const PREFIX = 'srs_hooks_'

export function createMetrics (app: FastifyInstance): Metrics {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry, prefix: PREFIX })

  const hooks = new Counter({
    name: PREFIX + 'hooks_total',
    help: 'Hooks answered, by action and outcome (allowed, took-over, stored, bad-request...).',
    labelNames: ['action', 'outcome'] as const,
    registers
  })
  const latency = new Histogram({
    name: PREFIX + 'hook_duration_seconds',
    help: 'Time to answer a hook, by action.',
    labelNames: ['action'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30],
    registers
  })
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url
    if (route === undefined || !route.includes('/callback/on_')) return
    const action = route.slice(route.lastIndexOf('/') + 1)
    // Every callback path sets hookLog (its handler, or the error handler); 'unknown' guards a plugin answering first.
    /* c8 ignore next */
    hooks.inc({ action, outcome: req.hookLog?.outcome ?? 'unknown' })
    latency.observe({ action }, reply.elapsedTime / 1000)
  })

  const takeovers = new Counter({
    name: PREFIX + 'takeovers_total',
    help: 'Takeovers inside on_publish: released (the stale publisher was evicted and released) or timeout.',
    labelNames: ['outcome'] as const,
    registers
  })
  const wait = new Histogram({
    name: PREFIX + 'takeover_wait_seconds',
    help: 'Time from the kick to the release being seen, for takeovers and operator evictions.',
    labelNames: ['via'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10],
    registers
  })
  const evictions = new Counter({
    name: PREFIX + 'evictions_total',
    help: 'Evictions asked for by an operator or a pusher: released or timeout.',
    labelNames: ['outcome'] as const,
    registers
  })
  const refusals = new Counter({
    name: PREFIX + 'publish_refusals_total',
    help: 'on_publish refusals, by reply code.',
    labelNames: ['code'] as const,
    registers
  })
  const corrections = new Counter({
    name: PREFIX + 'reconcile_corrections_total',
    help: 'Publisher-table corrections made by reconciliation with SRS, by kind (added, replaced, dropped).',
    labelNames: ['kind'] as const,
    registers
  })
  app.publisherEvents.on('publisher', (e) => {
    switch (e.type) {
      case 'takeover':
      case 'takeover-timeout':
        takeovers.inc({ outcome: e.type === 'takeover' ? 'released' : 'timeout' })
        wait.observe({ via: e.via }, e.waitMs / 1000)
        break
      case 'eviction':
        evictions.inc({ outcome: e.via === 'timeout' ? 'timeout' : 'released' })
        wait.observe({ via: e.via }, e.waitMs / 1000)
        break
      case 'refusal':
        refusals.inc({ code: String(e.code) })
        break
    }
  })
  app.publisherEvents.on('correction', (c) => { corrections.inc({ kind: c.kind }) })

  new Counter({ // eslint-disable-line no-new
    name: PREFIX + 'srs_api_errors_total',
    help: 'Failed calls to SRS\'s HTTP API on the publish path, by kind (unreachable, timeout, unauthorized, http_status, bad_body, api_code).',
    labelNames: ['kind'] as const,
    registers,
    collect () {
      this.reset()
      for (const [kind, n] of Object.entries(app.publishers.stats.apiFailures)) this.inc({ kind }, n)
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: PREFIX + 'reconcile_failures_total',
    help: 'Reconciliation runs that failed (SRS\'s API did not answer).',
    registers,
    collect () {
      this.reset()
      this.inc(app.reconciler.failures)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: PREFIX + 'publishers',
    help: 'Entries in the publisher table.',
    registers,
    async collect () {
      this.set(await app.publishers.store.size())
    }
  })
  registerRecordingMetrics(PREFIX, registers, app.recordings)
  return { registry }
}
