import { Type } from 'typebox'
import { Millis } from '../settings.js'

/**
 * Settings for forwarding hooks to the platform's own callback, merged into ConfigSchema.
 * docs/forwarding.md documents each one with its default.
 */

const TARGET = /^https?:\/\/[^/\s?#]+(\/[^\s#]*)?$/

/** Whether `v` is a platform URL: http(s), an origin and a path that may hold `{action}`. */
function isTarget (v: string): boolean {
  return TARGET.test(v) && URL.canParse(v.replaceAll('{action}', 'on_x'))
}

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/

/** A duration such as `90s`, `30m`, `24h`, `2d` or `500ms` (a bare number is seconds), in ms; NaN if unreadable. */
export function durationMs (v: string): number {
  const m = DURATION.exec(v.trim())
  if (m === null) return NaN
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms']
  return Number(m[1]) * unit
}

export const ForwardSettings = {
  /** The platform's callback for SRS's hooks, `{action}` replaced by the hook's name; unset: nothing is forwarded. */
  FORWARD_URL: Type.Optional(Type.Refine(Type.String(), isTarget, () => 'not an http(s) URL (e.g. http://video:5000/admin-api/video/camera/callback/{action})')),
  /** The same for ZLMediaKit's hooks (ZLMediaKit's reply contract). */
  FORWARD_ZLM_URL: Type.Optional(Type.Refine(Type.String(), isTarget, () => 'not an http(s) URL (e.g. http://video:5000/index/hook/{action})')),
  /** How long a decision hook waits for the platform's verdict (and for the stream's queued notifications before it). */
  FORWARD_TIMEOUT_MS: Millis(3000, 100),
  /** What a decision hook gets when the platform cannot be asked (timeout, unreachable, garbage). */
  FORWARD_FAIL_MODE: Type.Union([Type.Literal('open'), Type.Literal('closed')], { default: 'closed' }),
  /** Headers sent with every request to the platform: `Name: value` lines (or a JSON object); never logged. */
  FORWARD_HEADERS: Type.Optional(Type.Refine(Type.String(), (v: string) => headersOf(v) !== undefined,
    () => 'not a list of "Name: value" lines nor a JSON object of strings')),
  /** A notification still not delivered after this long goes to the dead letters. */
  FORWARD_MAX_AGE: Type.Refine(Type.String({ default: '24h' }), (v: string) => durationMs(v) >= 1000,
    () => 'not a duration of at least 1s (e.g. 90s, 30m, 24h, 2d)'),
  /** Notifications the outbox holds at most (waiting and dead); past it a notification is answered 503. */
  FORWARD_OUTBOX_MAX: Type.Integer({ default: 500_000, minimum: 10, maximum: 100_000_000 }),
  /** The longest wait between two attempts of one notification. */
  FORWARD_RETRY_MAX_MS: Millis(60_000, 10),
  /** Streams whose notifications are delivered at once (each stream's in order): a drain's rate is about this over the platform's answer time. */
  FORWARD_CONCURRENCY: Type.Integer({ default: 128, minimum: 1, maximum: 1024 })
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers srs-hooks sets itself, or that would break the request. */
const RESERVED = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'idempotency-key', 'x-srs-hooks-replaced-by'])

/** FORWARD_HEADERS as headers; undefined when it cannot be read. */
export function headersOf (v: string | undefined): Record<string, string> | undefined {
  if (v === undefined || v.trim() === '') return {}
  let pairs: Array<[string, unknown]>
  if (v.trim().startsWith('{')) {
    try {
      // Text that starts with '{' parses to an object or not at all.
      pairs = Object.entries(JSON.parse(v) as object)
    } catch {
      return undefined
    }
  } else {
    pairs = []
    for (const line of v.split(/\r?\n/)) {
      if (line.trim() === '') continue
      const at = line.indexOf(':')
      if (at < 1) return undefined
      pairs.push([line.slice(0, at).trim(), line.slice(at + 1).trim()])
    }
  }
  const out: Record<string, string> = {}
  for (const [name, value] of pairs) {
    if (!HEADER_NAME.test(name) || RESERVED.has(name.toLowerCase()) || typeof value !== 'string' || /[\r\n\0]/.test(value)) return undefined
    out[name.toLowerCase()] = value
  }
  return out
}
