import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError } from 'fastify'
import { Type, type TSchema } from 'typebox'
import type { Config } from '../src/config.js'
import { AppError, Codes } from '../src/errors.js'
import { DEFAULT_VHOST, streamUrl } from '../src/streams.js'
import type { ZlmApiError, ZlmMedia, ZlmRtpServer } from '../src/zlm/api.js'
import { RtpOpenError, rtpKey, type KeptRtp } from '../src/zlm/rtp.js'
import type { ZlmNode } from '../src/zlm/servers.js'
import { operatorsOnly } from './admin.js'

/**
 * RTP servers on ZLMediaKit, for GB28181 platforms (docs/zlm-protocol.md section 4), under
 * /admin-api/video/camera/ (and /video/camera/): POST rtp-servers opens one and never fails with
 * "already exists", DELETE rtp-servers/{stream_id} closes one, GET rtp-servers lists them with
 * their state. The operator API's access rules: bearer ADMIN_TOKEN, or loopback callers only.
 */

const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()])
const ErrorReply = Type.Object({ code: Type.Integer(), msg: Type.Union([Type.String(), Type.Null()]) })
const errors = { '4xx': ErrorReply, '5xx': ErrorReply }
/** What ZLMediaKit takes as a vhost, app or stream id, without anything a URL or a path would read. */
const Id = Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9._~-]+$' })
const Server = Type.String({ minLength: 1, maxLength: 1024 })
const Where = { app: Type.Optional(Id), vhost: Type.Optional(Id), server: Type.Optional(Server) }

/** One RTP server, as both the listing and an open show it. */
const RtpFields = {
  server: Type.String(),
  vhost: Type.String(),
  app: Type.String(),
  stream_id: Type.String(),
  port: Type.Integer(),
  tcp_mode: Type.Integer(),
  ssrc: Type.Integer(),
  /** Reopened when ZLMediaKit times it out or drops it. */
  keep: Type.Boolean()
}

const RtpServerItem = Type.Object({
  ...RtpFields,
  /** receiving: RTP arrives (its stream exists); waiting: open, nothing received yet; missing: kept, not in ZLMediaKit's map now; blocked: kept, gone, another publisher owns the stream. */
  state: Type.String(),
  note: Nullable(Type.String())
})

export interface ZlmRtpRoutesOptions {
  config: Config
}

const zlmRtp: FastifyPluginAsyncTypebox<ZlmRtpRoutesOptions> = async (app, { config }) => {
  app.addHook('onRequest', operatorsOnly(config))
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation === undefined) throw err
    const where = String(err.validationContext)
    const details = err.validation.map((v) => `${where}${v.instancePath} ${String(v.message)}`).join('; ')
    req.log.info({ url: req.url, details }, 'operator API: bad request')
    return reply.code(400).send({ code: where === 'body' ? Codes.INVALID_BODY : Codes.INVALID_QUERY, msg: `invalid ${where}: ${details}` })
  })

  app.post('/rtp-servers', {
    schema: {
      body: Type.Object({
        stream_id: Id,
        port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
        tcp_mode: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)])),
        ssrc: Type.Optional(Type.Integer({ minimum: 0, maximum: 4_294_967_295 })),
        keep: Type.Optional(Type.Boolean()),
        ...Where
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          code: Type.Integer(),
          msg: Nullable(Type.String()),
          /** opened; existing: the same one was there (the same INVITE again); reopened: another was closed first. */
          outcome: Type.String(),
          ...RtpFields,
          replaced: Nullable(Type.Object({ port: Type.Integer(), tcp_mode: Type.Integer(), ssrc: Type.Integer() })),
          ms: Type.Integer()
        }),
        ...errors
      }
    }
  }, async (req) => {
    const b = req.body
    const node = nodeFor(b.server)
    const r = { vhost: b.vhost ?? DEFAULT_VHOST, app: b.app ?? 'rtp', streamId: b.stream_id, port: b.port ?? 0, tcpMode: b.tcp_mode ?? 0, ssrc: b.ssrc ?? 0, keep: b.keep ?? false }
    let opened
    try {
      opened = await app.zlm.rtp.open(node.server, r)
    } catch (err) {
      throw failure(err, `open the RTP server of ${rtpKey(r)}`)
    }
    req.log.info({ server: opened.server, stream: rtpKey(r), outcome: opened.outcome, port: opened.port, replacedPort: opened.replaced?.port, keep: r.keep, ms: opened.ms }, 'RTP server opened')
    const was = opened.replaced
    return {
      code: 0,
      msg: null,
      outcome: opened.outcome,
      server: opened.server,
      vhost: r.vhost,
      app: r.app,
      stream_id: r.streamId,
      port: opened.port,
      tcp_mode: r.tcpMode,
      ssrc: r.ssrc,
      keep: r.keep,
      replaced: was === undefined ? null : { port: was.port, tcp_mode: was.tcpMode, ssrc: was.ssrc },
      ms: Math.round(opened.ms)
    }
  })

  app.delete('/rtp-servers/:stream_id', {
    schema: {
      params: Type.Object({ stream_id: Id }),
      querystring: Type.Object(Where, { additionalProperties: false }),
      response: {
        200: Type.Object({ code: Type.Integer(), msg: Nullable(Type.String()), server: Type.String(), vhost: Type.String(), app: Type.String(), stream_id: Type.String(), hit: Type.Boolean() }),
        ...errors
      }
    }
  }, async (req) => {
    const node = nodeFor(req.query.server)
    const r = { vhost: req.query.vhost ?? DEFAULT_VHOST, app: req.query.app ?? 'rtp', streamId: req.params.stream_id }
    let hit
    try {
      hit = await app.zlm.rtp.close(node.server, r)
    } catch (err) {
      throw failure(err, `close the RTP server of ${rtpKey(r)}`)
    }
    req.log.info({ server: node.server.id, stream: rtpKey(r), hit }, 'RTP server closed')
    return { code: 0, msg: null, server: node.server.id, vhost: r.vhost, app: r.app, stream_id: r.streamId, hit }
  })

  app.get('/rtp-servers', {
    schema: {
      querystring: Type.Object({ server: Type.Optional(Server) }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          code: Type.Integer(),
          servers: Type.Array(Type.Object({ server: Type.String(), api: Type.String(), ok: Type.Boolean(), msg: Nullable(Type.String()) })),
          items: Type.Array(RtpServerItem)
        }),
        ...errors
      }
    }
  }, async (req) => {
    const nodes = req.query.server === undefined ? app.zlmServers.nodes : [nodeFor(req.query.server)]
    const views = await Promise.all(nodes.map(async (n) => {
      try {
        const [map, media] = await Promise.all([n.api.rtpServers(), n.api.mediaList({})])
        return { server: n.server.id, api: n.url, ok: true, msg: null, items: itemsOf(n.server.id, map, media, app.zlm.rtp.kept(n.server.id)) }
      } catch (err) {
        const e = err as ZlmApiError
        req.log.warn({ err: e.message, kind: e.kind, zlmApi: n.url }, 'operator API: a ZLMediaKit\'s RTP servers are unavailable')
        return { server: n.server.id, api: n.url, ok: false, msg: `ZLMediaKit's API at ${n.url} failed (${e.kind}): ${e.message}`, items: [] }
      }
    }))
    return { code: 0, servers: views.map(({ items, ...v }) => v), items: views.flatMap((v) => v.items) }
  })

  /** The ZLMediaKit server a request is for: the one named (by mediaServerId or API URL), else the only one. */
  function nodeFor (named: string | undefined): ZlmNode {
    const nodes = app.zlmServers.nodes
    const known = (): string => nodes.map((n) => `${n.server.id} = ${n.url}`).join(', ')
    if (nodes.length === 0) throw new AppError('no ZLMediaKit server is configured: set ZLM_API_URL', Codes.ZLM_SERVER_UNKNOWN, 400)
    if (named !== undefined) {
      const n = app.zlmServers.node(named.replace(/\/+$/, ''))
      if (n === undefined) throw new AppError(`no ZLMediaKit server ${JSON.stringify(named)}: name one by its mediaServerId or API URL (${known()})`, Codes.ZLM_SERVER_UNKNOWN, 400)
      return n
    }
    if (nodes.length > 1) throw new AppError(`several ZLMediaKit servers are configured; name one with server (${known()})`, Codes.ZLM_SERVER_UNKNOWN, 400)
    return nodes[0]!
  }
}

