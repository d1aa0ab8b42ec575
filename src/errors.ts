/**
 * Coded errors. Every refusal or failure that reaches a caller carries a stable numeric `code`
 * (what SRS and operators see in the reply body) and a string `name` (what logs and metrics use).
 * The table in README.md ("Reply codes") is the contract; keep it in step with this file.
 */

/** Reply codes in hook and API replies. 0 means allowed; anything else refuses. */
export const Codes = {
  OK: 0,
  /** on_publish: the newcomer is not a client of SRS publishing this stream, so nobody is evicted. */
  PUBLISHER_NOT_VERIFIED: 1001,
  /** on_publish: SRS's API failed and FAIL_MODE=closed. */
  SRS_API_UNAVAILABLE: 1002,
  /** Bad input. */
  INVALID_BODY: 4000,
  INVALID_JSON: 4001,
  ACTION_MISMATCH: 4002,
  NOT_FOUND: 4004,
  BODY_TOO_LARGE: 4013,
  UNSUPPORTED_MEDIA_TYPE: 4015,
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

/** The ways a call to SRS's HTTP API can fail. */
export type SrsErrorKind =
  | 'unreachable' // connection refused, reset, DNS failure
  | 'timeout' // no complete answer within SRS_API_TIMEOUT_MS (or the caller's deadline)
  | 'unauthorized' // HTTP 401: SRS's http_api.auth rejected our credentials
  | 'http_status' // any other status than 200
  | 'bad_body' // not JSON, or JSON of the wrong shape
  | 'api_code' // the envelope's code is neither 0 nor one we map (2048, 2049)

export class SrsApiError extends Error {
  readonly kind: SrsErrorKind
  /** HTTP status or SRS envelope code, when there was one. */
  readonly detail: number | undefined

  constructor (kind: SrsErrorKind, message: string, detail?: number, options?: ErrorOptions) {
    super(message, options)
    this.name = 'SrsApiError'
    this.kind = kind
    this.detail = detail
  }

  /** Whether trying the same idempotent read again may succeed. */
  get retryable (): boolean {
    return this.kind === 'unreachable' || this.kind === 'timeout' ||
      (this.kind === 'http_status' && this.detail !== undefined && this.detail >= 500)
  }
}
