import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type, type Static, type TObject } from 'typebox'
import { credentialsOf } from '../src/auth/service.js'
import type { Config } from '../src/config.js'
import { hookPipeline, publishLog, replyOf, unknownServer, indexRecording, type HookLog } from '../src/http/hooks.js'
import { srsTopic, tokenKey } from '../src/srs/adapter.js'
import {
  ALLOW, HookBodies, HookReply, clientIdOf, redactQuery, streamIdOf, streamKeyOf,
  type HookAction, type OnConnect, type OnPlay, type OnPublish
} from '../src/srs/hooks.js'
import { UNKNOWN, type SrsNode } from '../src/srs/servers.js'

/**
 * What SRS calls: POST <prefix>/on_<event>. Each hook is validated, answered and logged once.
 * on_publish (and on SRS >= 7.0.62 on_connect) may wait for a takeover, within its bound; every
 * other hook answers at once and never waits on them, because SRS calls them while it releases a
 * publisher.
 */

const response = { 200: HookReply, '4xx': HookReply, '5xx': HookReply }

/** How long finding the server that sent a hook may take (one rediscovery of unknown servers). */
const RESOLVE_MS = 1000

export interface CallbackRoutesOptions {
  config: Config
}

const callbacks: FastifyPluginAsyncTypebox<CallbackRoutesOptions> = async (app, { config }) => {
  const forward = app.forward
  hookPipeline(app, 'SRS', forward !== undefined)

  // SRS's body names its action, which the schema requires to be the route's (a body sent to another hook's URL is refused).
  const hook = <S extends TObject>(action: HookAction, body: S, own: (req: FastifyRequest<{ Body: Static<S> }>) => Promise<HookReply>): void => {
    const schema = { body: Type.Object({ ...body.properties, action: Type.Literal(action) }, { additionalProperties: true }), response }
    // Forwarding to the platform (FORWARD_URL) wraps the handler; without it, the handler as it is.
    const handler = forward === undefined ? own : forward.wrap('srs', action, own)
    const untyped = app as unknown as FastifyInstance
    untyped.post(`/${action}`, { schema, config: { hook: { action, metric: action } } }, handler)
  }

  /**
   * The SRS a hook came from; UNKNOWN when its server_id is none of SRS_API_URL's servers'. Only
   * the publish hook waits to find out (one rediscovery, bounded); the others never wait on SRS.
   */
  const nodeOf = (b: { server_id?: string | undefined }): SrsNode | typeof UNKNOWN => app.srsServers.lookup(b.server_id)

  /** The server id a release hook is filed under: the node's, or the hook's own when unknown. */
  const serverIdOf = (node: SrsNode | typeof UNKNOWN, b: { server_id?: string | undefined }): string =>
    node === UNKNOWN ? b.server_id ?? '' : node.server.id

  hook('on_publish', HookBodies.on_publish, async (req: FastifyRequest<{ Body: OnPublish }>) => {
    const b = req.body
    const key = streamKeyOf(b)
    const client = clientIdOf(b)
    const seen = describe(b, key, client)
    const node = await app.srsServers.resolve(b.server_id, Date.now() + RESOLVE_MS)
    // Only an on_connect of the token strategy remembers clients (see on_connect); credentials it counted are not counted again.
    const connected = node !== UNKNOWN && node.strategy !== 'publish' ? await app.publishers.progressed(node.server.id, client) : undefined
    const verdict = await app.auth.checkPublish({ vhost: b.vhost, app: b.app, stream: b.stream, param: b.param, ip: b.ip }, connected?.credentials)
    if (node === UNKNOWN) {
      const r = unknownServer(config.FAIL_MODE, verdict.ok ? undefined : verdict, `the hook's server_id ${JSON.stringify(b.server_id ?? null)} is none of the SRS servers in SRS_API_URL`)
      req.hookLog = { ...seen, outcome: r.outcome, code: r.reply.code, reason: r.reply.msg ?? undefined }
      return r.reply
    }
    const request = {
      server: node.server,
      ref: { key, vhost: b.vhost, app: b.app, stream: b.stream, streamId: streamIdOf(b) },
      newcomer: { id: client, ip: b.ip },
      credentials: credentialsOf(verdict),
      policy: app.policyFor(b.vhost, b.app),
      // Where SRS cannot list the newcomer yet (before 5.0.55), an authenticated hook vouches for it.
      callerAuthenticated: app.auth.callersAuthenticated,
      platform: req.platform
    }
    const r = node.strategy === 'connect'
      ? await app.publishers.publishHoldingToken(request, req.log)
      : await app.publishers.publish(request, req.log)
    req.hookLog = publishLog(seen, node.server.id, r)
    return replyOf(r)
  })

  // SRS >= 7.0.62 takes the stream's publish token right after on_connect: a publisher with valid
  // credentials takes the stream over here. Every other client is answered at once.
  hook('on_connect', HookBodies.on_connect, async (req: FastifyRequest<{ Body: OnConnect }>) => {
    const b = req.body
    const client = clientIdOf(b)
    // SRS 4's on_connect names no stream: nothing to take over there.
    const stream = b.stream === undefined || b.stream === '' ? undefined : b.stream
    const key = stream === undefined ? undefined : tokenKey(b.vhost, b.app, stream)
    const seen = describe(b, key, client)
    const node = stream === undefined ? UNKNOWN : nodeOf(b)
    if (stream === undefined || node === UNKNOWN || node.strategy === 'publish') {
      req.hookLog = { ...seen, outcome: 'allowed', code: 0 }
      return ALLOW
    }
    const r = await app.publishers.connect({
      server: node.server,
      ref: { key: key!, vhost: b.vhost, app: b.app, stream: stream.replace(/\.(flv|m3u8|mp4|ts)$/, '') },
      newcomer: { id: client, ip: b.ip },
      credentials: credentialsOf(await app.auth.checkConnect({ vhost: b.vhost, app: b.app, stream, param: b.param, ip: b.ip })),
      policy: app.policyFor(b.vhost, b.app),
      platform: req.platform
    }, req.log)
    req.hookLog = publishLog(seen, node.server.id, r)
    return replyOf(r)
  })

  hook('on_unpublish', HookBodies.on_unpublish, async (req: FastifyRequest<{ Body: OnPublish }>) => {
    const b = req.body
    const key = streamKeyOf(b)
    const client = clientIdOf(b)
    const server = serverIdOf(nodeOf(b), b)
    app.publishers.released([srsTopic(server, 'unpublish', client)])
    const removed = await app.publishers.unpublished(server, key, client)
    req.hookLog = { ...describe(b, key, client), outcome: removed ? 'removed' : 'not-current-publisher', code: 0 }
    return ALLOW
  })

  hook('on_close', HookBodies.on_close, async (req) => {
    const b = req.body
    const client = clientIdOf(b)
    const node = nodeOf(b)
    app.publishers.released([srsTopic(serverIdOf(node, b), 'close', client)])
    let outcome = 'closed'
    if (node !== UNKNOWN) {
      const r = await app.publishers.closed(node.server, client, req.log)
      outcome = r.removed ? 'removed' : r.deferred ? 'refused-by-token' : 'closed'
    }
    req.hookLog = { client, ip: b.ip, outcome, code: 0 }
    return ALLOW
  })

  // on_dvr: the recording is stored durably (the index, or the spool while PostgreSQL is out of
  // reach) before the reply; the file itself is examined afterwards, off the reply's path, so SRS's
  // DVR worker never waits on it.
  hook('on_dvr', HookBodies.on_dvr, async (req) => {
    const b = req.body
    const key = streamKeyOf(b)
    const client = clientIdOf(b)
    const r = await indexRecording(app.recordings, {
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
    req.hookLog = { ...describe(b, key, client), ...r, code: 0, file: b.file }
    return ALLOW
  })

  // on_play: allowed, unless PLAY_AUTH refuses it; a player's play also tells the on_connect
  // takeover that this client was no refused publisher.
  hook('on_play', HookBodies.on_play, async (req: FastifyRequest<{ Body: OnPlay }>) => {
    const b = req.body
    const client = clientIdOf(b)
    const seen = describe(b, streamKeyOf(b), client)
    const node = nodeOf(b)
    if (node !== UNKNOWN && node.strategy !== 'publish') await app.publishers.progressed(node.server.id, client)
    const verdict = await app.auth.checkPlay({ vhost: b.vhost, app: b.app, stream: b.stream, param: b.param, ip: b.ip })
    if (!verdict.ok) {
      req.hookLog = { ...seen, outcome: 'refused', code: verdict.code, reason: verdict.msg }
      return { code: verdict.code, msg: verdict.msg }
    }
    req.hookLog = { ...seen, outcome: 'allowed', code: 0 }
    return ALLOW
  })

  for (const action of ['on_stop', 'on_hls'] as const) {
    hook(action, HookBodies[action], async (req: FastifyRequest<{ Body: OnPublish }>) => {
      const b = req.body
      req.hookLog = { ...describe(b, streamKeyOf(b), clientIdOf(b)), outcome: 'allowed', code: 0 }
      return ALLOW
    })
  }
}

function describe (b: { ip?: string | undefined, param?: string | undefined }, stream: string | undefined, client: string): HookLog {
  return { stream, client, ip: b.ip, param: redactQuery(b.param), outcome: '', code: 0 }
}

export default callbacks
