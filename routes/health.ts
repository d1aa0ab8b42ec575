import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Config } from '../src/config.js'
import { Codes } from '../src/errors.js'

/**
 * GET /healthz: the process is up. GET /readyz: SRS's API answers and the recordings index takes a
 * write (with PostgreSQL out of reach: the spool does, with room); 503 naming the check that failed
 * otherwise; the spool's depth and age. GET /metrics: Prometheus text.
 * Open to every caller (no stream names or secrets in them), as probes and scrapers expect.
 */

const Check = Type.Object({ ok: Type.Boolean(), msg: Type.Union([Type.String(), Type.Null()]) })
const Ready = Type.Object({
  code: Type.Integer(),
  ready: Type.Boolean(),
  /** Names of the checks that failed. */
  failed: Type.Array(Type.String()),
  checks: Type.Object({ srs: Check, store: Check }),
  /** The spool in front of PostgreSQL (null with SQLite): recordings waiting, and how long the oldest has. */
  spool: Type.Union([Type.Object({ depth: Type.Integer(), oldest_age_ms: Type.Union([Type.Integer(), Type.Null()]), max: Type.Integer() }), Type.Null()])
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
    const [srs, store] = await Promise.all([
      app.srs.versions({ deadline: now() + config.READY_TIMEOUT_MS }).then(
        (v) => ({ ok: true, msg: `SRS ${v.version} at ${config.SRS_API_URL}` }),
        (err: Error) => ({ ok: false, msg: `SRS's API at ${config.SRS_API_URL} failed: ${err.message}` })
      ),
      app.recordings.readiness()
    ])
    const failed = [...(srs.ok ? [] : ['srs']), ...(store.ok ? [] : ['store'])]
    const s = app.recordings.spool()
    const age = app.recordings.spoolAgeMs()
    const spool = s === null ? null : { depth: s.depth, oldest_age_ms: age === null ? null : Math.round(age), max: s.max }
    return await reply.code(failed.length === 0 ? 200 : 503).send({ code: failed.length === 0 ? Codes.OK : Codes.NOT_READY, ready: failed.length === 0, failed, checks: { srs, store }, spool })
  })

  app.get('/metrics', async (_req, reply) => {
    const text = await app.metrics.registry.metrics()
    return await reply.type(app.metrics.registry.contentType).send(text)
  })
}

export default health
