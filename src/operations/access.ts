import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Who may call the operator API: with ADMIN_TOKEN set, whoever presents it as a bearer token;
 * without, callers on this machine's loopback only.
 */

export type Access =
  | { ok: true }
  | { ok: false, reason: 'no-token' | 'wrong-token' | 'not-loopback' }

/** Whether a socket's remote address is loopback (127.0.0.0/8, ::1, or IPv4 loopback mapped in IPv6). */
export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address
  return v4 === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)
}

/** Compares in constant time (over SHA-256 digests, so the lengths leak nothing either). */
export function sameSecret (given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

/**
 * `remoteAddress` must be the socket's own peer address: a header such as X-Forwarded-For is
 * chosen by the caller and proves nothing.
 */
export function checkAccess (token: string | undefined, authorization: string | undefined, remoteAddress: string | undefined): Access {
  if (token === undefined) return isLoopback(remoteAddress) ? { ok: true } : { ok: false, reason: 'not-loopback' }
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '')
  if (m === null) return { ok: false, reason: 'no-token' }
  return sameSecret(m[1]!, token) ? { ok: true } : { ok: false, reason: 'wrong-token' }
}
