import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Config } from '../src/config.js'
import { Codes } from '../src/errors.js'
import { READY_SHARE } from '../src/forward/plugin.js'

/**
 * GET /healthz: the process is up. GET /readyz: SRS's API answers (when SRS is configured), so
 * does ZLMediaKit's (when it is), and the recordings index takes a write (with PostgreSQL out of
 * reach: the spool does, with room); 503 naming the check that failed otherwise; the spool's depth
 * and age; a Redis or PostgreSQL outage named under `degraded` without failing. GET /metrics: Prometheus text.
 * Open to every caller (no stream names or secrets in them), as probes and scrapers expect.
 */

const Check = Type.Object({ ok: Type.Boolean(), msg: Type.Union([Type.String(), Type.Null()]) })
const Ready = Type.Object({
  code: Type.Integer(),
  ready: Type.Boolean(),
  /** Names of the checks that failed. */
  failed: Type.Array(Type.String()),
  checks: Type.Object({ srs: Check, zlm: Check, store: Check, redis: Type.Optional(Check) }),
  /**
   * Checks that failed without making the replica unready: Redis (with REDIS_URL), whose outage
   * every replica sees at once and which each survives on its local state; PostgreSQL (with
   * DATABASE_URL, as `postgres`), out of reach while the spool takes the recordings.
   */
  degraded: Type.Array(Type.String()),
  /** Each media server's answer (a kind's check fails only when none of its servers answers). */
  servers: Type.Array(Type.Object({ api: Type.String(), server: Type.Union([Type.String(), Type.Null()]), ok: Type.Boolean(), msg: Type.String() })),
  /** The spool in front of PostgreSQL (null with SQLite): recordings waiting, and how long the oldest has. */
  spool: Type.Union([Type.Object({ depth: Type.Integer(), oldest_age_ms: Type.Union([Type.Integer(), Type.Null()]), max: Type.Integer() }), Type.Null()]),
  /** Forwarding to the platform (docs/forwarding.md; null without FORWARD_URL): the outbox, failing readiness at half its bound or when it takes no write. */
  forward: Type.Union([Type.Object({
    depth: Type.Integer(),
    oldest_age_ms: Type.Union([Type.Integer(), Type.Null()]),
    dead: Type.Integer(),
    rows: Type.Integer(),
    max: Type.Integer(),
    msg: Type.String()
  }), Type.Null()])
})

export interface HealthRoutesOptions {
  config: Config
  now: () => number
}

const health: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { config, now }) => {
  app.get('/healthz', { schema: { response: { 200: Type.Object({ code: Type.Integer(), status: Type.String() }) } } }, async () => {
    return { code: 0, status: 'up' }
  })

  app.get('/readyz', { schema: { response: { 200: Ready, 503: Ready } } }, async (_req, reply) => {
    const deadline = now() + config.READY_TIMEOUT_MS
    const [servers, zlmServers, store, forward] = await Promise.all([
      Promise.all(app.srsServers.nodes.map(async (n) => {
        const check = await n.api.versions({ deadline }).then(
          (v) => ({ ok: true, msg: `SRS ${v.version} at ${n.url}` }),
          (err: Error) => ({ ok: false, msg: `SRS's API at ${n.url} failed: ${err.message}` })
        )
        return { api: n.url, server: n.api.status.server ?? null, ...check }
      })),
      // A ZLMediaKit is named by its mediaServerId, or by its API's URL until that is known.
      Promise.all(app.zlmServers.nodes.map(async (n) => await n.api.serverConfig({ deadline }).then(
        () => ({ api: n.url, server: n.server.id, ok: true, msg: `ZLMediaKit ${n.server.id} at ${n.url}` }),
        (err: Error) => ({ api: n.url, server: n.server.id, ok: false, msg: `ZLMediaKit's API at ${n.url} failed: ${err.message}` })
      ))),
      app.recordings.readiness(),
      forwardCheck(app, now())
    ])
    // A replica that reaches no server of a kind cannot take anything over there; one server of several down is shown, not fatal.
    const srs = kindCheck(servers, 'no SRS (SRS_API_URL=none)')
    const zlm = kindCheck(zlmServers, 'no ZLMediaKit (ZLM_API_URL is unset)')
    const failed = [...(srs.ok ? [] : ['srs']), ...(zlm.ok ? [] : ['zlm']), ...(store.ok ? [] : ['store']), ...(forward === null || forward.ok ? [] : ['forward'])]
    const redis = app.redis?.check()
    const degraded = [...(redis === undefined || redis.ok ? [] : ['redis']), ...(store.degraded === undefined ? [] : [store.degraded])]
    const s = app.recordings.spool()
    const age = app.recordings.spoolAgeMs()
    const spool = s === null ? null : { depth: s.depth, oldest_age_ms: age === null ? null : Math.round(age), max: s.max }
    return await reply.code(failed.length === 0 ? 200 : 503).send({
      code: failed.length === 0 ? Codes.OK : Codes.NOT_READY, ready: failed.length === 0, failed, degraded, checks: { srs, zlm, store, redis }, servers: [...servers, ...zlmServers], spool, forward: forward === null ? null : forward.state
    })
  })

  app.get('/metrics', async (_req, reply) => {
    const text = await app.metrics.registry.metrics()
    return await reply.type(app.metrics.registry.contentType).send(text)
  })
}

/** The forwarding outbox: takes a write, and holds less than READY_SHARE of FORWARD_OUTBOX_MAX; null without forwarding. */
async function forwardCheck (app: FastifyInstance, now: number): Promise<{ ok: boolean, state: { depth: number, oldest_age_ms: number | null, dead: number, rows: number, max: number, msg: string } } | null> {
  const f = app.forward
  if (f === undefined) return null
  const age = f.delivery.oldestAgeMs()
  const { rows, dead } = f.outbox.counts
  const base = { depth: f.delivery.depth, oldest_age_ms: age === null ? null : Math.round(age), dead, rows, max: f.outbox.max }
  try {
    await f.outbox.touch(now)
  } catch (err) {
    return { ok: false, state: { ...base, msg: `the forwarding outbox takes no write: ${(err as Error).message}` } }
  }
  if (rows >= f.outbox.max * READY_SHARE) {
    return { ok: false, state: { ...base, msg: `the forwarding outbox holds ${rows} of FORWARD_OUTBOX_MAX=${f.outbox.max}: the platform is not taking notifications` } }
  }
  return { ok: true, state: { ...base, msg: 'ok' } }
}

/** A kind of server is ready when one of its servers answers, or when none is configured. */
function kindCheck (servers: Array<{ ok: boolean, msg: string }>, none: string): { ok: boolean, msg: string } {
  if (servers.length === 0) return { ok: true, msg: none }
  return { ok: servers.some((x) => x.ok), msg: servers.map((x) => x.msg).join('; ') }
}

export default health
