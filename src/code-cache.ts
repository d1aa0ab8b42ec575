/**
 * How the production build starts (build.mjs): dist/src/cli.js runs the server's bundle, one
 * CommonJS file, with V8's code cache for it beside it, so that a start deserializes the bytecode
 * its modules compiled to instead of parsing and compiling about 3 MB of JavaScript again. That
 * compilation was the largest part of a restart before the first hook (BENCHMARKS.md). It is what
 * Node 22's compile cache does; Node 20 has only `vm.Script`'s `cachedData`, and only for scripts,
 * not ES modules, hence a CommonJS bundle.
 *
 * The build makes the cache by starting the bundle once and answering a few hooks. V8 rejects a
 * cache made by another Node or under other V8 flags (`--max-old-space-size` too): that costs the
 * compilation it would have saved, and the process writes a fresh one as it exits where it may
 * write (not in the Docker image, whose dist/ is root's). V8 checks a cache against its source's
 * length, not its content, so the cache's name carries the bundle's hash (build.mjs): a rebuilt
 * bundle never meets the cache of another. Nor does V8 check a cache's bytes, and a damaged one
 * can crash the process as it starts: the file holds the cache's SHA-256 before it, and a cache
 * that does not match it is not used. With `--enable-source-maps` the bundle is left to Node's own
 * loader, which maps stack traces through srs-hooks.cjs.map; there is then no cache.
 */
import { createHash, randomBytes } from 'node:crypto'
import { accessSync, constants, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { Script } from 'node:vm'

/**
 * What became of the cache: V8 took it; V8 rejected it or it did not match its digest; there was
 * none; or it was not looked for (source maps on).
 */
export type CacheUse = 'used' | 'rejected' | 'absent' | 'bypassed'

type ModuleFunction = (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void

const DIGEST_BYTES = 32
const digest = (data: Buffer): Buffer => createHash('sha256').update(data).digest()

/** The cache in `cacheFile` if its digest matches; null when it does not, undefined when there is no file. */
function readCache (cacheFile: string): Buffer | null | undefined {
  let file: Buffer
  try {
    file = readFileSync(cacheFile)
  } catch {
    return undefined
  }
  const cache = file.subarray(DIGEST_BYTES)
  return file.length > DIGEST_BYTES && digest(cache).equals(file.subarray(0, DIGEST_BYTES)) ? cache : null
}

/**
 * Runs `file` as a CommonJS module (Node's own wrapper: exports, require, module, __filename,
 * __dirname), compiled with `cacheFile`'s code cache when there is a sound one. `save()` writes the
 * cache of everything compiled from `file` so far, the functions run since included; false when it
 * cannot (the folder is read-only), which costs only the next start's compilation.
 */
export function runCommonJs (file: string, cacheFile: string): { exports: unknown, cache: CacheUse, save: () => boolean } {
  const cachedData = readCache(cacheFile)
  // A hashbang line is allowed only at a script's start: kept as a comment, on its line.
  const text = readFileSync(file, 'utf8').replace(/^#!/, '//')
  const source = `(function (exports, require, module, __filename, __dirname) { ${text}\n});`
  const script = new Script(source, { filename: file, cachedData: cachedData ?? undefined })
  const cache: CacheUse = cachedData === undefined ? 'absent' : cachedData === null || script.cachedDataRejected === true ? 'rejected' : 'used'
  const module = { exports: {} }
  ;(script.runInThisContext() as ModuleFunction).call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
  const save = (): boolean => {
    // A whole file or none, on the disk before it takes the cache's name: other processes (replicas
    // sharing dist/, containers that are all pid 1) read the cache and write theirs meanwhile.
    const partial = `${cacheFile}.${process.pid}-${randomBytes(6).toString('hex')}.partial`
    try {
      const data = script.createCachedData()
      writeFileSync(partial, Buffer.concat([digest(data), data]), { flush: true })
      renameSync(partial, cacheFile)
      return true
    } catch {
      rmSync(partial, { force: true })
      return false
    }
  }
  return { exports: module.exports, cache, save }
}

function writable (dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * dist/src/cli.js: runs the bundle; when its cache was not used and its folder can be written,
 * writes one as the process exits.
 */
export function startBundle (file: string, cacheFile: string): CacheUse {
  if (process.sourceMapsEnabled) {
    createRequire(file)(file)
    return 'bypassed'
  }
  const { cache, save } = runCommonJs(file, cacheFile)
  if (cache !== 'used' && writable(dirname(cacheFile))) process.once('exit', () => { save() })
  return cache
}
