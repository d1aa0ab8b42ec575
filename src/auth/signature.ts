import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { Codes } from '../errors.js'

/**
 * Expiring signed URLs: `?expires=<unix seconds>&sign=<hex>` where `sign` is the lowercase hex
 * HMAC-SHA256 of `<name>:<expires>` keyed with the secret, `<name>` being the stream's name:
 * `<app>/<stream>` on the default vhost, `<vhost>/<app>/<stream>` on another. The same form serves
 * publish (PUBLISH_SECRET) and play (PLAY_SECRET).
 */

/** The string that is signed: `<name>:<expires>`. */
export function signedString (name: string, expires: number): string {
  return `${name}:${expires}`
}

export function sign (secret: string, name: string, expires: number): string {
  return createHmac('sha256', secret).update(signedString(name, expires)).digest('hex')
}

/** `?expires=…&sign=…` for a stream, valid until `expires` (unix seconds). */
export function signedQuery (secret: string, name: string, expires: number): string {
  return `?expires=${expires}&sign=${sign(secret, name, expires)}`
}

/** A refusal as the hooks report it: a non-zero code and words for the operator. */
export interface Refusal { ok: false, code: number, msg: string }

export type SignatureCheck = { ok: true, expires: number } | Refusal

/**
 * Checks `params` (the hook's query) against the stream. Constant time in the signature: both
 * sides are 32-byte HMACs compared with timingSafeEqual.
 */
export function verifySignature (opts: {
  secret: string
  /** The stream's name: `app/stream`, or `vhost/app/stream` on another vhost than the default. */
  name: string
  params: URLSearchParams
  nowS: number
  skewS: number
  what: 'publish' | 'play'
}): SignatureCheck {
  const { name, params, what } = opts
  const expires = params.get('expires')
  const given = params.get('sign')
  if (expires === null || given === null) {
    return refuse(Codes.SIGNATURE_MISSING, `${what} ${name}: the URL needs ?expires=<unix seconds>&sign=<hex> (${expires === null ? 'expires' : 'sign'} is missing)`)
  }
  if (!/^\d{1,12}$/.test(expires) || !/^[0-9a-fA-F]{64}$/.test(given)) {
    return refuse(Codes.SIGNATURE_MISSING, `${what} ${name}: expires must be unix seconds and sign 64 hex digits`)
  }
  const exp = Number(expires)
  const expected = Buffer.from(sign(opts.secret, name, exp), 'hex')
  if (!timingSafeEqual(expected, Buffer.from(given, 'hex'))) {
    return refuse(Codes.SIGNATURE_INVALID, `${what} ${name}: the signature does not match this stream and expiry (tampered, or signed with another secret)`)
  }
  if (exp + opts.skewS < opts.nowS) {
    return refuse(Codes.SIGNATURE_EXPIRED, `${what} ${name}: the signed URL expired at ${new Date(exp * 1000).toISOString()}`)
  }
  return { ok: true, expires: exp }
}

const COMPARE_KEY = randomBytes(32)

/**
 * Whether two secrets are equal, in time that depends on neither: both are first reduced to
 * HMACs of equal length under a per-process random key.
 */
export function secretsEqual (a: string, b: string): boolean {
  const ha = createHmac('sha256', COMPARE_KEY).update(a).digest()
  const hb = createHmac('sha256', COMPARE_KEY).update(b).digest()
  return timingSafeEqual(ha, hb)
}

export function refuse (code: number, msg: string): Refusal {
  return { ok: false, code, msg }
}

/**
 * The query of a hook's `param`: `?a=b` (RTMP/SRT), `a=b` (WHIP), possibly with a `#fragment`
 * SRS keeps from the URL.
 */
export function paramsOf (param: string | undefined): URLSearchParams {
  if (param === undefined) return new URLSearchParams()
  const hash = param.indexOf('#')
  const query = hash === -1 ? param : param.slice(0, hash)
  return new URLSearchParams(query.startsWith('?') ? query.slice(1) : query)
}
