import type { Dispatcher } from 'undici'
import { MediaApiError, type MediaApiErrorKind } from '../errors.js'
import { ApiDispatcher } from '../http/dispatcher.js'

/**
 * ZLMediaKit's HTTP API (docs/zlm-protocol.md section 3): the only code that talks to ZLMediaKit.
 *
 * Every call is a POST of a form (so the secret travels in the body, never in a URL that a proxy
 * or ZLMediaKit's own debug log would print with the path), bounded by ZLM_API_TIMEOUT_MS and, when
 * the caller passes one, by its deadline. Reads, and the actions that may safely happen twice (a
 * kick, the close of an RTP server), are retried with exponential backoff and full jitter while the
 * deadline allows: ZLMediaKit shuts a connection down after every failure answer, so a kept-alive
 * connection can be gone under a request. openRtpServer is never retried. ZLMediaKit
 * answers HTTP 200 with `{"code": N}`: 0 ok, -1 other failure, -100 auth, -300 invalid arguments
 * (also "already exists"), -400 exception (a port that cannot be bound), -500 not found. Every
 * failure surfaces as a ZlmApiError with a kind; no message ever carries the secret.
 */

export type ZlmErrorKind = MediaApiErrorKind

/** A failed call to ZLMediaKit's HTTP API. */
export class ZlmApiError extends MediaApiError {
  /** ZLMediaKit's own words (`msg`), when it answered with a failure code. */
  readonly zlmMsg: string | undefined

  constructor (kind: ZlmErrorKind, message: string, opts: { detail?: number, unknownOutcome?: boolean, zlmMsg?: string, cause?: unknown } = {}) {
    super(kind, message, opts)
    this.name = 'ZlmApiError'
    this.zlmMsg = opts.zlmMsg
  }
}

/** ZLMediaKit's API codes (server/WebApi.h, ApiErr). */
export const ZlmCode = {
  Success: 0,
  OtherFailed: -1,
  AuthFailed: -100,
  InvalidArgs: -300,
  Exception: -400,
  NotFound: -500
} as const

/** One media source under one schema, as getMediaList lists it (the parts we read). */
export interface ZlmMedia {
  schema: string
  vhost: string
  app: string
  stream: string
  /** rtmp_push, rtsp_push, srt_push, rtc_push, rtp_push, pull, unknown... */
  originTypeStr: string
  /** originSock.identifier: the publishing session (for rtp_push, the stream id); none for a source a dead publisher left. */
  identifier: string | undefined
  peerIp: string | undefined
  peerPort: number | undefined
  totalBytes: number | undefined
  readerCount: number | undefined
  totalReaderCount: number | undefined
  aliveSecond: number | undefined
  /** Seconds since the epoch when the source was created. */
  createStamp: number | undefined
}

/** A TCP or UDP session as getAllSession lists it. */
export interface ZlmSession {
  id: string
  peerIp: string
  peerPort: number
  localPort: number
  typeid: string
}

/** An entry of the RTP server map (listRtpServer): what openRtpServer checks. */
export interface ZlmRtpServer {
  vhost: string
  app: string
  streamId: string
  port: number
  ssrc: number
  /** 0 UDP, 1 TCP passive, 2 TCP active. */
  tcpMode: number
}

/** What openRtpServer is asked. */
export interface RtpOpen {
  vhost: string
  app: string
  streamId: string
  /** 0: any even port of rtp_proxy.port_range. */
  port: number
  /** 0 UDP, 1 TCP passive, 2 TCP active. */
  tcpMode: number
  /** 0: any. */
  ssrc: number
}

export interface CallOptions {
  /** Absolute time (same clock as `now`) past which the call gives up. */
  deadline?: number | undefined
  /** A secret to try instead of the known one (to check one that on_server_started reported). */
  secret?: string | undefined
}

export interface ZlmApiOptions {
  url: string
  /** The secret as known now (ZLM_SECRET, or learnt); undefined while unknown. */
  secret: () => string | undefined
  timeoutMs: number
  retries: number
  /** Injected for tests; by default a Pool on `url`, closed by close(). */
  dispatcher?: Dispatcher | undefined
  now?: () => number
  random?: () => number
}

const RETRY_BASE_MS = 25
const RETRY_MAX_MS = 500

type Envelope = Record<string, unknown> & { code: number }

export class ZlmApi {
  readonly url: string
  /** API requests sent, for tests and the bench. */
  requests = 0
  /** Whether the last call got an answer. */
  up = true
  readonly #dispatcher: ApiDispatcher
  readonly #secret: () => string | undefined
  readonly #timeoutMs: number
  readonly #retries: number
  readonly #now: () => number
  readonly #random: () => number

