import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { Type, type Static, type TSchema } from 'typebox'
import { credentialsOf } from '../src/auth/service.js'
import type { Config } from '../src/config.js'
import { AppError, Codes } from '../src/errors.js'
import { hookPipeline, indexRecording, publishLog, replyOf, unknownServer, type HookLog } from '../src/http/hooks.js'
import { redactQuery } from '../src/srs/hooks.js'
import { DEFAULT_VHOST, streamUrl } from '../src/streams.js'
import { PUSH_ORIGINS } from '../src/zlm/adapter.js'
import {
  AnyHookBody, OnFlowReportBody, OnPlayBody, OnPublishBody, OnRecordMp4Body, OnRtpServerTimeoutBody, OnServerStartedBody,
  OnStreamChangedBody, StreamNoticeBody, ZLM_ALLOW, ZlmReply,
  type OnPublish
} from '../src/zlm/hooks.js'
import { UNKNOWN, type ZlmNode } from '../src/zlm/servers.js'

/**
 * What ZLMediaKit calls: POST <prefix>/zlm/on_<hook> (docs/zlm-protocol.md section 1). Every hook is
 * answered HTTP 200 with an integer `code`, validated and logged once. Only on_publish, on_play and
 * the authorising hooks ever refuse; on_publish may wait for a takeover, within its bound and
 * ZLMediaKit's hook.timeoutSec; every other hook answers at once, and what it prompts (a release
 * check, learning a server's secret) runs after the reply. A hook this server does not know gets 0.
 */

const errors = { '4xx': ZlmReply, '5xx': ZlmReply }
const reply = (extra: Record<string, TSchema> = {}) => ({ 200: Type.Object({ ...ZlmReply.properties, ...extra }), ...errors })
/** on_publish when forwarded: the platform's per-stream options (enable_hls, mp4_max_second...) pass through to ZLMediaKit. */
const PASS_THROUGH = { 200: Type.Object({ ...ZlmReply.properties }, { additionalProperties: true }), ...errors }

/** How long finding the server that sent on_publish may take (one rediscovery of unknown servers). */
const RESOLVE_MS = 1000

/** Hooks logged at debug: they come every few seconds and say nothing about a stream. */
const QUIET = new Set(['on_server_keepalive'])

export interface ZlmCallbackRoutesOptions {
  config: Config
}

