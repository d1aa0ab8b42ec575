import { readFileSync } from 'node:fs'

/**
 * The package's version, from its package.json: two folders up from src/cli/version.ts as from the
 * bundle dist/src/srs-hooks.cjs (build.mjs), and beside dist/ in the image. Its own module, so that
 * the server (the OpenAPI description) reads it without importing the commands.
 */
export function version (): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}
