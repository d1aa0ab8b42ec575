/**
 * The production build (`npm run build`), in dist/src:
 * - srs-hooks.cjs: src/cli.ts and everything it imports, node_modules included, as one CommonJS
 *   file, and sqlite-worker.cjs beside it (where `new URL('./sqlite-worker.cjs', import.meta.url)`
 *   finds it). A start reads two files instead of about 1,500 (TypeBox alone is over 700 ES modules).
 * - cli.js: the command. It turns Node's compile cache on (src/compile-cache.ts: Node 22.1+, in
 *   DATA_DIR/compile-cache or NODE_COMPILE_CACHE), then loads srs-hooks.cjs, so that a restart does
 *   not parse and compile the bundle again: the restart gap, BENCHMARKS.md.
 * Native and optional packages stay outside and are loaded from node_modules: better-sqlite3 (a
 * compiled binding), pg-native and cpu-features. The type check is `tsc -p tsconfig.build.json
 * --noEmit`; test/build.test.ts builds and runs the bundle.
 */
import { chmodSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
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

/** What a build writes, and what earlier builds wrote (the chunks of the ES module bundle, V8 code caches). */
const BUILT = /^(cli\.js|srs-hooks\.[^/]*|sqlite-worker\.[^/]*|chunk-[A-Z0-9]+\.js)(\.map)?$/

/** Builds into `outdir` (dist/src), `root` being the project. */
export async function bundle (root = process.cwd(), outdir = 'dist/src') {
  const out = resolve(root, outdir)
  // Nothing of an earlier build stays beside this one (its chunks, an old code cache), and nothing else
  // of the folder is touched.
  mkdirSync(out, { recursive: true })
  for (const f of readdirSync(out)) if (BUILT.test(f)) rmSync(join(out, f))
  await build({ ...options, absWorkingDir: root, outdir: out })
  await build({
    absWorkingDir: root,
    stdin: {
      // The compile cache first, so that it holds the bundle loaded after it.
      contents: "import { createRequire } from 'node:module'\nimport { enableCompileCache } from './compile-cache.ts'\n" +
        "enableCompileCache(process.env)\ncreateRequire(import.meta.url)('./srs-hooks.cjs')\n",
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
}

// `node build.mjs [outdir]`
if (import.meta.url === `file://${process.argv[1]}`) await bundle(process.cwd(), process.argv[2])
