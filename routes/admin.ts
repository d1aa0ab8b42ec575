import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError } from 'fastify'
import { Type, type TSchema } from 'typebox'
import type { Config } from '../src/config.js'
import { AppError, Codes, type SrsApiError } from '../src/errors.js'
import { checkAccess } from '../src/operations/access.js'
import { mergeStreams, parseTime } from '../src/operations/streams.js'
import type { SrsClient, SrsStream } from '../src/srs/api.js'
import { DEFAULT_VHOST, streamUrl } from '../src/srs/hooks.js'
import { decodeCursor, encodeCursor, type Recording } from '../src/recordings/store.js'

/**
 * What operators call, under /admin-api/video/camera/ (and /video/camera/ behind a gateway that
 * strips /admin-api): streams, the kick, events, recordings. Bearer ADMIN_TOKEN, or loopback
 * callers only when it is unset.
 */

export const ADMIN_PREFIXES = ['/admin-api/video/camera', '/video/camera'] as const

export const RECORDINGS_LIMIT = { default: 50, max: 500 } as const
export const EVENTS_LIMIT = { default: 100, max: 1000 } as const
const CLIENTS_PAGE = 1000

const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const ErrorReply = Type.Object({ code: Type.Integer(), msg: Type.Union([Type.String(), Type.Null()]) })
const errors = { '4xx': ErrorReply, '5xx': ErrorReply }
const Name = Type.String({ minLength: 1, maxLength: 1024 })

const RecordingItem = Type.Object({
  id: Type.Integer(),
  vhost: Type.String(),
  app: Type.String(),
  stream: Type.String(),
  stream_url: Type.String(),
  file: Type.String(),
  path: Nullable(Type.String()),
  cwd: Nullable(Type.String()),
  size: Nullable(Type.Integer()),
  mtime: Nullable(Type.Integer()),
  tiny: Nullable(Type.Boolean()),
  started_at: Nullable(Type.Integer()),
  ended_at: Type.Integer(),
  duration_ms: Nullable(Type.Integer()),
  client_id: Type.String(),
  server_id: Nullable(Type.String()),
  stream_id: Nullable(Type.String()),
  received_at: Type.Integer(),
  checked_at: Nullable(Type.Integer()),
  file_error: Nullable(Type.String())
})

const RecordingsQuery = Type.Object({
  vhost: Type.Optional(Name),
  app: Type.Optional(Name),
  stream: Type.Optional(Name),
  from: Type.Optional(Type.String({ maxLength: 64 })),
  to: Type.Optional(Type.String({ maxLength: 64 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: RECORDINGS_LIMIT.max })),
  cursor: Type.Optional(Type.String({ maxLength: 256 }))
}, { additionalProperties: false })

const StreamItem = Type.Object({
  stream_url: Type.String(),
  vhost: Type.String(),
  app: Type.String(),
  stream: Type.String(),
  stream_id: Nullable(Type.String()),
  active: Nullable(Type.Boolean()),
  publisher: Nullable(Type.Object({
    client_id: Type.String(),
    ip: Nullable(Type.String()),
    since: Nullable(Type.Integer()),
    state: Type.String()
  })),
  recv_bytes: Nullable(Type.Integer()),
  clients: Nullable(Type.Integer()),
  takeovers: Type.Integer(),
  in_table: Type.Boolean(),
  in_srs: Type.Boolean()
})

const EVENT_TYPES = ['takeover', 'takeover-timeout', 'eviction', 'refusal', 'api-failure', 'correction'] as const

export interface AdminRoutesOptions {
  config: Config
  now: () => number
}

