import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { AppError, Codes, failureOf, type Code } from '../errors.js'
import { jsonString, LineWriter, unredacted } from '../logger.js'
import { hookJsonParser } from './json-body.js'
import type { PublishResult } from '../publishers/service.js'
import { UnindexableRecordingError, type DvrNotice, type RecordingService } from '../recordings/service.js'

/**
 * The one request pipeline of the media servers' callbacks (SRS's and ZLMediaKit's): every body
 * parsed as JSON, the caller checked (HOOK_TOKEN, HOOK_ALLOW) before the body is read, failures
 * answered with a code, and one line and the metrics per answered hook, written by one onResponse.
 * Each route names its hook in its config (`hook`), so nothing is worked out per request.
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

/** A hook route's name, as its line and its metrics say it. */
export interface HookRoute {
  /** The line's `action` (on_publish); undefined for ZLMediaKit's catch-all, whose line names the hook it was sent. */
  action: string | undefined
  /** The metrics' `action` label (on_publish, zlm/on_publish, zlm/other). */
  metric: string
  /** ZLMediaKit's hooks say so in their line (`"kind":"zlm"`). */
  zlm?: boolean
  /** Logged at debug: a hook that comes every few seconds and says nothing about a stream. */
  quiet?: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    hookLog: HookLog | null
  }
  interface FastifyContextConfig {
    hook?: HookRoute
  }
}

/** A hook's reply: `code` 0 allows (both media servers read it so), `msg` says why not. */
export interface Reply {
  code: number
  msg: string | null
}

/** The reply that allows (frozen: shared by every allowed hook). */
export const ALLOW: Reply = Object.freeze({ code: 0, msg: null })

/**
 * Sets up the calling (encapsulated) plugin's hook routes: JSON bodies, the caller check only when
 * HOOK_TOKEN or HOOK_ALLOW is set, the error mapping, and the onResponse that writes the line and
 * the metrics. Every route registered in it must set `config: { hook }`. With `keepRaw` (hooks
 * forwarded to the platform, src/forward/), each request keeps its body as it arrived in `rawBody`.
 */
export function hookPipeline (app: FastifyInstance, sender: 'SRS' | 'ZLMediaKit', keepRaw = false): void {
  // The media servers send application/json; curl -d sends a form type. Parse every body as
  // JSON, and an empty one is an error: every hook has a body.
  app.removeAllContentTypeParsers()
  const parse = hookJsonParser(app.getDefaultJsonParser('error', 'error'), sender)
  app.addContentTypeParser('*', { parseAs: 'string' }, keepRaw
    ? (req, body, done) => {
        req.rawBody = body as string
        parse(req, body as string, done)
      }
    : parse)

  // Only the media server may call: checked before the body is read, so a refused caller changes nothing.
  if (app.auth.callersAuthenticated) {
    app.addHook('onRequest', (req, _reply, done) => {
      const refused = app.auth.checkCaller(req.ip, (req.query as Record<string, unknown>).token)
      done(refused === undefined ? undefined : new AppError(refused.msg, refused.code as Code, 403))
    })
  }

  // A failed hook is answered with a code and its reason, which its line says (no other line).
  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    const failed = failureOf(actionMismatch(err, req) ?? err, req.log)
    req.hookLog = failed.hookLog
    return reply.code(failed.status).send(failed.reply)
  })

  const line = hookLine(app)
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.config.hook!
    const ms = reply.elapsedTime
    // Every hook route sets hookLog (its handler, or the error handler); {} guards a plugin answering first.
    /* c8 ignore next */
    const hookLog = req.hookLog ?? { outcome: 'unknown', code: 0 }
    line(req, route, hookLog, reply.statusCode, ms)
    app.metrics.hookAnswered(route.metric, hookLog.outcome, ms)
    done()
  })
}

/**
 * SRS's hook bodies name their action, which the schema requires to be the route's: a body sent to
 * another hook's URL is the sender's configuration error, said as such (ACTION_MISMATCH).
 */
