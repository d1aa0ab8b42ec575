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
