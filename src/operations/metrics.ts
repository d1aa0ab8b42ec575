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
  /** Counts a hook answered by the hook front (Fastify's are counted by an onResponse hook). */
  hookAnswered: (action: string, outcome: string, ms: number) => void
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
  // Each route's action label, found once per route (null: not a hook route).
  const actions = new Map<string | undefined, string | null>()
  const actionOf = (route: string | undefined): string | null => {
    let action = actions.get(route)
    if (action === undefined) {
      // SRS's hooks by name (on_publish); ZLMediaKit's as zlm/on_publish (zlm/other for a hook it does not know).
      action = route === undefined || !/\/callback\/(zlm\/)?on_/.test(route) ? null : route.slice(route.indexOf('/callback/') + 10).replace('on_*', 'other')
      actions.set(route, action)
    }
    return action
  }
  const hookAnswered = (action: string, outcome: string, ms: number): void => {
    hooks.inc({ action, outcome })
    latency.observe({ action }, ms / 1000)
  }
  app.addHook('onResponse', (req, reply, done) => {
    const action = actionOf(req.routeOptions.url)
    // Every callback path sets hookLog (its handler, or the error handler); 'unknown' guards a plugin answering first.
    /* c8 ignore next */
    if (action !== null) hookAnswered(action, req.hookLog?.outcome ?? 'unknown', reply.elapsedTime)
    done()
  })

  const takeovers = new Counter({
    name: PREFIX + 'takeovers_total',
    help: 'Takeovers: released (the stale publisher was evicted and released) or timeout; by path (publish: inside on_publish, connect: inside SRS\'s on_connect, deferred: after a client refused by SRS\'s publish token left) and server.',
    labelNames: ['outcome', 'path', 'server'] as const,
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
    labelNames: ['outcome', 'server'] as const,
    registers
  })
  const refusals = new Counter({
    name: PREFIX + 'publish_refusals_total',
    help: 'Publish refusals (on_publish, and on_connect on SRS >= 7.0.62), by reply code.',
    labelNames: ['code'] as const,
    registers
  })
  const apiErrors = new Counter({
    name: PREFIX + 'srs_api_errors_total',
    help: 'Failed calls to a media server\'s HTTP API on the publish path, by kind (unreachable, timeout, unauthorized, http_status, bad_body, api_code) and server.',
    labelNames: ['kind', 'server'] as const,
    registers
  })
  const exhausted = new Counter({
    name: PREFIX + 'bound_exhausted_total',
    help: 'Publishes allowed because the bound ran out before a decision (waiting for the stream\'s lock, or for the server): not a failure of the server.',
    registers
  })
  const corrections = new Counter({
    name: PREFIX + 'reconcile_corrections_total',
    help: 'Publisher-table corrections made by reconciliation with a server, by kind (added, replaced, dropped) and server.',
    labelNames: ['kind', 'server'] as const,
    registers
  })
  app.publisherEvents.on((e) => {
    switch (e.type) {
      case 'takeover':
      case 'takeover-timeout':
        takeovers.inc({ outcome: e.type === 'takeover' ? 'released' : 'timeout', path: e.path, server: e.server })
        wait.observe({ via: e.via }, e.waitMs / 1000)
        break
      case 'eviction':
        evictions.inc({ outcome: e.via === 'timeout' ? 'timeout' : 'released', server: e.server })
        wait.observe({ via: e.via }, e.waitMs / 1000)
        break
      case 'refusal':
        refusals.inc({ code: String(e.code) })
        break
      case 'api-failure':
        apiErrors.inc({ kind: e.kind, server: e.server })
        break
      case 'bound-exhausted':
        exhausted.inc()
        break
      case 'correction':
        corrections.inc({ kind: e.kind, server: e.server })
        break
    }
  })
  const redis = app.redis
  if (redis !== undefined) {
    new Gauge({ // eslint-disable-line no-new
      name: PREFIX + 'redis_up',
      help: '1 while Redis (REDIS_URL) answers and the shared state is used; 0 while this replica uses its local state.',
      registers,
      collect () {
        this.set(redis.up ? 1 : 0)
      }
    })
    new Counter({ // eslint-disable-line no-new
      name: PREFIX + 'redis_failures_total',
      help: 'Redis calls that failed (down, slow past REDIS_TIMEOUT_MS, or an error) and fell back to local state, by operation.',
      labelNames: ['op'] as const,
      registers,
      collect () {
        this.reset()
        for (const [op, n] of Object.entries(redis.failures)) this.inc({ op }, n)
      }
    })
    new Counter({ // eslint-disable-line no-new
      name: PREFIX + 'redis_degraded_total',
      help: 'Uses of a degraded mode while Redis could not be reached, by operation (lock: a shared lock taken as this replica\'s own).',
      labelNames: ['op'] as const,
      registers,
      collect () {
        this.reset()
        for (const [op, n] of Object.entries(redis.degraded)) this.inc({ op }, n)
      }
    })
  }
  new Counter({ // eslint-disable-line no-new
    name: PREFIX + 'unknown_server_hooks_total',
    help: 'Hooks from a server_id that none of the configured servers has (answered per FAIL_MODE, nobody evicted).',
    registers,
    collect () {
      this.reset()
      this.inc(app.srsServers.unknownHooks + app.zlmServers.unknownHooks)
    }
  })

  const edge = app.edge
  for (const [name, help, count] of [
    ['unknown_callbacks_total', 'Requests to a callback path no hook has (a typo in srs.conf\'s hook URLs such as on_pubish); each is logged with its path.', () => edge.unknownCallbacks],
    ['request_timeouts_total', 'Requests whose headers and body did not arrive within REQUEST_TIMEOUT_MS: answered 408 and closed.', () => edge.timedOut],
    ['connections_dropped_total', 'Connections closed at once because MAX_CONNECTIONS were held.', () => edge.dropped]
  ] as const) {
    new Counter({ // eslint-disable-line no-new
      name: PREFIX + name,
      help,
      registers,
      collect () {
        this.reset()
        this.inc(count())
      }
    })
  }

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
  return { registry, hookAnswered }
}