function actionMismatch (err: FastifyError | AppError, req: FastifyRequest): AppError | undefined {
  if (err instanceof AppError || err.validation === undefined || !err.validation.every((v) => v.instancePath === '/action')) return undefined
  const sent = (req.body as { action?: unknown }).action
  if (typeof sent !== 'string') return undefined
  const action = req.routeOptions.config.hook!.action!
  return new AppError(`body.action is ${JSON.stringify(sent)} but this is the ${action} callback; check the hook URLs in srs.conf`, Codes.ACTION_MISMATCH, 400)
}

/**
 * The one line per hook, written by a child of the app's logger without redaction: its fields are
 * all known and none is a secret (a param's credentials are masked by redactQuery), and redaction
 * walks every line for its paths. reqId first, where the request's own child puts it: the same
 * line. A LineWriter builds it as one string, the same as pino's, for a fifth of its cost. A
 * refused or failed hook's line names its caller's address (the hook's `ip` is the client's).
 */
function hookLine (app: FastifyInstance): (req: FastifyRequest, route: HookRoute, hookLog: HookLog, status: number, ms: number) => void {
  const lines = unredacted(app.log)
  const writer = LineWriter.of(lines as Logger)
  return (req, route, hookLog, status, ms) => {
    const level = status >= 400 ? 40 : route.quiet === true ? 20 : 30
    if (writer?.enabled(level) === false) return
    const msg = level === 40 ? 'hook not processed' : 'hook'
    const rounded = Math.round(ms * 10) / 10
    const caller = level === 40 || hookLog.code !== 0 ? req.ip : undefined
    const action = route.action ?? `on_${(req.params as Record<string, string>)['*']!}`
    const index = route.zlm === true ? (req.body as { hook_index?: unknown } | undefined)?.hook_index : undefined
    const hookIndex = typeof index === 'number' ? index : undefined
    // Left to pino: a logger the writer does not write for, or a field that is an object.
    const fields = writer?.fields(hookLog)
    if (fields !== undefined) {
      writer!.write(level, ',"reqId":' + jsonString(req.id) + (route.zlm === true ? ',"kind":"zlm"' : '') + ',"action":' + jsonString(action) +
        (hookIndex === undefined ? '' : ',"hookIndex":' + String(hookIndex)) + fields +
        (caller === undefined ? '' : ',"caller":' + jsonString(caller)) + ',"status":' + String(status) + ',"ms":' + String(rounded), msg)
      return
    }
    const line = { reqId: req.id, kind: route.zlm === true ? 'zlm' : undefined, action, hookIndex, ...hookLog, caller, status, ms: rounded }
    if (level === 40) lines.warn(line, msg)
    else if (level === 20) lines.debug(line, msg)
    else lines.info(line, msg)
  }
}

/** The reply to a hook from a server none of the configured ones is: per FAIL_MODE; credentials still count. */
export function unknownServer (failMode: 'open' | 'closed', refused: { code: number, msg: string } | undefined, unknown: string): { outcome: string, reply: Reply } {
  if (refused !== undefined) return { outcome: 'refused-credentials', reply: { code: refused.code, msg: refused.msg } }
  if (failMode === 'open') return { outcome: 'unknown-server-open', reply: ALLOW }
  return { outcome: 'refused-unknown-server', reply: { code: Codes.SRS_API_UNAVAILABLE, msg: `${unknown}; FAIL_MODE=closed refuses what it cannot check` } }
}

/** The reply to a publish or connect the core decided. */
export function replyOf (r: PublishResult): Reply {
  return r.allowed ? ALLOW : { code: r.refusal!.code, msg: r.refusal!.msg }
}

/** The log line of a publish or connect the core decided, on either media server. */
export function publishLog (seen: HookLog, server: string, r: PublishResult): HookLog {
  return { ...seen, server, outcome: r.outcome, code: r.allowed ? 0 : r.refusal!.code, reason: r.refusal?.msg, evicted: r.evicted, waitMs: r.release?.waitMs }
}

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
