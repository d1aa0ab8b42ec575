import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Config } from '../config.js'
import type { PlatformCheck } from '../publishers/media.js'
import { PlatformClient, type Target } from './client.js'
import { Delivery, type DeliveryResult, type ForwardDelivery } from './delivery.js'
import { Outbox, type ForwardOutbox } from './outbox.js'
import type { SharedQueueConfig } from './pg-delivery.js'
import { ForwardService } from './service.js'
import { durationMs, headersOf } from './settings.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Forwarding to the platform's callback; undefined without FORWARD_URL and FORWARD_ZLM_URL. */
    forward: ForwardService | undefined
  }
  interface FastifyRequest {
    /** The hook's body as it arrived (forwarded unchanged). */
    rawBody: string | null
    /** The platform's verdict on this hook (forwarded decision hooks). */
    platform: PlatformCheck | null
  }
}

/** The settings the forwarding plugin reads (and the shared queue's, with DATABASE_URL). */
export type ForwardConfig = SharedQueueConfig & Pick<Config, 'DATABASE_URL' | 'DATA_DIR' | 'FORWARD_CONCURRENCY' | 'FORWARD_FAIL_MODE' | 'FORWARD_HEADERS' | 'FORWARD_MAX_AGE' | 'FORWARD_OUTBOX_MAX' | 'FORWARD_RETRY_MAX_MS' | 'FORWARD_TIMEOUT_MS' | 'FORWARD_URL' | 'FORWARD_ZLM_URL'>

export interface ForwardPluginOptions {
  config: ForwardConfig
  now: () => number
}

/** The outbox holding this share of FORWARD_OUTBOX_MAX makes /readyz fail: long before notifications are refused. */
export const READY_SHARE = 0.5
/** How long after the last hook was answered deliveries still give way to hooks (the next is likely near). */
const HOOKS_QUIET_MS = 100
/** Connections to the platform beyond FORWARD_CONCURRENCY, for decision hooks. */
const DECISION_CONNECTIONS = 64

/**
 * Forwarding of hooks to the platform (FORWARD_URL, FORWARD_ZLM_URL): the service the callback
 * routes wrap their handlers with, the outbox in DATA_DIR and its delivery, their metrics.
 */
