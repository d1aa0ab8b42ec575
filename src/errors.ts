import type { FastifyError } from 'fastify'
import type { Log } from './logger.js'
import { wordErrors, type SchemaError } from './schema-errors.js'

/**
 * Coded errors. Every refusal or failure that reaches a caller carries a stable numeric `code`
 * (what SRS and operators see in the reply body) and a string `name` (what logs and metrics use).
 * The table in docs/operations.md ("Reply codes") is the contract; keep it in step with this file.
 */

/** Reply codes in hook and API replies. 0 means allowed; anything else refuses. */
export const Codes = {
  OK: 0,
  /** on_publish: the newcomer is not a client of SRS publishing this stream, so nobody is evicted. */
  PUBLISHER_NOT_VERIFIED: 1001,
  /** on_publish: SRS's API failed and FAIL_MODE=closed. */
  SRS_API_UNAVAILABLE: 1002,
  /** Any callback: HOOK_TOKEN is set and the URL's ?token= is missing or wrong (HTTP 403). */
  HOOK_TOKEN_INVALID: 1003,
  /** Any callback: the caller's address is not in HOOK_ALLOW (HTTP 403). */
  HOOK_CALLER_FORBIDDEN: 1004,
  /** on_publish, PUBLISH_AUTH=keys: the publish URL carries no ?key=. */
  PUBLISH_KEY_MISSING: 1005,
  /** on_publish, PUBLISH_AUTH=keys: the key is not the stream's. */
  PUBLISH_KEY_WRONG: 1006,
  /** on_publish, PUBLISH_AUTH=keys: the key file has no entry for the stream or its app. */
  PUBLISH_KEY_UNKNOWN_STREAM: 1007,
  /** on_publish, PUBLISH_AUTH=keys: no key file could be loaded yet, so nothing can be checked. */
  PUBLISH_KEYS_UNAVAILABLE: 1008,
  /** on_publish/on_play, signed: `expires` or `sign` is missing or malformed. */
  SIGNATURE_MISSING: 1009,
  /** on_publish/on_play, signed: `expires` is in the past (beyond SIGN_CLOCK_SKEW_S). */
  SIGNATURE_EXPIRED: 1010,
  /** on_publish/on_play, signed: `sign` does not match the stream and expiry (tampered, or another secret). */
  SIGNATURE_INVALID: 1011,
  /** on_publish/on_play: too many failed attempts from this IP (AUTH_FAIL_MAX per AUTH_FAIL_WINDOW_MS). */
  AUTH_RATE_LIMITED: 1012,
  /** on_publish, TAKEOVER_POLICY=takeover-stale: the incumbent is still sending, so it keeps the stream. */
  INCUMBENT_SENDING: 1013,
  /** on_publish, TAKEOVER_POLICY=reject: the incumbent always keeps the stream. */
  INCUMBENT_KEPT: 1014,
  /** on_publish: the stream changed hands more than FLAP_MAX times in FLAP_WINDOW_MS; newcomers wait FLAP_COOLDOWN_MS. */
  TAKEOVER_FLAPPING: 1015,
  /** on_publish: the stream is fed by something that is never evicted (a ZLMediaKit RTP server or pull), not by a publisher's session. */
  INCUMBENT_NOT_EVICTABLE: 1016,
  /** ZLMediaKit's on_rtsp_auth and on_shell_login: srs-hooks authorises neither (RTSP players go through on_play). */
  ZLM_NOT_AUTHORISED: 1017,
  /** The platform's own callback (FORWARD_URL) refused; its code when it gave a non-zero integer one. */
  PLATFORM_REFUSED: 1018,
  /** The platform could not be asked (timeout, unreachable, no verdict) and FORWARD_FAIL_MODE=closed. */
  PLATFORM_UNAVAILABLE: 1019,
  /** Bad input. */
  INVALID_BODY: 4000,
  INVALID_JSON: 4001,
  ACTION_MISMATCH: 4002,
  NOT_FOUND: 4004,
  /** Any request: its headers and body did not arrive within REQUEST_TIMEOUT_MS (HTTP 408, connection closed). */
  REQUEST_TIMEOUT: 4008,
  BODY_TOO_LARGE: 4013,
  /** on_dvr: the recording could not be written to the index (HTTP 503); SRS logs it and goes on. */
  RECORDING_NOT_STORED: 1101,
  /** /readyz: a readiness check failed (HTTP 503); `failed` names it. */
  NOT_READY: 1102,
  /** A notification could not be written to the forwarding outbox (full, or a disk error): not acknowledged. */
  FORWARD_NOT_QUEUED: 1103,
  /** Operator API: a query parameter is missing, malformed or out of range (HTTP 400). */
  INVALID_QUERY: 4100,
  /** Operator API: ADMIN_TOKEN is set and the bearer token is missing or wrong (HTTP 401). */
  ADMIN_UNAUTHORIZED: 4101,
  /** Operator API: ADMIN_TOKEN is unset and the caller is not on loopback (HTTP 403). */
  ADMIN_FORBIDDEN: 4102,
  /** Operator API kick: SRS lists no active publisher of the stream (HTTP 404). */
  NOTHING_TO_EVICT: 4104,
  /** Operator API kick: an on_publish of the stream held it for the whole bound (HTTP 409). */
  EVICTION_BUSY: 4105,
  /** Operator API kick: several servers publish the stream; the kick must name one (HTTP 409). */
  AMBIGUOUS_STREAM: 4107,
  /** Operator API kick: kicked, but SRS did not release the stream within TAKEOVER_TIMEOUT_MS (HTTP 504). */
  RELEASE_TIMEOUT: 4106,
  /** Operator API: SRS's API is unreachable or timed out (HTTP 503). */
  SRS_API_UNREACHABLE: 4110,
  /** Operator API: SRS's API answered with an error, a 401 or an unexpected body (HTTP 502). */
  SRS_API_FAILED: 4111,
  /** Operator API: the recordings index (PostgreSQL) did not answer within its bound (HTTP 503). */
  RECORDINGS_UNAVAILABLE: 4112,
  /** Operator API, RTP servers: the port asked for is bound by another RTP server or socket on ZLMediaKit's host (HTTP 409); msg names it. */
  RTP_PORT_IN_USE: 4120,
  /** Operator API, RTP servers: another opener kept re-creating the stream's RTP server for the whole ZLM_RTP_OPEN_TIMEOUT_MS (HTTP 409). */
  RTP_OPEN_CONFLICT: 4121,
  /** Operator API, RTP servers: no ZLMediaKit server is configured, the one named is unknown, or several are and none is named (HTTP 400). */
  ZLM_SERVER_UNKNOWN: 4122,
  /** Operator API, events stream: EVENTS_STREAM_CLIENTS streams are open already (HTTP 503); retry later. */
  EVENTS_STREAM_FULL: 4130,
  /** Operator console: its files are not built (npm run build) or CONSOLE_DIR holds none (HTTP 503). */
  CONSOLE_NOT_BUILT: 4131,
  /** Anything unexpected inside this server. */
  INTERNAL: 5000
} as const