  constructor (opts: ZlmApiOptions) {
    this.url = opts.url
    this.#dispatcher = new ApiDispatcher(opts.url, opts.timeoutMs, opts.dispatcher)
    this.#secret = opts.secret
    this.#timeoutMs = opts.timeoutMs
    this.#retries = opts.retries
    this.#now = opts.now ?? Date.now
    this.#random = opts.random ?? Math.random
  }

  /** The media sources of one stream (one entry per schema), or of all streams without a filter. */
  async mediaList (filter: { vhost?: string, app?: string, stream?: string }, opts?: CallOptions): Promise<ZlmMedia[]> {
    const env = await this.#read('getMediaList', filter, opts)
    // jsoncpp: `data` only exists once something was appended.
    return list(env, 'getMediaList').map(toMedia)
  }

  /** Sessions, filtered by the peer's address (getAllSession takes no other filter we need). */
  async sessions (filter: { peer_ip?: string }, opts?: CallOptions): Promise<ZlmSession[]> {
    const env = await this.#read('getAllSession', filter, opts)
    return list(env, 'getAllSession').map(toSession)
  }

  /**
   * Closes a session. ZLMediaKit answers before the close has run (safeShutdown is posted to the
   * session's poller). 'gone': ZLMediaKit knows no such session (-1 "can not find the target").
   */
  async kickSession (id: string, opts?: CallOptions): Promise<'kicked' | 'gone'> {
    // Kicking twice is harmless: the second finds nothing (-1).
    const env = await this.#read('kick_session', { id }, opts, ZlmCode.OtherFailed)
    return env.code === ZlmCode.OtherFailed ? 'gone' : 'kicked'
  }

  /** Every configuration key as `section.key` (api.secret included: never log it). */
  async serverConfig (opts?: CallOptions): Promise<Record<string, string>> {
    const env = await this.#read('getServerConfig', {}, opts)
    const first = list(env, 'getServerConfig')[0]
    if (!isObject(first)) throw badBody('getServerConfig', 'no data[0]')
    const out: Record<string, string> = {}
    for (const [k, v] of Object.entries(first)) if (typeof v === 'string') out[k] = v
    return out
  }

  /** The RTP server map. */
  async rtpServers (opts?: CallOptions): Promise<ZlmRtpServer[]> {
    const env = await this.#read('listRtpServer', {}, opts)
    return list(env, 'listRtpServer').map(toRtpServer)
  }

  /** Opens an RTP server; resolves with its port. -300 (already exists) and -400 (a port in use) are thrown as api_code. */
  async openRtpServer (o: RtpOpen, opts?: CallOptions): Promise<number> {
    const env = await this.#call('openRtpServer', {
      vhost: o.vhost, app: o.app, stream_id: o.streamId, port: String(o.port), tcp_mode: String(o.tcpMode), ssrc: String(o.ssrc)
    }, opts)
    if (!Number.isInteger(env.port)) throw badBody('openRtpServer', 'no integer port')
    return env.port as number
  }

  /** Closes an RTP server; resolves with whether the map held it. */
  async closeRtpServer (o: { vhost: string, app: string, streamId: string }, opts?: CallOptions): Promise<boolean> {
    // Closing twice is harmless: the second finds nothing (hit 0).
    const env = await this.#read('closeRtpServer', { vhost: o.vhost, app: o.app, stream_id: o.streamId }, opts)
    return env.hit === 1
  }

  async close (): Promise<void> {
    await this.#dispatcher.close()
  }

  async #read (name: string, params: Record<string, string | undefined>, opts: CallOptions | undefined, accept?: number): Promise<Envelope> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#call(name, params, opts, accept)
      } catch (err) {
        const e = err as ZlmApiError
        if (!e.retryable || attempt >= this.#retries) throw e
        const pause = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt) * this.#random()
        if (opts?.deadline !== undefined && this.#now() + pause >= opts.deadline) throw e
        await new Promise((resolve) => setTimeout(resolve, pause))
      }
    }
  }

  async #call (name: string, params: Record<string, string | undefined>, opts: CallOptions | undefined, accept?: number): Promise<Envelope> {
    const what = `${this.url} ${name}`
    const secret = opts?.secret ?? this.#secret()
    if (secret === undefined) {
      throw new ZlmApiError('unauthorized', `${what}: no API secret for this ZLMediaKit yet; set ZLM_SECRET to its api.secret, or leave ZLM_SECRET unset and it is learnt from the server's on_server_started`)
    }
    const budget = opts?.deadline === undefined ? this.#timeoutMs : Math.min(this.#timeoutMs, opts.deadline - this.#now())
    if (budget <= 0) throw new ZlmApiError('deadline', `${what}: no time left before the deadline`)
    this.requests++
    let status: number
    let text: string
    try {
      ({ status, text } = await this.#dispatcher.read({
        method: 'POST',
        path: `/index/api/${name}`,
        headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body: form({ ...params, secret })
      }, budget))
    } catch (err) {
      throw this.#down(networkError(what, budget, err))
    }
    this.up = true
    if (status !== 200) throw new ZlmApiError('http_status', `${what}: ZLMediaKit answered HTTP ${status}`, { detail: status })
    let env: unknown
    try {
      env = JSON.parse(text)
    } catch {
      throw badBody(name, 'not JSON')
    }
    if (!isObject(env) || !Number.isInteger(env.code)) throw badBody(name, 'no integer code')
    const e = env as Envelope
    if (e.code === 0 || e.code === accept) return e
    const zlmMsg = typeof e.msg === 'string' ? e.msg.slice(0, 300) : undefined
    const said = zlmMsg === undefined ? '' : ` ${JSON.stringify(zlmMsg)}`
    if (e.code === ZlmCode.AuthFailed) {
      throw new ZlmApiError('unauthorized', `${what}: ZLMediaKit refused the API secret (-100${said}); set ZLM_SECRET to its api.secret (or leave it unset to learn it from on_server_started) and allow this host in its http.allow_ip_range`, { detail: e.code, zlmMsg })
    }
    throw new ZlmApiError('api_code', `${what}: ZLMediaKit answered code ${e.code}${said}`, { detail: e.code, zlmMsg })
  }

  #down (err: ZlmApiError): ZlmApiError {
    this.up = false
    return err
  }
}

