/**
 * How the production build starts (build.mjs): dist/src/cli.js runs the server's bundle, one
 * CommonJS file, with V8's code cache for it beside it, so that a start deserializes the bytecode
 * its modules compiled to instead of parsing and compiling about 3 MB of JavaScript again. That
 * compilation was the largest part of a restart before the first hook (BENCHMARKS.md). It is what
 * Node 22's compile cache does; Node 20 has only `vm.Script`'s `cachedData`, and only for scripts,
 * not ES modules, hence a CommonJS bundle.
 *
 * The build makes the cache by starting the bundle once and answering a few hooks. A cache V8
 * rejects (another Node or other V8 flags) only costs the compilation it would have saved, and the
 * process then writes a fresh one when it exits, if it may write there. V8 checks a cache against
 * its source's length, not its content, so the cache's name carries the bundle's hash (build.mjs):
 * a rebuilt bundle never meets the cache of another.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { Script } from 'node:vm'

/** What became of the cache: V8 took it, rejected it, or there was none. */
export type CacheUse = 'used' | 'rejected' | 'absent'

type ModuleFunction = (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void

/**
 * Runs `file` as a CommonJS module (Node's own wrapper: exports, require, module, __filename,
 * __dirname), compiled with `cacheFile`'s code cache when there is one. `save()` writes the cache of
 * everything compiled from `file` so far, the functions run since included; false when it cannot
 * (the folder is read-only), which costs only the next start's compilation.
 */
export function runCommonJs (file: string, cacheFile: string): { exports: unknown, cache: CacheUse, save: () => boolean } {
  let cachedData: Buffer | undefined
  try {
    cachedData = readFileSync(cacheFile)
  } catch {
    cachedData = undefined
  }
  // A hashbang line is allowed only at a script's start: kept as a comment, on its line.
  const text = readFileSync(file, 'utf8').replace(/^#!/, '//')
  const source = `(function (exports, require, module, __filename, __dirname) { ${text}\n});`
  const script = new Script(source, { filename: file, cachedData })
  const cache: CacheUse = cachedData === undefined ? 'absent' : script.cachedDataRejected === true ? 'rejected' : 'used'
  const module = { exports: {} }
  ;(script.runInThisContext() as ModuleFunction).call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
  const save = (): boolean => {
    // A whole file or none: another process starting from the same folder reads it meanwhile.
    const partial = `${cacheFile}.${process.pid}.partial`
    try {
      writeFileSync(partial, script.createCachedData())
      renameSync(partial, cacheFile)
      return true
    } catch {
      rmSync(partial, { force: true })
      return false
    }
  }
  return { exports: module.exports, cache, save }
}

/** dist/src/cli.js: runs the bundle, and when its cache was not used, writes one as the process exits. */
export function startBundle (file: string, cacheFile: string): CacheUse {
  const { cache, save } = runCommonJs(file, cacheFile)
  if (cache !== 'used') process.once('exit', () => { save() })
  return cache
}
