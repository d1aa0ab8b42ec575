import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { Static, TSchema } from 'typebox'
import { credentialsOf } from '../src/auth/service.js'
import { AppError, Codes, type Code } from '../src/errors.js'
import { UnindexableRecordingError } from '../src/recordings/service.js'
import {
  ALLOW, HookBodies, HookReply, clientIdOf, redactQuery, streamIdOf, streamKeyOf,
  type HookAction, type OnConnect, type OnPublish
} from '../src/srs/hooks.js'

/**
 * What SRS calls: POST <prefix>/on_<event>. Each hook is validated, answered and logged once.
 * on_publish may wait for a takeover (bounded by TAKEOVER_TIMEOUT_MS); every other hook answers at
 * once and never waits on on_publish, because SRS calls them while it releases a publisher.
 */

/** What the one log line per hook says besides action, status and milliseconds. */
export interface HookLog {
  stream?: string | undefined
  client?: string
  msg?: string
  ip?: string | undefined
  param?: string | undefined
  outcome: string
  code: number
  [extra: string]: unknown
}

declare module 'fastify' {
  interface FastifyRequest {
    hookLog: HookLog | null
  }
}

const response = { 200: HookReply, '4xx': HookReply, '5xx': HookReply }

const callbacks: FastifyPluginAsyncTypebox = async (app) => {
  // SRS sends application/json; curl -d sends a form type. Parse every body as JSON.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'))

  app.addHook('onResponse', async (req, reply) => {
    const action = actionOf(req)
    const line = { action, ...req.hookLog, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }
    if (reply.statusCode >= 400) req.log.warn(line, 'hook not processed')
    else req.log.info(line, 'hook')
  })

  // Only SRS may call (HOOK_TOKEN, HOOK_ALLOW): checked before the body is read, so a refused
  // caller changes nothing.
  app.addHook('onRequest', async (req) => {
    const refused = app.auth.checkCaller(req.ip, (req.query as Record<string, unknown>).token)
    if (refused !== undefined) throw new AppError(refused.msg, refused.code as Code, 403)
  })

  const hook = <S extends TSchema>(action: HookAction, body: S, handler: (req: FastifyRequest<{ Body: Static<S> }>) => Promise<HookReply>): void => {
    app.post(`/${action}`, {
      schema: { body, response },
      preHandler: async (req) => {
        const sent = (req.body as { action: string }).action
        if (sent !== action) {
          throw new AppError(`body.action is ${JSON.stringify(sent)} but this is the ${action} callback; check the hook URLs in srs.conf`, Codes.ACTION_MISMATCH, 400)
        }
      }
    }, async (req) => await handler(req as FastifyRequest<{ Body: Static<S> }>))
  }

  hook('on_publish', HookBodies.on_publish, async (req: FastifyRequest<{ Body: OnPublish }>) => {
    const b = req.body
    const key = streamKeyOf(b)
    const client = clientIdOf(b)
    const r = await app.publishers.publish({
      key,
      vhost: b.vhost,
      app: b.app,
      stream: b.stream,
      clientId: client,
      serverId: b.server_id,
      streamId: streamIdOf(b),
      ip: b.ip,
      credentials: credentialsOf(app.auth.checkPublish({ app: b.app, stream: b.stream, param: b.param, ip: b.ip })),
      policy: app.auth.policyFor(b.app)
    }, req.log)
    req.hookLog = { ...describe(b, key, client), outcome: r.outcome, code: r.reply.code, evicted: r.evicted, waitMs: r.release?.waitMs }
    return r.reply
  })

  hook('on_unpublish', HookBodies.on_unpublish, async (req: FastifyRequest<{ Body: OnPublish }>) => {
    const key = streamKeyOf(req.body)
    const client = clientIdOf(req.body)
    const removed = await app.publishers.unpublish(key, client)
    req.hookLog = { ...describe(req.body, key, client), outcome: removed ? 'removed' : 'not-current-publisher', code: 0 }
    return ALLOW
  })

  hook('on_close', HookBodies.on_close, async (req) => {
    const client = clientIdOf(req.body)
    const removed = await app.publishers.closed(client)
    req.hookLog = { client, ip: req.body.ip, outcome: removed ? 'removed' : 'closed', code: 0 }
    return ALLOW
  })

  // on_dvr: the recording is stored durably (the index, or the spool while PostgreSQL is out of
  // reach) before the reply; the file itself is examined afterwards, off the reply's path, so SRS's
  // DVR worker never waits on it.
  hook('on_dvr', HookBodies.on_dvr, async (req) => {
    const b = req.body
    const key = streamKeyOf(b)
    const client = clientIdOf(b)
    let r
    try {
      r = await app.recordings.index({
        vhost: b.vhost,
        app: b.app,
        stream: b.stream,
        streamUrl: key,
        clientId: client,
        serverId: b.server_id,
        streamId: streamIdOf(b),
        cwd: b.cwd,
        file: b.file
      })
    } catch (err) {
      const msg = `recording ${JSON.stringify(b.file)} not stored: ${(err as Error).message}`
      if (err instanceof UnindexableRecordingError) throw new AppError(msg, Codes.INVALID_BODY, 400, { cause: err })
      throw new AppError(msg, Codes.RECORDING_NOT_STORED, 503, { cause: err })
    }
    const outcome = !r.created ? 'duplicate' : r.spooled ? 'spooled' : 'stored'
    req.hookLog = { ...describe(b, key, client), outcome, code: 0, recording: r.id ?? undefined, file: b.file }
    return ALLOW
  })

  // Allowed as they come, except on_play under PLAY_AUTH (its body always names the stream).
  for (const action of ['on_connect', 'on_play', 'on_stop', 'on_hls'] as const) {
    hook(action, HookBodies[action], async (req: FastifyRequest<{ Body: OnConnect }>) => {
      const b = req.body
      const stream = b.stream === undefined ? undefined : streamKeyOf({ ...b, stream: b.stream })
      const seen = describe(b, stream, clientIdOf(b))
      const verdict = action === 'on_play' ? app.auth.checkPlay({ app: b.app, stream: b.stream!, param: b.param, ip: b.ip }) : undefined
      if (verdict?.ok === false) {
        req.hookLog = { ...seen, outcome: 'refused', code: verdict.code, msg: verdict.msg }
        return { code: verdict.code, msg: verdict.msg }
      }
      req.hookLog = { ...seen, outcome: 'allowed', code: 0 }
      return ALLOW
    })
  }
}

function describe (b: { ip?: string | undefined, param?: string | undefined }, stream: string | undefined, client: string): HookLog {
  return { stream, client, ip: b.ip, param: redactQuery(b.param), outcome: '', code: 0 }
}

/** The hook a request was routed to: the last segment of its route (only hook routes live here). */
function actionOf (req: FastifyRequest): string {
  const route = req.routeOptions.url!
  return route.slice(route.lastIndexOf('/') + 1)
}

export default callbacks