/** A form body; values percent-encoded (a space as %20: ZLMediaKit's urlDecode may not read '+'). */
function form (params: Record<string, string | undefined>): string {
  return Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')
}

function badBody (name: string, why: string): ZlmApiError {
  return new ZlmApiError('bad_body', `${name}: unexpected answer from ZLMediaKit (${why})`)
}

/** Errors after which the request cannot have reached ZLMediaKit. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

function networkError (what: string, budget: number, err: unknown): ZlmApiError {
  const e = err as { name?: string, code?: string, message?: string, cause?: { code?: string } }
  const code = e.code ?? e.cause?.code
  const unknownOutcome = code === undefined || !NOT_SENT.has(code)
  const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
  if (timedOut) return new ZlmApiError('timeout', `${what}: no answer from ZLMediaKit within ${budget} ms`, { unknownOutcome, cause: err })
  return new ZlmApiError('unreachable', `${what}: ZLMediaKit's API is unreachable (${String(e.message)})`, { unknownOutcome, cause: err })
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function list (env: Envelope, name: string): unknown[] {
  if (env.data === undefined) return []
  if (!Array.isArray(env.data)) throw badBody(name, 'data is not an array')
  return env.data.map((item) => {
    if (!isObject(item)) throw badBody(name, 'an entry of data is not an object')
    return item
  })
}

const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
const num = (v: unknown): number | undefined => typeof v === 'number' && Number.isFinite(v) ? v : undefined

function toMedia (v: unknown): ZlmMedia {
  const m = v as Record<string, unknown>
  if (typeof m.app !== 'string' || typeof m.stream !== 'string' || typeof m.vhost !== 'string' || typeof m.schema !== 'string') {
    throw badBody('getMediaList', 'an entry without schema, vhost, app or stream')
  }
  const sock = isObject(m.originSock) ? m.originSock : {}
  const identifier = str(sock.identifier)
  return {
    schema: m.schema,
    vhost: m.vhost,
    app: m.app,
    stream: m.stream,
    originTypeStr: str(m.originTypeStr) ?? 'unknown',
    identifier: identifier === '' ? undefined : identifier,
    peerIp: str(sock.peer_ip),
    peerPort: num(sock.peer_port),
    totalBytes: num(m.totalBytes),
    readerCount: num(m.readerCount),
    totalReaderCount: num(m.totalReaderCount),
    aliveSecond: num(m.aliveSecond),
    createStamp: num(m.createStamp)
  }
}

function toSession (v: unknown): ZlmSession {
  const s = v as Record<string, unknown>
  if (typeof s.id !== 'string') throw badBody('getAllSession', 'a session without id')
  return { id: s.id, peerIp: str(s.peer_ip) ?? '', peerPort: num(s.peer_port) ?? 0, localPort: num(s.local_port) ?? 0, typeid: str(s.typeid) ?? '' }
}

function toRtpServer (v: unknown): ZlmRtpServer {
  const r = v as Record<string, unknown>
  if (typeof r.stream_id !== 'string' || !Number.isInteger(r.port)) throw badBody('listRtpServer', 'an entry without stream_id or port')
  return {
    vhost: str(r.vhost) ?? '__defaultVhost__',
    app: str(r.app) ?? 'rtp',
    streamId: r.stream_id,
    port: r.port as number,
    ssrc: num(r.ssrc) ?? 0,
    tcpMode: num(r.tcp_mode) ?? 0
  }
}
