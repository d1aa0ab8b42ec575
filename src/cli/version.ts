import { existsSync, readFileSync } from 'node:fs'

/**
 * The package's version, from its package.json: two folders up from src/cli/version.ts as from the
 * bundle dist/src/srs-hooks.cjs (build.mjs), and beside dist/ in the image; three up from the
 * benchmark's compiled copy (dist-bench/src/cli/version.js). Its own module, so that the server
 * (the OpenAPI description) reads it without importing the commands.
 */
export function version (): string {
  const file = ['../../package.json', '../../../package.json'].map((path) => new URL(path, import.meta.url)).find((url) => existsSync(url))!
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}
