import { Type } from 'typebox'
import { Millis, splitList } from '../settings.js'

/**
 * Settings for ZLMediaKit's HTTP API, merged into ConfigSchema. docs/configuration.md
 * documents each one with its default.
 */

const API_URL = /^https?:\/\/[^/\s,@]+\/?$/

/** Entries of ZLM_API_URL that are not an API origin (`http[s]://host[:port]`, no credentials: the secret is ZLM_SECRET). */
export function badZlmUrls (value: string): string[] {
  return splitList(value).filter((u) => !API_URL.test(u) || !URL.canParse(u))
}

export const ZlmSettings = {
  /** ZLMediaKit's HTTP API: one origin, or several separated by commas (one per server). Unset: no ZLMediaKit. */
  ZLM_API_URL: Type.Optional(Type.Refine(Type.String({ minLength: 1 }),
    (v: string) => splitList(v).length > 0 && badZlmUrls(v).length === 0,
    (v: string) => `not an http(s) origin without credentials: ${badZlmUrls(v).map((u) => u.replace(/\/\/[^/@\s]*@/, '//***@')).join(', ') || '(empty)'}`)),
  /** ZLMediaKit's api.secret. Unset: learnt from each server's on_server_started. */
  ZLM_SECRET: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  ZLM_API_TIMEOUT_MS: Millis(1000),
  ZLM_API_RETRIES: Type.Integer({ default: 2, minimum: 0, maximum: 10 }),
  /** Bound of one RTP server open (with the close of a stale one and the backoff against a concurrent opener). */
  ZLM_RTP_OPEN_TIMEOUT_MS: Millis(3000)
}

/** The ZLMediaKit servers ZLM_API_URL lists, as origins; throws an Error naming what is wrong. */
export function zlmEndpoints (value: string | undefined): string[] {
  if (value === undefined) return []
  const seen = new Set<string>()
  return splitList(value).map((entry) => {
    const url = new URL(entry).origin
    if (seen.has(url)) throw new Error(`ZLM_API_URL: ${url} is listed twice`)
    seen.add(url)
    return url
  })
}
