import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Static, TSchema } from 'typebox'
import { credentialsOf } from '../src/auth/service.js'
import type { Config } from '../src/config.js'
import { AppError, Codes, failureOf, type Code } from '../src/errors.js'
import { lazySerializerCompiler, validatorCompiler } from '../src/http/validation.js'
import { jsonString, LazyChildLogger, LineWriter, unredacted, type Log } from '../src/logger.js'
import type { PlatformCheck } from '../src/publishers/media.js'
import type { PublishResult } from '../src/publishers/service.js'
import { UnindexableRecordingError, type DvrNotice, type RecordingService } from '../src/recordings/service.js'
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

/** What the one log line per hook says besides action, status and milliseconds. */
export interface HookLog {
  stream?: string | undefined
  client?: string
  /** Why the hook was refused or not processed (the reply's msg). */
  reason?: string
  ip?: string | undefined
  param?: string | undefined
  outcome: string
  code: number
  [extra: string]: unknown
}

/** What a hook's handler sees of its request: Fastify's request, or the hook front's. */
export interface HookRequest<B> {
  body: B
  log: Log
  hookLog: HookLog | null
  /** The body as it arrived, and the platform's verdict: set when hooks are forwarded (src/forward/). */
  rawBody?: string | null
  platform?: PlatformCheck | null
}

const JSON_TYPE = 'application/json; charset=utf-8'

declare module 'fastify' {
  interface FastifyRequest {
    hookLog: HookLog | null
  }
}

const response = { 200: HookReply, '4xx': HookReply, '5xx': HookReply }

/** How long finding the server that sent a hook may take (one rediscovery of unknown servers). */
const RESOLVE_MS = 1000

/**
 * A recording a media server reported (SRS's on_dvr, ZLMediaKit's on_record_mp4), stored before
 * the reply: one that never could be is the sender's error (400), one that cannot be stored now is
 * answered 503 so that the server retries it.
 */
export async function indexRecording (recordings: RecordingService, n: DvrNotice): Promise<{ outcome: string, recording: number | undefined }> {
  try {
    const r = await recordings.index(n)
    return { outcome: !r.created ? 'duplicate' : r.spooled ? 'spooled' : 'stored', recording: r.id ?? undefined }
  } catch (err) {
    const msg = `recording ${JSON.stringify(n.file)} not stored: ${(err as Error).message}`
    if (err instanceof UnindexableRecordingError) throw new AppError(msg, Codes.INVALID_BODY, 400, { cause: err })
    throw new AppError(msg, Codes.RECORDING_NOT_STORED, 503, { cause: err })
  }
}

export interface CallbackRoutesOptions {
  config: Config
}

