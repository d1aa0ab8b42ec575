/**
 * The production build (`npm run build`), in dist/src:
 * - srs-hooks.cjs: src/cli.ts and everything it imports, node_modules included, as one CommonJS
 *   file, and sqlite-worker.cjs beside it (where `new URL('./sqlite-worker.cjs', import.meta.url)`
 *   finds it). A start reads two files instead of about 1,500 (TypeBox alone is over 700 ES modules).
 * - cli.js: the command. It runs srs-hooks.cjs with V8's code cache for it (src/code-cache.ts), so
 *   that a start does not parse and compile the bundle again: the restart gap, BENCHMARKS.md.
 * - srs-hooks.HASH.cache: that cache, made here by starting the bundle once and answering a few
 *   hooks (train()), so that the functions a start and its first hooks run are in it. HASH is the
 *   bundle's: V8 checks a cache against its source's length only.
 * Native and optional packages stay outside and are loaded from node_modules: better-sqlite3 (a
 * compiled binding), pg-native and cpu-features. The type check is `tsc -p tsconfig.build.json
 * --noEmit`; test/build.test.ts builds and runs the bundle.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'

export const options = {
  entryPoints: { 'srs-hooks': 'src/cli.ts', 'sqlite-worker': 'src/recordings/sqlite-worker.ts' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  entryNames: '[name]',
  outExtension: { '.js': '.cjs' },
  // Less to read and compile when there is no cache. Identifiers are not minified, so functions
  // keep their names without keepNames, whose __name() call on every function made at run time
  // (closures on a hook's path) cost about a tenth of the server's own CPU at the maximum hook rate.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  external: ['better-sqlite3', 'pg-native', 'cpu-features'],
  // import.meta.url in CommonJS: the file's own URL. The directive first: code before it would
  // make the whole bundle sloppy-mode JavaScript, where the ES modules it was built from are strict.
  define: { 'import.meta.url': '__import_meta_url' },
  banner: { js: "'use strict';var __import_meta_url=require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning'
}

/** What a build writes, and what earlier builds wrote (the chunks of the ES module bundle). */
const BUILT = /^(cli\.js|srs-hooks\.[^/]*|sqlite-worker\.[^/]*|chunk-[A-Z0-9]+\.js)(\.map)?$/

/** A hook of each kind SRS sends before and around a publish and a play, for the training start. */
const TRAINING_HOOKS = ['on_connect', 'on_publish', 'on_play', 'on_stop', 'on_unpublish', 'on_close']

function post (port, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

/**
 * Starts the built command with a clean environment (nothing of the builder's shell: no Redis, no
 * PostgreSQL, no SRS), answers each training hook, and stops it with SIGTERM: it exits writing
 * the cache, as a start without one does. Throws when it does not serve, so that a broken bundle
 * fails the build.
 */
async function train (outdir) {
  const dataDir = mkdtempSync(join(tmpdir(), 'srs-hooks-build-'))
  const child = spawn(process.execPath, [join(outdir, 'cli.js')], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, SRS_API_URL: 'http://127.0.0.1:9', RECONCILE_INTERVAL_MS: '0' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const kill = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
  try {
    let out = ''
    const port = await new Promise((resolve, reject) => {
      child.stdout.on('data', (c) => {
        out += c.toString()
        const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
        if (m !== null) resolve(Number(m[1]))
      })
      child.on('exit', (code) => { reject(new Error(`the built server exited (${code}) before serving:\n${out}`)) })
    })
    child.stdout.resume()
    for (const action of TRAINING_HOOKS) {
      const status = await post(port, `/admin-api/video/camera/callback/${action}`, { action, client_id: 'build', vhost: '__defaultVhost__', app: 'live', stream: 'build' })
      if (status !== 200) throw new Error(`the built server answered ${action} with ${status}`)
    }
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const [code] = await exited
    if (code !== 0) throw new Error(`the built server exited with ${code}`)
  } finally {
    clearTimeout(kill)
    child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** Builds into `outdir` (dist/src), `root` being the project. */
export async function bundle (root = process.cwd(), outdir = 'dist/src') {
  const out = resolve(root, outdir)
  // Nothing of an earlier build stays beside this one (its chunks, its cache), and nothing else
  // of the folder is touched.
  mkdirSync(out, { recursive: true })
  for (const f of readdirSync(out)) if (BUILT.test(f)) rmSync(join(out, f))
  await build({ ...options, absWorkingDir: root, outdir: out })
  const hash = createHash('sha256').update(readFileSync(join(out, 'srs-hooks.cjs'))).digest('hex').slice(0, 16)
  await build({
    absWorkingDir: root,
    stdin: {
      contents: "import { fileURLToPath } from 'node:url'\nimport { startBundle } from './code-cache.ts'\n" +
        `startBundle(fileURLToPath(new URL('./srs-hooks.cjs', import.meta.url)), fileURLToPath(new URL('./srs-hooks.${hash}.cache', import.meta.url)))\n`,
      resolveDir: join(root, 'src'),
      sourcefile: 'cli.js',
      loader: 'ts'
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(out, 'cli.js'),
    banner: { js: '#!/usr/bin/env node' },
    logLevel: 'warning'
  })
  // The package's bin: npx and a shell run it only when it is executable.
  chmodSync(join(out, 'cli.js'), 0o755)
  await train(out)
  if (!readdirSync(out).includes(`srs-hooks.${hash}.cache`)) throw new Error('the training start wrote no code cache')
}

// `node build.mjs [outdir]`
if (import.meta.url === `file://${process.argv[1]}`) await bundle(process.cwd(), process.argv[2])