export default fp<ForwardPluginOptions>(async (app, { config, now }) => {
  app.decorateRequest('rawBody', null)
  app.decorateRequest('platform', null)
  if (config.FORWARD_URL === undefined && config.FORWARD_ZLM_URL === undefined) {
    app.decorate('forward', undefined)
    return
  }
  const log = app.log.child({ component: 'forward' })
  const headers = headersOf(config.FORWARD_HEADERS)!
  // A connection for each delivery and DECISION_CONNECTIONS more: a decision hook never waits for a drain's deliveries.
  const connections = config.FORWARD_CONCURRENCY + DECISION_CONNECTIONS
  const clients: Partial<Record<Target, PlatformClient>> = {}
  if (config.FORWARD_URL !== undefined) clients.srs = new PlatformClient({ url: config.FORWARD_URL, headers, connections })
  if (config.FORWARD_ZLM_URL !== undefined) clients.zlm = new PlatformClient({ url: config.FORWARD_ZLM_URL, headers, connections })
  // Requests being answered (hooks, mostly), and when the last one was: while there are any, and
  // for HOOKS_QUIET_MS after, deliveries give way to them (delivery.ts).
  let answering = 0
  let answeredAt = -Infinity
  app.addHook('onRequest', (_req, reply, done) => {
    answering++
    // 'close' comes once per response, sent or cut off.
    reply.raw.once('close', () => {
      answering--
      answeredAt = performance.now()
    })
    done()
  })
  const shared = config.DATABASE_URL === undefined ? undefined : await import('./pg-delivery.js')

  const registers = [app.metrics.registry]
  const deliveries = new Counter({
    name: 'srs_hooks_forward_deliveries_total',
    help: 'Attempts to deliver a notification to the platform, by target (srs, zlm) and result (delivered, failed, refused, dead).',
    labelNames: ['target', 'result'] as const,
    registers
  })
  const decisions = new Counter({
    name: 'srs_hooks_forward_decisions_total',
    help: 'Decision hooks asked of the platform, by target and outcome (allowed, refused, failed-open, failed-closed).',
    labelNames: ['target', 'outcome'] as const,
    registers
  })
  const latency = new Histogram({
    name: 'srs_hooks_forward_platform_seconds',
    help: 'The platform\'s time to answer, by target and kind (decision, notification).',
    labelNames: ['target', 'kind'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers
  })
  const suppressed = new Counter({
    name: 'srs_hooks_forward_not_forwarded_total',
    help: 'on_unpublish/on_close of a publisher evicted by a takeover, not forwarded (the platform keeps the newcomer online).',
    labelNames: ['action'] as const,
    registers
  })

  const common = {
    clients,
    concurrency: config.FORWARD_CONCURRENCY,
    timeoutMs: config.FORWARD_TIMEOUT_MS,
    maxAgeMs: durationMs(config.FORWARD_MAX_AGE),
    retryMaxMs: config.FORWARD_RETRY_MAX_MS,
    now,
    log,
    hooksBusy: () => answering > 0 || performance.now() - answeredAt < HOOKS_QUIET_MS,
    onResult: (target: Target, result: DeliveryResult, ms: number) => {
      deliveries.inc({ target, result })
      if (result !== 'dead') latency.observe({ target, kind: 'notification' }, ms / 1000)
    }
  }
  let outbox: ForwardOutbox
  let delivery: ForwardDelivery
  try {
    if (shared === undefined) {
      const local = Outbox.open({ dir: config.DATA_DIR, max: config.FORWARD_OUTBOX_MAX })
      outbox = local
      delivery = new Delivery({ ...common, outbox: local })
    } else ({ outbox, delivery } = shared.openSharedQueue(config, common))
  } catch (err) {
    throw new Error(`cannot open the forwarding outbox in DATA_DIR=${config.DATA_DIR}: ${(err as Error).message}`, { cause: err })
  }
  const service = new ForwardService({
    clients,
    outbox,
    delivery,
    timeoutMs: config.FORWARD_TIMEOUT_MS,
    failMode: config.FORWARD_FAIL_MODE,
    now,
    log,
    onDecision: (target, outcome, ms) => {
      decisions.inc({ target, outcome })
      latency.observe({ target, kind: 'decision' }, ms / 1000)
    },
    onSuppressed: (action) => { suppressed.inc({ action }) }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'srs_hooks_forward_queue_depth',
    help: 'Notifications waiting for the platform.',
    registers,
    collect () { this.set(delivery.depth) }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'srs_hooks_forward_oldest_age_seconds',
    help: 'How long the oldest waiting notification has waited (0 when none waits).',
    registers,
    collect () { this.set((delivery.oldestAgeMs() ?? 0) / 1000) }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'srs_hooks_forward_dead_letters',
    help: 'Notifications not delivered within FORWARD_MAX_AGE, kept for an operator to retry.',
    registers,
    collect () { this.set(outbox.counts.dead) }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'srs_hooks_forward_outbox_rows',
    help: `Rows in the forwarding outbox (waiting and dead) against FORWARD_OUTBOX_MAX=${config.FORWARD_OUTBOX_MAX}.`,
    registers,
    collect () { this.set(outbox.counts.rows) }
  })

  // A takeover's deferred path (SRS >= 7.0.62) asks the platform with what the client's on_connect said.
  if (clients.srs !== undefined) {
    app.publishers.deferredPlatform = (req) => service.deferredCheck({
      server: req.server.id, client: req.newcomer.id, ip: req.newcomer.ip, vhost: req.ref.vhost, app: req.ref.app, stream: req.ref.stream, key: req.ref.key
    })
  }
  app.decorate('forward', service)
  log.info({ srs: clients.srs?.where, zlm: clients.zlm?.where, rows: outbox.counts.rows, dead: outbox.counts.dead, failMode: config.FORWARD_FAIL_MODE, timeoutMs: config.FORWARD_TIMEOUT_MS }, 'forwarding hooks to the platform')
  // Once serving (the worker thread's start is no reason to hold up the first hooks): what waits in the outbox is delivered.
  let started: Promise<void> | undefined
  app.afterStart(() => {
    started = delivery.start().catch((err: unknown) => {
      log.error({ err: (err as Error).message }, 'forwarding: the outbox could not be read; notifications are kept and delivered after a restart')
    })
  })
  app.addHook('onClose', async () => {
    await started
    await delivery.stop()
    await Promise.all([outbox.close(), clients.srs?.close(), clients.zlm?.close()])
  })
}, { name: 'forward', dependencies: ['publishers', 'operations'] })