const admin: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, { config, now }) => {
  app.addHook('onRequest', async (req, reply) => {
    const access = checkAccess(config.ADMIN_TOKEN, req.headers.authorization, req.socket.remoteAddress)
    if (access.ok) return
    if (access.reason === 'not-loopback') {
      throw new AppError('the operator API answers loopback callers only while ADMIN_TOKEN is unset; set ADMIN_TOKEN and send it as a bearer token', Codes.ADMIN_FORBIDDEN, 403)
    }
    reply.header('www-authenticate', 'Bearer realm="srs-hooks"')
    throw new AppError(access.reason === 'no-token' ? 'send ADMIN_TOKEN as "Authorization: Bearer <token>"' : 'wrong bearer token', Codes.ADMIN_UNAUTHORIZED, 401)
  })

  // Bad query parameters are the caller's mistake, not a bad hook body: say so with our own code.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation === undefined) throw err
    const details = err.validation.map((v) => `${String(err.validationContext)}${v.instancePath} ${String(v.message)}`).join('; ')
    req.log.info({ url: req.url, details }, 'operator API: bad request')
    return reply.code(400).send({ code: Codes.INVALID_QUERY, msg: `invalid ${String(err.validationContext)}: ${details}` })
  })

  app.get('/recordings', {
    schema: {
      querystring: RecordingsQuery,
      response: {
        200: Type.Object({
          code: Type.Integer(),
          items: Type.Array(RecordingItem),
          next_cursor: Nullable(Type.String()),
          /** Recordings this replica acknowledged that wait in its spool for PostgreSQL: not listed yet. */
          spooled: Type.Integer()
        }),
        ...errors
      }
    }
  }, async (req) => {
    const q = req.query
    const from = timeParam('from', q.from)
    const to = timeParam('to', q.to)
    if (from !== undefined && to !== undefined && from > to) throw badQuery('from is after to')
    let after
    if (q.cursor !== undefined) {
      after = decodeCursor(q.cursor) ?? undefined
      if (after === undefined) throw badQuery('cursor is not one this API handed out; start again without it')
    }
    let page
    try {
      page = await app.recordings.list({ vhost: q.vhost, app: q.app, stream: q.stream, from, to, limit: q.limit ?? RECORDINGS_LIMIT.default, after })
    } catch (err) {
      const spooled = app.recordings.spool()?.depth ?? 0
      req.log.warn({ err: (err as Error).message }, 'operator API: the recordings index did not answer')
      throw new AppError(`the recordings index did not answer: ${(err as Error).message}${spooled > 0 ? `; ${spooled} recordings wait in this replica's spool` : ''}`,
        Codes.RECORDINGS_UNAVAILABLE, 503, { cause: err })
    }
    return {
      code: 0,
      items: page.items.map((r) => recordingItem(r, app.recordings.tiny(r))),
      next_cursor: page.next === null ? null : encodeCursor(page.next),
      spooled: page.spooled
    }
  })

  app.get('/streams', {
    schema: {
      response: {
        200: Type.Object({ code: Type.Integer(), srs: Type.Object({ ok: Type.Boolean(), msg: Nullable(Type.String()) }), streams: Type.Array(StreamItem) }),
        ...errors
      }
    }
  }, async (req) => {
    const table = await app.publishers.store.list()
    let live: { streams: SrsStream[], clients: SrsClient[] } | null = null
    let msg: string | null = null
    try {
      live = { streams: await app.srs.allStreams(), clients: await allClients() }
    } catch (err) {
      // SrsApi reports every failure as an SrsApiError.
      const e = err as SrsApiError
      msg = `SRS's API failed (${e.kind}): ${e.message}; showing the publisher table alone`
      req.log.warn({ err: e.message, kind: e.kind }, 'operator API: SRS\'s live view unavailable')
    }
    return { code: 0, srs: { ok: live !== null, msg }, streams: mergeStreams(table, live, now()) }
  })

  app.delete('/streams/:app/:stream/publisher', {
    schema: {
      params: Type.Object({ app: Name, stream: Name }),
      querystring: Type.Object({ vhost: Type.Optional(Name) }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          code: Type.Integer(),
          msg: Nullable(Type.String()),
          outcome: Type.String(),
          stream_url: Type.String(),
          client_id: Type.String(),
          wait_ms: Type.Integer(),
          via: Type.String()
        }),
        ...errors
      }
    }
  }, async (req) => {
    const key = streamUrl(req.query.vhost ?? DEFAULT_VHOST, req.params.app, req.params.stream)
    let r
    try {
      r = await app.publishers.evict(key, req.log)
    } catch (err) {
      throw srsFailure(err, `evict the publisher of ${key}`)
    }
    switch (r.outcome) {
      case 'not-published':
        throw new AppError(`nothing to evict: SRS lists no active publisher of ${key}`, Codes.NOTHING_TO_EVICT, 404)
      case 'busy':
        throw new AppError(`an on_publish of ${key} held the stream for the whole ${config.TAKEOVER_TIMEOUT_MS} ms; try again`, Codes.EVICTION_BUSY, 409)
      case 'timeout':
        throw new AppError(`kicked client ${r.clientId} but SRS did not release ${key} within ${config.TAKEOVER_TIMEOUT_MS} ms`, Codes.RELEASE_TIMEOUT, 504)
    }
    return { code: 0, msg: null, outcome: r.outcome, stream_url: key, client_id: r.clientId, wait_ms: Math.round(r.release.waitMs), via: r.release.via }
  })

  app.get('/events', {
    schema: {
      querystring: Type.Object({
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: EVENTS_LIMIT.max })),
        type: Type.Optional(Type.String({ maxLength: 256, pattern: `^(${EVENT_TYPES.join('|')})(,(${EVENT_TYPES.join('|')}))*$` }))
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({ code: Type.Integer(), total: Type.Integer(), max: Type.Integer(), items: Type.Array(Type.Object({}, { additionalProperties: true })) }),
        ...errors
      }
    }
  }, async (req) => {
    const types = req.query.type === undefined ? undefined : new Set(req.query.type.split(','))
    return { code: 0, total: app.eventLog.total, max: app.eventLog.max, items: app.eventLog.list(req.query.limit ?? EVENTS_LIMIT.default, types) }
  })

  async function allClients (): Promise<SrsClient[]> {
    const all: SrsClient[] = []
    let page: SrsClient[]
    do {
      page = await app.srs.clients(all.length, CLIENTS_PAGE)
      all.push(...page)
    } while (page.length === CLIENTS_PAGE)
    return all
  }
}

