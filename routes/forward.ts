import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Config } from '../src/config.js'
import { AppError, Codes } from '../src/errors.js'
import { operatorsOnly } from '../src/http/operators.js'

/**
 * The operator's view of forwarding to the platform (docs/forwarding.md), under the operator
 * API's prefixes and its access rule: GET /forwarding (the outbox and the last error per target),
 * GET /forwarding/dead (dead letters, oldest first), POST /forwarding/dead/retry (all, or `seq`).
 */

const Nullable = <T extends ReturnType<typeof Type.String>>(s: T) => Type.Union([s, Type.Null()])
const ErrorReply = Type.Object({ code: Type.Integer(), msg: Type.Union([Type.String(), Type.Null()]) })
const errors = { '4xx': ErrorReply, '5xx': ErrorReply }
const LastError = Type.Union([Type.Object({ at: Type.Integer(), action: Type.String(), error: Type.String() }), Type.Null()])

export interface ForwardRoutesOptions {
  config: Config
  now: () => number
}

const forward: FastifyPluginAsyncTypebox<ForwardRoutesOptions> = async (app, { config, now }) => {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => { done(null, undefined) })
  app.addHook('onRequest', operatorsOnly(config))
  const service = () => {
    if (app.forward === undefined) throw new AppError('hooks are not forwarded (FORWARD_URL and FORWARD_ZLM_URL are unset)', Codes.NOT_FOUND, 404)
    return app.forward
  }

  app.get('/forwarding', {
    schema: {
      response: {
        200: Type.Object({
          code: Type.Integer(),
          targets: Type.Array(Type.Object({ target: Type.String(), url: Type.String(), last_error: LastError })),
          depth: Type.Integer(),
          oldest_age_ms: Type.Union([Type.Integer(), Type.Null()]),
          dead: Type.Integer(),
          rows: Type.Integer(),
          max: Type.Integer()
        }),
        ...errors
      }
    }
  }, async () => {
    const f = service()
    const age = f.delivery.oldestAgeMs()
    return {
      code: 0,
      targets: (['srs', 'zlm'] as const).filter((k) => f.clients[k] !== undefined).map((k) => ({ target: k, url: f.clients[k]!.where, last_error: f.delivery.lastError[k] ?? null })),
      depth: f.delivery.depth,
      oldest_age_ms: age === null ? null : Math.round(age),
      dead: f.outbox.counts.dead,
      rows: f.outbox.counts.rows,
      max: f.outbox.max
    }
  })

  app.get('/forwarding/dead', {
    schema: {
      querystring: Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      response: {
        200: Type.Object({
          code: Type.Integer(),
          items: Type.Array(Type.Object({
            seq: Type.Integer(),
            target: Type.String(),
            action: Type.String(),
            lane: Type.String(),
            created_at: Type.Integer(),
            dead_at: Type.Union([Type.Integer(), Type.Null()]),
            attempts: Type.Integer(),
            last_error: Nullable(Type.String()),
            idempotency_key: Type.String(),
            body: Type.String()
          }))
        }),
        ...errors
      }
    }
  }, async (req) => {
    const dead = await service().outbox.dead(req.query.after ?? 0, req.query.limit ?? 100)
    return {
      code: 0,
      items: dead.map((n) => ({
        seq: n.seq, target: n.target, action: n.action, lane: n.lane, created_at: n.createdAt, dead_at: n.deadAt, attempts: n.attempts, last_error: n.lastError, idempotency_key: n.key, body: n.body
      }))
    }
  })

  app.post('/forwarding/dead/retry', {
    schema: {
      querystring: Type.Object({ seq: Type.Optional(Type.Integer({ minimum: 1 })) }),
      response: { 200: Type.Object({ code: Type.Integer(), retried: Type.Integer() }), ...errors }
    }
  }, async (req) => {
    const retried = await service().retry(req.query.seq === undefined ? 'all' : [req.query.seq])
    req.log.info({ seq: req.query.seq ?? 'all', retried, at: now() }, 'operator API: dead letters retried')
    return { code: 0, retried }
  })
}

export default forward