export type Code = typeof Codes[keyof typeof Codes]

export class AppError extends Error {
  readonly code: Code
  readonly statusCode: number

  constructor (message: string, code: Code, statusCode = 500, options?: ErrorOptions) {
    super(message, options)
    this.name = 'AppError'
    this.code = code
    this.statusCode = statusCode
  }
}

/** The ways a call to a media server's HTTP API (SRS's or ZLMediaKit's) can fail. */
export type MediaApiErrorKind =
  | 'unreachable' // connection refused, reset, DNS failure
  | 'timeout' // no complete answer within the API's timeout (or the caller's deadline)
  | 'deadline' // nothing was sent: the caller's bound was already used up (not a failure of the server)
  | 'unauthorized' // the server refused our credentials (SRS: HTTP 401; ZLMediaKit: -100, or no secret known yet)
  | 'http_status' // any other status than 200
  | 'bad_body' // not JSON, or JSON of the wrong shape
  | 'api_code' // the envelope's code is neither 0 nor one the call maps (SRS: 2048, 2049; ZLMediaKit: -1, -300, ...)

/** A failed call to a media server's HTTP API: SrsApiError or ZlmApiError. */
export class MediaApiError extends Error {
  readonly kind: MediaApiErrorKind
  /** HTTP status or the server's envelope code, when there was one. */
  readonly detail: number | undefined
  /** The request went out but its answer was lost (a timeout, a reset): the server may have carried it out. */
  readonly unknownOutcome: boolean