const callbacks: FastifyPluginAsyncTypebox<CallbackRoutesOptions> = async (app, { config }) => {
  // SRS sends application/json; curl -d sends a form type. Parse every body as JSON, and an
  // empty one is an error: every hook has a body.
  app.removeAllContentTypeParsers()
  const forward = app.forward
  const parse = app.getDefaultJsonParser('error', 'error')
  // The body as it arrived is kept for the platform (forwarded unchanged).
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    if (forward !== undefined) req.rawBody = body as string
    parse(req, body as string, done)
  })

  // The one line per hook, written by a child of the app's logger without redaction: its fields
  // are all known and none is a secret (param's credentials are masked by redactQuery), and
  // redaction walks every line for its paths. reqId first, where the request's own child puts it:
  // the same line. A LineWriter builds it as one string, the same as pino's, for a fifth of its cost.
  const lines = unredacted(app.log)
  const writer = LineWriter.of(lines as Logger)
  // A refused or failed hook's line names its caller's address (the hook's `ip` is the client's, as the body says).
  const logLine = (reqId: string, action: string, hookLog: HookLog | null, status: number, ms: number, caller: string | undefined): void => {
    const rounded = Math.round(ms * 10) / 10
    const warn = status >= 400
    const msg = warn ? 'hook not processed' : 'hook'
    if (writer?.enabled(warn ? 40 : 30) === false) return
    const refused = warn || hookLog?.code !== 0 ? caller : undefined
    // Left to pino: a logger the writer does not write for, or a field that is an object.
    // Every callback path sets hookLog (its handler, or the error handler); {} guards a plugin answering first.
    /* c8 ignore next */
    const fields = writer?.fields(hookLog ?? {})
    if (fields !== undefined) {
      writer!.write(warn ? 40 : 30, ',"reqId":' + jsonString(reqId) + ',"action":' + jsonString(action) + fields +
        (refused === undefined ? '' : ',"caller":' + jsonString(refused)) + ',"status":' + String(status) + ',"ms":' + String(rounded), msg)
      return
    }
    const line = { reqId, action, ...hookLog, caller: refused, status, ms: rounded }
    if (warn) lines.warn(line, msg)
    else lines.info(line, msg)
  }
  app.addHook('onResponse', (req, reply, done) => {
    logLine(req.id, actionOf(req), req.hookLog, reply.statusCode, reply.elapsedTime, req.ip)
    done()
  })

  // Only SRS may call (HOOK_TOKEN, HOOK_ALLOW): checked before the body is read, so a refused
  // caller changes nothing.
  const callerRefused = (ip: string, token: unknown): AppError | undefined => {
    const refused = app.auth.checkCaller(ip, token)
    return refused === undefined ? undefined : new AppError(refused.msg, refused.code as Code, 403)
  }
  app.addHook('onRequest', (req, _reply, done) => { done(callerRefused(req.ip, (req.query as Record<string, unknown>).token)) })

  const front = app.hookFront
  const json = app.getDefaultJsonParser('error', 'error')
  const serialize = lazySerializerCompiler()({ schema: HookReply, method: 'POST', url: '', httpStatus: '200' })
  const root = app.log as Logger

  const hook = <S extends TSchema>(action: HookAction, body: S, own: (req: HookRequest<Static<S>>) => Promise<HookReply>): void => {
    // Forwarding to the platform (FORWARD_URL) wraps the handler; without it, the handler as it is.
    const handler = forward === undefined ? own : forward.wrap('srs', action, own)
    const mismatch = (sent: string): AppError | undefined =>
      sent === action ? undefined : new AppError(`body.action is ${JSON.stringify(sent)} but this is the ${action} callback; check the hook URLs in srs.conf`, Codes.ACTION_MISMATCH, 400)
    app.post(`/${action}`, {
      schema: { body, response },
      preHandler: (req, _reply, done) => { done(mismatch((req.body as { action: string }).action)) }
    }, async (req) => await handler(req as unknown as HookRequest<Static<S>>))
    const validate = validatorCompiler({ schema: body, method: 'POST', url: `/${action}`, httpPart: 'body' }) as (value: unknown) => { error?: FastifyError['validation'] }

    /**
     * The same request served in front of Fastify, in Fastify's order: the caller check, the body
     * read and parsed as the content-type parser does (Fastify's JSON parser), the schema, the
     * action, the handler, the reply through the route's serializer; then the log line and the
     * metrics. Declined (Fastify serves it): a body not sized up front (chunked), empty, over
     * BODY_LIMIT, or without a content type.
     */
    front.add(`${app.prefix}/${action}`, (raw, res) => {
      const { headers } = raw
      const length = Number(headers['content-length'])
      if (headers['transfer-encoding'] !== undefined || headers['content-type'] === undefined || !(length > 0 && length <= config.BODY_LIMIT)) return false
      const started = performance.now()
      const id = front.requestId()
      const req: HookRequest<Static<S>> = { body: undefined as never, log: new LazyChildLogger(root, { reqId: id }, {}), hookLog: null }
      // A body that could not be parsed closes its connection (the caller may send more of it), as Fastify does.
      const answer = (status: number, reply: HookReply, unparsed = false): void => {
        const payload = serialize(reply)
        res.writeHead(status, unparsed || front.closing
          ? { 'content-type': JSON_TYPE, connection: 'close', 'content-length': Buffer.byteLength(payload) }
          : { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(payload) })
        res.end(payload)
        const ms = performance.now() - started
        logLine(id, action, req.hookLog, status, ms, raw.socket.remoteAddress)
        app.metrics.hookAnswered(action, req.hookLog!.outcome, ms)
      }
      const fail = (err: unknown, unparsed = false): void => {
        const failed = failureOf(err as FastifyError, req.log)
        req.hookLog = failed.hookLog
        answer(failed.status, failed.reply, unparsed)
      }
      const refused = callerRefused(raw.socket.remoteAddress!, undefined)
      if (refused !== undefined) {
        fail(refused)
        return true
      }
      const chunks: Buffer[] = []
      const onData = (chunk: Buffer): void => { chunks.push(chunk) }
      const onEnd = (): void => {
        raw.removeListener('data', onData)
        raw.removeListener('error', onAbort)
        let parsed: { error: Error | null, body?: unknown } = { error: null }
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')
        json(raw as never, text, (error, value) => { parsed = { error, body: value } })
        if (parsed.error !== null) return fail(parsed.error, true)
        const checked = validate(parsed.body)
        if (checked.error !== undefined) return fail({ validation: checked.error, validationContext: 'body' })
        const wrong = mismatch((parsed.body as { action: string }).action)
        if (wrong !== undefined) return fail(wrong)
        req.body = parsed.body as Static<S>
        if (forward !== undefined) req.rawBody = text
        handler(req).then((reply) => { answer(200, reply) }, fail)
      }
      // The caller hung up before its body arrived: nobody to answer, and, as on Fastify's path, nothing logged or counted.
      const onAbort = (): void => {
        raw.removeListener('data', onData)
        raw.removeListener('end', onEnd)
      }
      raw.on('data', onData)
      raw.once('end', onEnd)
      raw.once('error', onAbort)
      return true
    })
  }

  /**
   * The SRS a hook came from; UNKNOWN when its server_id is none of SRS_API_URL's servers'. Only
   * the publish hook waits to find out (one rediscovery, bounded); the others never wait on SRS.
   */
  const nodeOf = (b: { server_id?: string | undefined }): SrsNode | typeof UNKNOWN => app.srsServers.lookup(b.server_id)

  /** The server id a release hook is filed under: the node's, or the hook's own when unknown. */
  const serverIdOf = (node: SrsNode | typeof UNKNOWN, b: { server_id?: string | undefined }): string =>
    node === UNKNOWN ? b.server_id ?? '' : node.server.id

  hook('on_publish', HookBodies.on_publish, async (req: HookRequest<OnPublish>) => {
    const b = req.body
    const key = streamKeyOf(b)
    const client = clientIdOf(b)
    const seen = describe(b, key, client)
    const node = await app.srsServers.resolve(b.server_id, Date.now() + RESOLVE_MS)
    // Only an on_connect of the token strategy remembers clients (see on_connect); credentials it counted are not counted again.
    const connected = node !== UNKNOWN && node.strategy !== 'publish' ? await app.publishers.progressed(node.server.id, client) : undefined
    const verdict = await app.auth.checkPublish({ vhost: b.vhost, app: b.app, stream: b.stream, param: b.param, ip: b.ip }, connected?.credentials)
    if (node === UNKNOWN) {
      const r = unknownServer(config.FAIL_MODE, b.server_id, verdict.ok ? undefined : verdict)
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
  hook('on_connect', HookBodies.on_connect, async (req: HookRequest<OnConnect>) => {
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

  hook('on_unpublish', HookBodies.on_unpublish, async (req: HookRequest<OnPublish>) => {
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
  hook('on_play', HookBodies.on_play, async (req: HookRequest<OnPlay>) => {
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
    hook(action, HookBodies[action], async (req: HookRequest<OnPublish>) => {
      const b = req.body
      req.hookLog = { ...describe(b, streamKeyOf(b), clientIdOf(b)), outcome: 'allowed', code: 0 }
      return ALLOW
    })
  }
}

/** The reply to a hook from a server none of SRS_API_URL's is: per FAIL_MODE; credentials still count. */
function unknownServer (failMode: 'open' | 'closed', serverId: string | undefined, refused: { code: number, msg: string } | undefined): { outcome: string, reply: HookReply } {
  if (refused !== undefined) return { outcome: 'refused-credentials', reply: { code: refused.code, msg: refused.msg } }
  if (failMode === 'open') return { outcome: 'unknown-server-open', reply: ALLOW }
  const msg = `the hook's server_id ${JSON.stringify(serverId ?? null)} is none of the SRS servers in SRS_API_URL; FAIL_MODE=closed refuses what it cannot check`
  return { outcome: 'refused-unknown-server', reply: { code: Codes.SRS_API_UNAVAILABLE, msg } }
}

function replyOf (r: PublishResult): HookReply {
  return r.allowed ? ALLOW : { code: r.refusal!.code, msg: r.refusal!.msg }
}

/** The log line of a publish or connect the core decided, on either media server. */
export function publishLog (seen: HookLog, server: string, r: PublishResult): HookLog {
  return { ...seen, server, outcome: r.outcome, code: r.allowed ? 0 : r.refusal!.code, reason: r.refusal?.msg, evicted: r.evicted, waitMs: r.release?.waitMs }
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
