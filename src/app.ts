import Fastify, { LogController, type FastifyBaseLogger, type FastifyError } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import admin from '../routes/admin.js'
import events from '../routes/events.js'
import callbacks from '../routes/callbacks.js'
import consoleRoutes from '../routes/console.js'
import auth from './auth/plugin.js'
import { trustProxyOf } from './auth/settings.js'
import health from '../routes/health.js'
import forward from './forward/plugin.js'
import forwardRoutes from '../routes/forward.js'
import type { Config } from './config.js'
import { failureOf, Codes, type AppError } from './errors.js'
import { capConnections, clientErrorHandler, serverOptionsOf, type EdgeCounters } from './http/edge.js'
import { ADMIN_PREFIXES } from './http/operators.js'
import { backgroundStart } from './http/start.js'
import { lazySerializerCompiler, validatorCompiler } from './http/validation.js'
import { createLogger, LazyChildLogger } from './logger.js'
import operations from './operations/plugin.js'
import publishers from './publishers/plugin.js'
import type { EventStore } from './operations/events.js'
import type { FailureCounts } from './auth/limiter.js'
import type { PublisherState } from './publishers/plugin.js'
import recordings from './recordings/plugin.js'
import redis from './redis/plugin.js'
import type { StatFn } from './recordings/service.js'
import type { RecordingStore } from './recordings/store.js'
import srs from './srs/plugin.js'
import zlm from './zlm/plugin.js'
import zlmCallbacks from '../routes/zlm-callbacks.js'
import zlmRtp from '../routes/zlm-rtp.js'
import openapi, { swagger, swaggerOptions } from '../routes/openapi.js'

/** Parts a test (or another embedding) may supply instead of the defaults. */
export interface AppDeps {
  logger?: Logger
  /** undici dispatcher for SRS's API; by default a Pool per server of SRS_API_URL. */
  dispatcher?: Dispatcher
  now?: () => number
  /** Shared state of the publisher side (table, locks, signals, flap history); in process by default. */
  state?: PublisherState
  /** Failed authorisations per IP; in process by default. */
  failures?: FailureCounts
  /** The operator's events log; in process by default. */
  events?: EventStore
  /** The recordings index; by default SQLite in DATA_DIR. */
  recordings?: RecordingStore
  /** How recorded files are examined; by default fs.promises.stat. */
  stat?: StatFn
  /** How often SRS refreshes its byte counters (3000 ms in SRS); for a faster simulator in tests. */
  srsStatsIntervalMs?: number
  /** The same for ZLMediaKit (1000 ms); for tests. */
  zlmStatsIntervalMs?: number
}

/** Where SRS's hooks arrive: directly, and through a gateway that strips `/admin-api`. */
export const CALLBACK_PREFIXES = ['/admin-api/video/camera/callback', '/video/camera/callback'] as const

/** How long after listening a start's background work waits for the first request at most (http/start.ts). */
const START_GRACE_MS = 100

export async function buildApp (config: Config, deps: AppDeps = {}) {
  const now = deps.now ?? Date.now
  const edge: EdgeCounters = { unknownCallbacks: 0, timedOut: 0, dropped: 0 }
  // Set once the instance exists; a client error can only come once it listens.
  let log: FastifyBaseLogger | undefined
  const app = Fastify({
    loggerInstance: (deps.logger ?? createLogger(config.LOG_LEVEL)) as FastifyBaseLogger,
    // One line per hook is written by the callbacks' onResponse hook instead.
    logController: new LogController({ disableRequestLogging: true }),
    // A request's logger is made when it first logs (most never do).
    childLoggerFactory: (logger, bindings, options) => new LazyChildLogger(logger as unknown as Logger, bindings, options as Record<string, unknown>) as unknown as FastifyBaseLogger,
    bodyLimit: config.BODY_LIMIT,
    // A request's headers and body within REQUEST_TIMEOUT_MS, or 408 and closed (http/edge.ts).
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    http: serverOptionsOf(config.REQUEST_TIMEOUT_MS),
    clientErrorHandler: clientErrorHandler(edge, config.REQUEST_TIMEOUT_MS, () => log!),
    // Whose X-Forwarded-For sets request.ip (HOOK_ALLOW checks it): TRUST_PROXY's proxies only.
    trustProxy: trustProxyOf(config.TRUST_PROXY),
    return503OnClosing: true
  }).withTypeProvider<TypeBoxTypeProvider>()
  log = app.log
  app.decorate('edge', edge)
  capConnections(app, config.MAX_CONNECTIONS, now)
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(lazySerializerCompiler())
  app.decorateRequest('hookLog', null)
  backgroundStart(app, START_GRACE_MS)
  // Gateways and Java clients send `Content-Type: application/json` on bodyless requests (a
  // DELETE): an empty body is no body. A route that needs one still refuses it by its schema.
  const json = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') done(null, undefined)
    else json(req, body as string, done)
  })

  // A hook's failure is answered by its own pipeline (http/hooks.ts), and said in its line.
  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    const failed = failureOf(err, req.log, { method: req.method, url: req.url.split('?')[0], caller: req.ip })
    return reply.code(failed.status).send(failed.reply)
  })
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!
    if (CALLBACK_PREFIXES.some((p) => path.startsWith(p + '/'))) {
      // A hook URL in srs.conf with a typo (on_pubish): SRS's every such hook fails, so say which.
      edge.unknownCallbacks++
      req.log.warn({ method: req.method, path: path.slice(0, 512), caller: req.ip }, 'request to an unknown callback path; check the hook URLs in srs.conf')
    }
    return reply.code(404).send({ code: Codes.NOT_FOUND, msg: `no route ${req.method} ${req.url.split('?')[0]}` })
  })

  // While closing, answer what is in flight and close its connection, so a keep-alive client
  // (a gateway) does not hold the shutdown open.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  // Callback style, as the other hooks every request runs: no promise per request.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })

  // Before the routes: it collects their schemas as they are added (routes/openapi.ts).
  await app.register(swagger, swaggerOptions())
  await app.register(srs, { config, dispatcher: deps.dispatcher, now, statsIntervalMs: deps.srsStatsIntervalMs })
  await app.register(redis, { config, now })
  const shared = app.sharedState
  await app.register(publishers, { config, state: deps.state ?? shared?.publishers, now })
  await app.register(auth, { config, now, failures: deps.failures ?? shared?.failures })
  await app.register(recordings, { config, store: deps.recordings, stat: deps.stat, now })
  await app.register(operations, { config, now, events: deps.events ?? shared?.events })
  await app.register(zlm, { config, now, statsIntervalMs: deps.zlmStatsIntervalMs })
  await app.register(forward, { config, now })
  for (const prefix of CALLBACK_PREFIXES) await app.register(callbacks, { prefix, config })
  for (const prefix of CALLBACK_PREFIXES) await app.register(zlmCallbacks, { prefix: `${prefix}/zlm`, config })
  for (const prefix of ADMIN_PREFIXES) await app.register(admin, { prefix, config, now })
  for (const prefix of ADMIN_PREFIXES) await app.register(zlmRtp, { prefix, config })
  for (const prefix of ADMIN_PREFIXES) await app.register(forwardRoutes, { prefix, config, now })
  for (const prefix of ADMIN_PREFIXES) await app.register(openapi, { prefix })
  await app.register(consoleRoutes, { config, now })
  for (const prefix of ADMIN_PREFIXES) await app.register(events, { prefix, config })
  await app.register(health, { config, now })
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
