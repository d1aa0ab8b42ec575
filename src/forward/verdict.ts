import type { PlatformAnswer, Target } from './client.js'

/**
 * What the platform's answer means. SRS's contract (srs-protocol.md section 3, SRS's own parser):
 * HTTP 200 or 201 and a body that is exactly `0` or a JSON object whose `code` is the integer 0
 * allows. ZLMediaKit's: HTTP 200 and a JSON object whose `code` is an integer, 0 allowing.
 *
 * - `allow`: as above.
 * - `refuse`: the platform said no: a well-formed verdict with a non-zero code, or a 4xx status
 *   (its own authorisation refused).
 * - `fail`: no verdict: no answer in time, unreachable, a 3xx or 5xx, or a body that is no verdict
 *   (FORWARD_FAIL_MODE decides a decision hook; a notification is tried again).
 */
export type Verdict =
  | { kind: 'allow', reply: Record<string, unknown> | undefined }
  | { kind: 'refuse', code: number | undefined, msg: string }
  | { kind: 'fail', msg: string }

/** The most of the platform's own words that is kept (in the log and the reply). */
export const MSG_LIMIT = 200

export function verdictOf (target: Target, a: PlatformAnswer): Verdict {
  if (!a.ok) return { kind: 'fail', msg: a.kind === 'timeout' ? `the platform gave no answer: ${a.message}` : `the platform is unreachable: ${sanitise(a.message)}` }
  const okStatus = a.status === 200 || (target === 'srs' && a.status === 201)
  if (a.status >= 400 && a.status < 500) return { kind: 'refuse', code: undefined, msg: `HTTP ${a.status}${said(a.text)}` }
  if (!okStatus) return { kind: 'fail', msg: `the platform answered HTTP ${a.status}${said(a.text)}` }
  if (target === 'srs' && a.text === '0') return { kind: 'allow', reply: undefined }
  const code = integerCode(a.text)
  if (code === undefined) return { kind: 'fail', msg: `the platform's answer is no verdict${said(a.text)}` }
  if (code.code === 0) return { kind: 'allow', reply: code.object }
  const msg = typeof code.object.msg === 'string' ? code.object.msg : a.text
  return { kind: 'refuse', code: code.code, msg: `code ${code.code}: ${sanitise(msg)}` }
}

/** A JSON object's integer `code` (written as an integer: `0.0` and `"0"` are not), or undefined. */
function integerCode (text: string): { code: number, object: Record<string, unknown> } | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const o = v as Record<string, unknown>
  if (!Number.isSafeInteger(o.code) || !/"code"\s*:\s*-?\d+\s*[,}]/.test(text)) return undefined
  return { code: o.code as number, object: o }
}

function said (text: string): string {
  return text === '' ? '' : `: ${sanitise(text)}`
}

/** The platform's words made safe for a log line and a reply: printable, one line, at most MSG_LIMIT characters. */
export function sanitise (text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim()
  return clean.length > MSG_LIMIT ? clean.slice(0, MSG_LIMIT) + '…' : clean
}