/** An open or close that failed, as the operator sees it. */
function failure (err: unknown, doing: string): AppError {
  if (err instanceof RtpOpenError) {
    return new AppError(`cannot ${doing}: ${err.message}`, err.kind === 'port-in-use' ? Codes.RTP_PORT_IN_USE : Codes.RTP_OPEN_CONFLICT, 409)
  }
  // ZlmApi reports every failure of ZLMediaKit's API as a ZlmApiError.
  const e = err as ZlmApiError
  const unreachable = e.kind === 'unreachable' || e.kind === 'timeout' || e.kind === 'deadline'
  return new AppError(`cannot ${doing}: ZLMediaKit's API failed (${e.kind}): ${e.message}`,
    unreachable ? Codes.SRS_API_UNREACHABLE : Codes.SRS_API_FAILED, unreachable ? 503 : 502, { cause: err })
}

/** ZLMediaKit's map, each entry with its state, and the kept servers it lacks. */
function itemsOf (server: string, map: ZlmRtpServer[], media: ZlmMedia[], kept: KeptRtp[]) {
  const receiving = new Set(media.filter((m) => m.originTypeStr === 'rtp_push').map((m) => streamUrl(m.vhost, m.app, m.stream)))
  const keptByKey = new Map(kept.map((k) => [rtpKey(k), k]))
  const items = map.map((m) => ({
    server,
    vhost: m.vhost,
    app: m.app,
    stream_id: m.streamId,
    port: m.port,
    tcp_mode: m.tcpMode,
    ssrc: m.ssrc,
    keep: keptByKey.has(rtpKey(m)),
    state: receiving.has(rtpKey(m)) ? 'receiving' : 'waiting',
    note: receiving.has(rtpKey(m)) ? null : 'open; no RTP received yet (getRtpInfo says it does not exist until then)'
  }))
  const listed = new Set(map.map((m) => rtpKey(m)))
  for (const k of kept) {
    if (listed.has(rtpKey(k))) continue
    items.push({
      server,
      vhost: k.vhost,
      app: k.app,
      stream_id: k.streamId,
      port: k.port,
      tcp_mode: k.tcpMode,
      ssrc: k.ssrc,
      keep: true,
      state: k.state === 'blocked' ? 'blocked' : 'missing',
      note: k.note ?? 'not in ZLMediaKit\'s map: the next reconciliation reopens it'
    })
  }
  return items.sort((a, b) => rtpKey({ ...a, streamId: a.stream_id }).localeCompare(rtpKey({ ...b, streamId: b.stream_id })))
}

export default zlmRtp
