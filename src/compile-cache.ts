/**
 * Node's compile cache for the production build (dist/src/cli.js, build.mjs): where Node has
 * `module.enableCompileCache()` (22.1+), the bundle's compiled code is kept on disk, so that a
 * restart reads it instead of parsing and compiling about 3 MB of JavaScript again (the restart
 * gap, BENCHMARKS.md). Node checks each entry against its source and its own version, and keeps
 * working (compiling) when the folder cannot be written. Node 20 has no such cache: it compiles.
 *
 * The folder: `NODE_COMPILE_CACHE` when set (Node's own variable, which it reads itself as it
 * starts), else `compile-cache` in `DATA_DIR` (./data by default, /data in the Docker image): a
 * folder the server may write and that outlives a restart, and a restarted container too when
 * DATA_DIR is a volume. `NODE_DISABLE_COMPILE_CACHE=1` (Node's) turns it off.
 */
import nodeModule from 'node:module'
import { join } from 'node:path'

/** What `module.enableCompileCache()` said, or that this Node has none. */
export type CompileCacheStatus = 'enabled' | 'already-enabled' | 'failed' | 'disabled' | 'unsupported'

/** The part of `node:module` this uses: absent on Node 20 (@types/node 20 does not name it). */
export interface CompileCacheApi {
  enableCompileCache?: (directory?: string) => { status: number, message?: string, directory?: string }
  flushCompileCache?: () => void
  constants?: { compileCacheStatus?: Record<string, number> }
}

const node = nodeModule as unknown as CompileCacheApi

/** The folder the cache goes to for `env`. */
export function compileCacheDir (env: Record<string, string | undefined>): string {
  return env.NODE_COMPILE_CACHE ?? join(env.DATA_DIR ?? './data', 'compile-cache')
}

/**
 * Turns the compile cache on for every module loaded from now on (call it before loading the
 * bundle). Never throws: a start without the cache is slower, not broken.
 */
export function enableCompileCache (env: Record<string, string | undefined>, api: CompileCacheApi = node): { status: CompileCacheStatus, directory?: string } {
  if (api.enableCompileCache === undefined) return { status: 'unsupported' }
  const { status, directory } = api.enableCompileCache(compileCacheDir(env))
  const codes = api.constants?.compileCacheStatus ?? {}
  const name = Object.keys(codes).find((k) => codes[k] === status)
  const known: Record<string, CompileCacheStatus> = { ENABLED: 'enabled', ALREADY_ENABLED: 'already-enabled', FAILED: 'failed', DISABLED: 'disabled' }
  return { status: (name !== undefined ? known[name] : undefined) ?? 'failed', directory }
}

/**
 * Writes what has been compiled so far to the cache folder now (Node 22.10+), instead of only as
 * the process exits: a server stopped by SIGKILL or a crash still leaves its cache for the next start.
 */
export function flushCompileCache (api: CompileCacheApi = node): void {
  api.flushCompileCache?.()
}
