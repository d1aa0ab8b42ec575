import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError } from 'fastify'
import { Type, type TSchema } from 'typebox'
import type { Config } from '../src/config.js'
import { AppError, Codes, type SrsApiError } from '../src/errors.js'
import { operatorsOnly } from '../src/http/operators.js'
import { mergeStreams, parseTime, type LiveView } from '../src/operations/streams.js'
import { EVENT_TYPES } from '../src/publishers/events.js'
import type { SrsClient } from '../src/srs/api.js'
import type { SrsNode } from '../src/srs/servers.js'
import type { MediaServer } from '../src/publishers/media.js'
import { RTP_EVENT_TYPE } from '../src/zlm/rtp.js'
import { zlmLiveView } from '../src/zlm/view.js'
import { DEFAULT_VHOST, streamUrl } from '../src/streams.js'
import { decodeCursor, encodeCursor, type Recording } from '../src/recordings/store.js'

/**
 * What operators call, under /admin-api/video/camera/ (and /video/camera/ behind a gateway that
 * strips /admin-api): streams, the kick, events, recordings. Bearer ADMIN_TOKEN, or loopback
 * callers only when it is unset.
 */

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
  server: Type.String(),
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

export interface AdminRoutesOptions {
  config: Config
  now: () => number
}

const admin: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, { config, now }) => {
  // The operator API's routes take no body: a bodyless request (a gateway's or a Java client's
  // DELETE) is accepted whatever its Content-Type says, and any body is ignored.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, _body, done) => { done(null, undefined) })
  app.addHook('onRequest', operatorsOnly(config))

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
        200: Type.Object({
          code: Type.Integer(),
          srs: Type.Object({ ok: Type.Boolean(), msg: Nullable(Type.String()) }),
          servers: Type.Array(Type.Object({ server: Type.String(), kind: Type.String(), api: Type.String(), ok: Type.Boolean(), msg: Nullable(Type.String()), version: Nullable(Type.String()), strategy: Type.String() })),
          streams: Type.Array(StreamItem)
        }),
        ...errors
      }
    }
  }, async (req) => {
    const table = await app.publishers.store.list()
    const [views, zlmViews] = await Promise.all([
      Promise.all(app.srsServers.nodes.map(async (n) => await liveView(n, req.log))),
      Promise.all(app.zlmServers.nodes.map(async (n) => await zlmLiveView(n, req.log)))
    ])
    const failed = [...views, ...zlmViews].filter((v) => !v.ok)
    return {
      code: 0,
      // Every server answered (servers lists each one).
      srs: { ok: failed.length === 0, msg: failed.length === 0 ? null : failed.map((v) => v.msg).join('; ') },
      servers: [
        ...views.map((v, i) => ({ server: v.server, kind: 'srs', api: app.srsServers.nodes[i]!.url, ok: v.ok, msg: v.msg, version: app.srsServers.nodes[i]!.version?.version ?? null, strategy: app.srsServers.nodes[i]!.strategy })),
        ...zlmViews.map((v, i) => ({ server: v.server, kind: 'zlm', api: app.zlmServers.nodes[i]!.url, ok: v.ok, msg: v.msg, version: null, strategy: 'publish' }))
      ],
      // ZLMediaKit has no stream ids.
      streams: mergeStreams(table, [...views, ...zlmViews], now()).map((s) => s.stream_id === '' ? { ...s, stream_id: null } : s)
    }
  })

  app.delete('/streams/:app/:stream/publisher', {
    schema: {
      params: Type.Object({ app: Name, stream: Name }),
      querystring: Type.Object({ vhost: Type.Optional(Name), server: Type.Optional(Name) }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          code: Type.Integer(),
          msg: Nullable(Type.String()),
          outcome: Type.String(),
          server: Type.String(),
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
    const server = await serverFor(key, req.query.server)
    let r
    try {
      r = await app.publishers.evict(server, key, req.log)
    } catch (err) {
      throw srsFailure(err, `evict the publisher of ${key}`, server.kind === 'zlm' ? 'ZLMediaKit\'s' : 'SRS\'s')
    }
    switch (r.outcome) {
      case 'not-published':
        throw new AppError(`nothing to evict: server ${server.id} lists no active publisher of ${key}`, Codes.NOTHING_TO_EVICT, 404)
      case 'busy':
        throw new AppError(`a takeover of ${key} held the stream for the whole ${config.TAKEOVER_TIMEOUT_MS} ms; try again`, Codes.EVICTION_BUSY, 409)
      case 'timeout':
        throw new AppError(`kicked client ${r.clientId} but server ${server.id} did not release ${key} within ${config.TAKEOVER_TIMEOUT_MS} ms`, Codes.RELEASE_TIMEOUT, 504)
      case 'not-evictable':
        throw new AppError(`server ${server.id}: ${key} is not evicted: ${r.why}`, Codes.INCUMBENT_NOT_EVICTABLE, 409)
    }
    return { code: 0, msg: null, outcome: r.outcome, server: server.id, stream_url: key, client_id: r.clientId, wait_ms: Math.round(r.release.waitMs), via: r.release.via }
  })

  app.get('/events', {
    schema: {
      querystring: Type.Object({
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: EVENTS_LIMIT.max })),
        type: Type.Optional(Type.String({ maxLength: 256, pattern: `^(${[...EVENT_TYPES, RTP_EVENT_TYPE].join('|')})(,(${[...EVENT_TYPES, RTP_EVENT_TYPE].join('|')}))*$` }))
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({ code: Type.Integer(), total: Type.Integer(), max: Type.Integer(), items: Type.Array(Type.Object({}, { additionalProperties: true })) }),
        ...errors
      }
    }
  }, async (req) => {
    const types = req.query.type === undefined ? undefined : new Set(req.query.type.split(','))
    const [total, items] = await Promise.all([app.eventLog.total(), app.eventLog.list(req.query.limit ?? EVENTS_LIMIT.default, types)])
    return { code: 0, total, max: app.eventLog.max, items }
  })

  /** One server's live view: its streams and clients, or why it could not be had. */
  async function liveView (n: SrsNode, log: { warn: (o: object, m: string) => void }): Promise<LiveView> {
    try {
      const streams = await n.api.allStreams()
      const clients: SrsClient[] = []
      let page: SrsClient[]
      do {
        page = await n.api.clients(clients.length, CLIENTS_PAGE)
        clients.push(...page)
      } while (page.length === CLIENTS_PAGE)
      return { server: n.server.id, ok: true, msg: null, streams, clients }
    } catch (err) {
      // SrsApi reports every failure as an SrsApiError.
      const e = err as SrsApiError
      log.warn({ err: e.message, kind: e.kind, srsApi: n.url }, 'operator API: a server\'s live view is unavailable')
      return { server: n.server.id, ok: false, msg: `SRS's API at ${n.url} failed (${e.kind}): ${e.message}; showing the publisher table alone for it`, streams: [], clients: [] }
    }
  }

  /**
   * The server an operator's kick is for: the one named (by id or API URL), the only one, or the
   * one the table says publishes the stream. A stream name two servers publish is ambiguous.
   */
  async function serverFor (key: string, named: string | undefined): Promise<MediaServer> {
    // The servers of every kind: SRS's and ZLMediaKit's.
    const nodes: Array<{ url: string, server: MediaServer }> = [...app.srsServers.nodes, ...app.zlmServers.nodes]
    if (named !== undefined) {
      const id = named.replace(/\/+$/, '')
      const n = app.srsServers.node(id) ?? app.zlmServers.node(id)
      if (n === undefined) throw new AppError(`no server ${JSON.stringify(named)}: name one by its id or API URL (${nodes.map((x) => `${x.server.id} = ${x.url}`).join(', ')})`, Codes.INVALID_QUERY, 400)
      return n.server
    }
    if (nodes.length === 1) return nodes[0]!.server
    const holders = [...new Set((await app.publishers.store.holders(key)).map((p) => p.server))]
    const holder = holders.length === 1 ? app.mediaServers.get(holders[0]!) : undefined
    if (holder !== undefined) return holder
    if (holders.length > 1) {
      throw new AppError(`${key} is published on several servers (${holders.join(', ')}); name one with ?server=<id or API URL>`, Codes.AMBIGUOUS_STREAM, 409)
    }
    throw new AppError(`no server is known to publish ${key}; name one with ?server=<id or API URL> (${nodes.map((x) => `${x.server.id} = ${x.url}`).join(', ')})`, Codes.NOTHING_TO_EVICT, 404)
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
export function srsFailure (err: unknown, doing: string, whose = 'SRS\'s'): AppError {
  // SrsApi (ZlmApi) reports every failure as an SrsApiError (ZlmApiError), with a kind.
  const e = err as SrsApiError
  const unreachable = e.kind === 'unreachable' || e.kind === 'timeout'
  return new AppError(`cannot ${doing}: ${whose} API failed (${e.kind}): ${e.message}`,
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
