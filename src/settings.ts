import { Type } from 'typebox'

/** Pieces the settings modules share (each module's settings are merged into config.ts's schema). */

/** Milliseconds, from `min` to an hour. */
export const Millis = (def: number, min = 1) => Type.Integer({ default: def, minimum: min, maximum: 3_600_000 })

/** Splits a comma-separated list, dropping blanks. */
export function splitList (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

/** The message a refinement shows: what `check` throws, or '' when it passes. */
export function errorOf (check: (value: string) => unknown, value: string): string {
  try {
    check(value)
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

/**
 * Why an entry of an API-origin setting (SRS_API_URL, ZLM_API_URL) is not an http(s) origin, in
 * words that name the fix; '' when it is one. Credentials in the entry are masked in the words.
 */
export function originFault (entry: string, credentials: boolean): string {
  const shown = entry.replace(/\/\/[^/@\s]*@/, '//***@')
  if (!/^https?:\/\//i.test(entry)) return `${shown} is not an origin: expected http://host:port (or https://)`
  if (/[\s,]/.test(entry) || !URL.canParse(entry)) return `${shown} is not a valid http(s) URL`
  const url = new URL(entry)
  if (!credentials && (url.username !== '' || url.password !== '')) return `${shown} carries credentials: give the origin alone`
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || entry.endsWith('?') || entry.endsWith('#')) {
    return `${shown} must be an origin without a path: use ${url.origin}`
  }
  return ''
}