  constructor (kind: MediaApiErrorKind, message: string, opts: { detail?: number | undefined, unknownOutcome?: boolean | undefined, cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'MediaApiError'
    this.kind = kind
    this.detail = opts.detail
    this.unknownOutcome = opts.unknownOutcome ?? false
  }

  /** Whether trying the same idempotent read again may succeed. */
  get retryable (): boolean {
    return this.kind === 'unreachable' || this.kind === 'timeout' ||
      (this.kind === 'http_status' && this.detail !== undefined && this.detail >= 500)
  }
}

export type SrsErrorKind = MediaApiErrorKind

/** A failed call to SRS's HTTP API. */
export class SrsApiError extends MediaApiError {
  constructor (kind: SrsErrorKind, message: string, detail?: number, options?: ErrorOptions & { unknownOutcome?: boolean }) {
    super(kind, message, { detail, unknownOutcome: options?.unknownOutcome, cause: options?.cause })
    this.name = 'SrsApiError'
  }
}

/** What a configuration that cannot run is refused with (loadConfig, and the checks of serve and doctor). */
export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/**
 * What a failed request is answered, logged and counted with (the app's error handler, and the hooks'
 * pipeline's, http/hooks.ts). A hook has a line of its own that gives the reason; any other request passes `unlined`
 * (what to say of it), and its expected failure is logged once with it.
 */
export function failureOf (err: FastifyError | AppError, log: Log, unlined?: Record<string, unknown>): { status: number, reply: { code: number, msg: string }, hookLog: { outcome: string, code: number, reason: string } } {
  const { status, code, msg } = describeError(err)
  // A coded failure (SRS's API or the index out of reach) is expected: its reason in one line, no
  // stack. Only what nobody foresaw is logged as an error with its stack and causes.
  if (status >= 500) {
    if (err instanceof AppError && err.code !== Codes.INTERNAL) {
      if (unlined !== undefined) log.warn({ ...unlined, code, reason: msg }, 'request failed')
    } else log.error({ err }, 'unexpected error')
  }
  return { status, reply: { code, msg }, hookLog: { outcome: status >= 500 ? 'error' : status === 403 ? 'forbidden' : 'bad-request', code, reason: msg } }
}

/** How an error is answered: its HTTP status, reply code and words. */
function describeError (err: FastifyError | AppError): { status: number, code: number, msg: string } {
  if (err instanceof AppError) return { status: err.statusCode, code: err.code, msg: err.message }
  if (err.validation !== undefined) {
    const where = String(err.validationContext)
    const details = wordErrors(err.validation as unknown as SchemaError[]).map((v) => `${where}${v.path} ${v.message}`).join('; ')
    return { status: 400, code: Codes.INVALID_BODY, msg: `invalid hook ${where}: ${details}` }
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: Codes.INVALID_JSON, msg: `${err.message}; send the body as a JSON object` }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: Codes.INVALID_JSON, msg: 'the Content-Type is not a media type; send JSON with Content-Type: application/json' }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: Codes.BODY_TOO_LARGE, msg: `${err.message} (BODY_LIMIT)` }
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return { status: err.statusCode, code: Codes.INVALID_BODY, msg: err.message }
  }
  return { status: 500, code: Codes.INTERNAL, msg: 'internal error; see the server log' }
}