function badQuery (msg: string): AppError {
  return new AppError(`invalid querystring: ${msg}`, Codes.INVALID_QUERY, 400)
}

function timeParam (name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ms = parseTime(value)
  if (ms === null) throw badQuery(`${name} must be epoch milliseconds or an ISO 8601 date, not ${JSON.stringify(value)}`)
  return ms
}

/** SRS's API failed: 503 when it cannot be reached in time, 502 when it answered wrongly. */
export function srsFailure (err: unknown, doing: string): AppError {
  // SrsApi reports every failure as an SrsApiError.
  const e = err as SrsApiError
  const unreachable = e.kind === 'unreachable' || e.kind === 'timeout'
  return new AppError(`cannot ${doing}: SRS's API failed (${e.kind}): ${e.message}`,
    unreachable ? Codes.SRS_API_UNREACHABLE : Codes.SRS_API_FAILED, unreachable ? 503 : 502, { cause: err })
}

function recordingItem (r: Recording, tiny: boolean | null) {
  const ended = r.mtime ?? r.receivedAt
  return {
    id: r.id,
    vhost: r.vhost,
    app: r.app,
    stream: r.stream,
    stream_url: r.streamUrl,
    file: r.file,
    path: r.path,
    cwd: r.cwd ?? null,
    size: r.size,
    mtime: r.mtime,
    tiny,
    started_at: r.startedAt,
    ended_at: ended,
    duration_ms: r.startedAt === null ? null : Math.max(0, ended - r.startedAt),
    client_id: r.clientId,
    server_id: r.serverId ?? null,
    stream_id: r.streamId ?? null,
    received_at: r.receivedAt,
    checked_at: r.checkedAt,
    file_error: r.fileError
  }
}

export default admin
