import { Type } from 'typebox'
import { Millis, splitList } from '../settings.js'

/**
 * Settings for SRS's HTTP API, merged into ConfigSchema. docs/configuration.md documents
 * each one with its default.
 */

const API_URL = /^https?:\/\/[^/\s,]+\/?$/

/** SRS_API_URL=none: no SRS (a deployment that runs ZLMediaKit only). */
export const NO_SRS = 'none'

/** Entries of SRS_API_URL that are not an API origin (`http[s]://[user:pass@]host[:port]`). */
export function badApiUrls (value: string): string[] {
  if (value.trim() === NO_SRS) return []
  return splitList(value).filter((u) => !API_URL.test(u) || !URL.canParse(u))
}

export const SrsSettings = {
  /** SRS's HTTP API: one origin, or several separated by commas (one per SRS server); each may carry user:pass@; `none`: no SRS. */
  SRS_API_URL: Type.Refine(Type.String({ default: 'http://127.0.0.1:1985', minLength: 1 }),
    (v: string) => splitList(v).length > 0 && badApiUrls(v).length === 0,
    (v: string) => `not an http(s) origin: ${badApiUrls(v).map((u) => u.replace(/\/\/[^/@\s]*@/, '//***@')).join(', ') || '(empty)'}`),
  SRS_API_USERNAME: Type.Optional(Type.String()),
  SRS_API_PASSWORD: Type.Optional(Type.String()),
  SRS_API_TIMEOUT_MS: Millis(1000),
  SRS_API_RETRIES: Type.Integer({ default: 2, minimum: 0, maximum: 10 }),
  SRS_API_PAGE_SIZE: Type.Integer({ default: 1000, minimum: 10, maximum: 100_000 })
}

export interface SrsApiEndpoint {
  /** The API's origin, without credentials or a trailing slash. */
  url: string
  /** Basic credentials: the URL's userinfo, else SRS_API_USERNAME/SRS_API_PASSWORD. */
  auth: { username: string, password: string } | undefined
}

/** The SRS servers SRS_API_URL lists; throws an Error naming what is wrong. */
export function apiEndpoints (value: string, username: string | undefined, password: string | undefined): SrsApiEndpoint[] {
  if (value.trim() === NO_SRS) return []
  const seen = new Set<string>()
  return splitList(value).map((entry) => {
    const url = new URL(entry)
    const user = url.username !== '' || url.password !== '' ? decodeURIComponent(url.username) : username ?? ''
    const pass = url.username !== '' || url.password !== '' ? decodeURIComponent(url.password) : password ?? ''
    if (user.includes(':') || pass.includes(':')) {
      // SRS splits the decoded Basic token on ':' and wants exactly two parts.
      throw new Error('SRS_API_USERNAME/SRS_API_PASSWORD: must not contain ":" (SRS splits Basic credentials on it)')
    }
    if (seen.has(url.origin)) throw new Error(`SRS_API_URL: ${url.origin} is listed twice`)
    seen.add(url.origin)
    return { url: url.origin, auth: user === '' && pass === '' ? undefined : { username: user, password: pass } }
  })
}