const zlmCallbacks: FastifyPluginAsyncTypebox<ZlmCallbackRoutesOptions> = async (app, { config }) => {
  const forward = app.forward?.forwards('zlm') === true ? app.forward : undefined
  hookPipeline(app as unknown as FastifyInstance, 'ZLMediaKit', forward !== undefined)

  const hook = <S extends TSchema>(action: string, body: S, response: Record<string, TSchema>, own: (req: FastifyRequest<{ Body: Static<S> }>) => Promise<object>): void => {
    // Forwarding to the platform (FORWARD_ZLM_URL) wraps the handler; without it, the handler as it is.
    const handler = forward === undefined ? own : forward.wrap('zlm', action, own as (req: FastifyRequest) => Promise<{ code: number }>)
    // Each hook answers its own shape, which its response schema checks and serialises.
    const untyped = app as unknown as FastifyInstance
    untyped.post(`/${action}`, { schema: { body, response } as FastifySchema, config: { hook: { action, metric: `zlm/${action}`, zlm: true, quiet: QUIET.has(action) } } }, handler as never)
  }

  const nodeOf = (b: { mediaServerId: string }): ZlmNode | typeof UNKNOWN => app.zlmServers.lookup(b.mediaServerId)

  hook('on_publish', OnPublishBody, forward === undefined ? reply() : PASS_THROUGH, async (req: FastifyRequest<{ Body: OnPublish }>) => {
    const b = req.body
    const key = streamUrl(b.vhost, b.app, b.stream)
    // An older ZLMediaKit names no origin: a push, unless it came over RTP.
    const origin = b.originTypeStr ?? (b.schema === 'rtp' ? 'rtp_push' : 'push')
    const seen: HookLog = { stream: key, client: b.id, ip: b.ip, param: redactQuery(b.params), origin, server: b.mediaServerId, outcome: '', code: 0 }
    // An RTP server's stream is authorised by the RTP server's opening (its sender carries no
    // credentials), and is no session to take over or to evict.
    if (origin === 'rtp_push') {
      req.hookLog = { ...seen, outcome: 'allowed-rtp' }
      return ZLM_ALLOW
    }
    const verdict = await app.auth.checkPublish({ vhost: b.vhost, app: b.app, stream: b.stream, param: b.params, ip: b.ip })
    const node = await app.zlmServers.resolve(b.mediaServerId, Date.now() + RESOLVE_MS)
    if (node === UNKNOWN) {
      const r = unknownServer(config.FAIL_MODE, verdict.ok ? undefined : verdict, `the hook's mediaServerId ${JSON.stringify(b.mediaServerId)} is none of the ZLMediaKit servers in ZLM_API_URL`)
      req.hookLog = { ...seen, outcome: r.outcome, code: r.reply.code, reason: r.reply.msg ?? undefined }
      return r.reply
    }
    if (origin !== 'push' && !PUSH_ORIGINS.has(origin)) {
      // A source of ZLMediaKit's own (a pull, a proxy): checked, never a takeover.
      req.hookLog = verdict.ok ? { ...seen, outcome: 'allowed-not-push' } : { ...seen, outcome: 'refused-credentials', code: verdict.code, reason: verdict.msg }
      return verdict.ok ? ZLM_ALLOW : { code: verdict.code, msg: verdict.msg }
    }
    const r = await app.publishers.publish({
      server: node.server,
      ref: { key, vhost: b.vhost, app: b.app, stream: b.stream },
      newcomer: { id: b.id, ip: b.ip, port: b.port },
      credentials: credentialsOf(verdict),
      policy: app.policyFor(b.vhost, b.app),
      platform: req.platform
    }, req.log)
    req.hookLog = publishLog(seen, node.server.id, r)
    return replyOf(r)
  })

  // Players are never kicked: on_play only checks PLAY_AUTH.
  hook('on_play', OnPlayBody, reply(), async (req) => {
    const b = req.body
    const seen: HookLog = { stream: streamUrl(b.vhost, b.app, b.stream), client: b.id, ip: b.ip, param: redactQuery(b.params), server: b.mediaServerId, outcome: '', code: 0 }
    const verdict = await app.auth.checkPlay({ vhost: b.vhost, app: b.app, stream: b.stream, param: b.params, ip: b.ip })
    if (!verdict.ok) {
      req.hookLog = { ...seen, outcome: 'refused', code: verdict.code, reason: verdict.msg }
      return { code: verdict.code, msg: verdict.msg }
    }
    req.hookLog = { ...seen, outcome: 'allowed' }
    return ZLM_ALLOW
  })

  // regist:true names the origin session: it confirms the table's entry for it. regist:false (once
  // per schema) is the release: a check of who holds the stream now runs after the reply.
  hook('on_stream_changed', OnStreamChangedBody, reply(), async (req) => {
    const b = req.body
    const key = streamUrl(b.vhost, b.app, b.stream)
    const node = nodeOf(b)
    const seen: HookLog = { stream: key, schema: b.schema, regist: b.regist, server: b.mediaServerId, outcome: '', code: 0 }
    if (node === UNKNOWN) {
      req.hookLog = { ...seen, outcome: 'unknown-server' }
      return ZLM_ALLOW
    }
    if (b.regist) {
      const holder = b.originSock?.identifier
      const confirmed = holder !== undefined && holder !== '' && await app.zlm.releases.registered(node.server, key, holder)
      req.hookLog = { ...seen, client: holder, origin: b.originTypeStr, outcome: confirmed ? 'confirmed' : 'registered' }
      return ZLM_ALLOW
    }
    app.zlm.background(app.zlm.releases.changed(node.server, key))
    req.hookLog = { ...seen, outcome: 'unregistered' }
    return ZLM_ALLOW
  })

  // A session ended. A publisher's end is checked like a release (it comes before the regist:false).
  hook('on_flow_report', OnFlowReportBody, reply(), async (req) => {
    const b = req.body
    const key = streamUrl(b.vhost, b.app, b.stream)
    const node = nodeOf(b)
    const player = b.player === true
    if (!player && node !== UNKNOWN) app.zlm.background(app.zlm.releases.changed(node.server, key))
    req.hookLog = { stream: key, client: b.id, ip: b.ip, server: b.mediaServerId, totalBytes: b.totalBytes, outcome: player ? 'player-ended' : 'publisher-ended', code: 0 }
    return ZLM_ALLOW
  })

  // An MP4 file is complete: indexed with the recordings of every server, before the reply.
  hook('on_record_mp4', OnRecordMp4Body, reply(), async (req) => {
    const b = req.body
    const key = streamUrl(b.vhost, b.app, b.stream)
    const r = await indexRecording(app.recordings, {
      vhost: b.vhost,
      app: b.app,
      stream: b.stream,
      streamUrl: key,
      // ZLMediaKit names no session here.
      clientId: '',
      serverId: b.mediaServerId,
      file: b.file_path,
      startedAt: b.start_time === undefined ? undefined : b.start_time * 1000
    })
    req.hookLog = { stream: key, server: b.mediaServerId, ...r, code: 0, file: b.file_path }
    return ZLM_ALLOW
  })

  // ZLMediaKit erased the RTP server before sending this: a kept one is reopened at once.
  hook('on_rtp_server_timeout', OnRtpServerTimeoutBody, reply(), async (req) => {
    const b = req.body
    const r = { vhost: b.vhost ?? DEFAULT_VHOST, app: b.app ?? 'rtp', streamId: b.stream_id }
    const node = nodeOf(b)
    const outcome = node === UNKNOWN ? 'unknown-server' : await app.zlm.rtp.timedOut(node.server, r)
    req.hookLog = { stream: streamUrl(r.vhost, r.app, r.streamId), server: b.mediaServerId, port: b.local_port, outcome, code: 0 }
    return ZLM_ALLOW
  })

  // Every configuration key, api.secret included: never logged. The secret is checked against the
  // server's API and adopted (ZLM_SECRET unset); a restarted server lost its RTP servers, so its
  // kept ones are reopened. Both after the reply.
  hook('on_server_started', OnServerStartedBody, reply(), async (req) => {
    const b = req.body
    const log = req.log
    app.zlm.background((async () => {
      const node = await app.zlmServers.started(b.mediaServerId, b['api.secret'], Date.now() + 2 * config.ZLM_API_TIMEOUT_MS)
      if (node !== undefined) await app.zlm.reconcileRtp()
    })().catch((err: unknown) => {
      /* c8 ignore next */
      log.warn({ err: (err as Error).message }, 'could not take in the started ZLMediaKit')
    }))
    req.hookLog = { server: b.mediaServerId, outcome: 'started', code: 0 }
    return ZLM_ALLOW
  })

  // Never close a stream for lack of viewers: a camera's push must stay.
  hook('on_stream_none_reader', StreamNoticeBody, reply({ close: Type.Boolean() }), async (req) => {
    req.hookLog = { ...noticed(req.body), outcome: 'kept', code: 0 }
    return { ...ZLM_ALLOW, close: false }
  })

  // A player waits for its stream (maxStreamWaitMS): the camera may be reconnecting.
  hook('on_stream_not_found', StreamNoticeBody, reply({ close: Type.Boolean() }), async (req) => {
    req.hookLog = { ...noticed(req.body), outcome: 'wait', code: 0 }
    return { ...ZLM_ALLOW, close: false }
  })

  // ZLMediaKit's file server: allowed; the answer is cached for the directory for 10 minutes.
  hook('on_http_access', AnyHookBody, reply({ err: Type.String(), path: Type.String(), second: Type.Integer() }), async (req) => {
    req.hookLog = { server: req.body.mediaServerId, outcome: 'allowed', code: 0 }
    return { ...ZLM_ALLOW, err: '', path: '', second: 600 }
  })

  // No RTSP realm: RTSP players are authorised by on_play like the others, and on_rtsp_auth (only
  // asked for a realm) is refused.
  hook('on_rtsp_realm', StreamNoticeBody, reply({ realm: Type.String() }), async (req) => {
    req.hookLog = { ...noticed(req.body), outcome: 'no-realm', code: 0 }
    return { ...ZLM_ALLOW, realm: '' }
  })
  for (const action of ['on_rtsp_auth', 'on_shell_login'] as const) {
    hook(action, AnyHookBody, reply(), async (req) => {
      const msg = action === 'on_rtsp_auth'
        ? 'srs-hooks gives no RTSP realm: RTSP players are authorised by on_play (PLAY_AUTH)'
        : 'srs-hooks authorises no shell logins'
      req.hookLog = { server: req.body.mediaServerId, outcome: 'refused', code: Codes.ZLM_NOT_AUTHORISED, reason: msg }
      return { code: Codes.ZLM_NOT_AUTHORISED, msg }
    })
  }

  for (const action of ['on_record_ts', 'on_server_keepalive', 'on_server_exited', 'on_send_rtp_stopped'] as const) {
    hook(action, StreamNoticeBody, reply(), async (req) => {
      req.hookLog = { ...noticed(req.body), outcome: 'noted', code: 0 }
      return ZLM_ALLOW
    })
  }

  // A hook of a newer ZLMediaKit: noted and answered 0.
  app.post('/on_*', { schema: { body: AnyHookBody, response: reply() }, config: { hook: { action: undefined, metric: 'zlm/other', zlm: true } } }, async (req) => {
    if (!/^[a-z0-9_]{1,64}$/.test((req.params as Record<string, string>)['*']!)) {
      throw new AppError(`no route POST ${req.url.split('?')[0]!}`, Codes.NOT_FOUND, 404)
    }
    req.hookLog = { server: req.body.mediaServerId, outcome: 'unknown-hook', code: 0 }
    return ZLM_ALLOW
  })
}

function noticed (b: { mediaServerId: string, vhost?: string | undefined, app?: string | undefined, stream?: string | undefined }): HookLog {
  const stream = b.app !== undefined && b.stream !== undefined ? streamUrl(b.vhost ?? DEFAULT_VHOST, b.app, b.stream) : undefined
  return { stream, server: b.mediaServerId, outcome: '', code: 0 }
}

export default zlmCallbacks
