/**
 * The production build (`npm run build`): src/cli.ts and everything it imports, node_modules
 * included, as ES modules in dist/src: cli.js, the SQLite worker beside it (where
 * `new URL('./sqlite-worker.js', import.meta.url)` finds it) and the chunks they share. A start
 * reads a score of files instead of about 1,500 (TypeBox alone is over 700 ES modules): the
 * restart gap, BENCHMARKS.md. Modules reached only by `import()` (the CLI's other commands,
 * PostgreSQL, Redis, undici) are chunks of their own, read and compiled only when imported. A
 * chunk's dynamic import of a CommonJS package has only a default export: import such a package
 * through a module of ours (src/http/pool.ts). Native and optional packages stay outside and are loaded from
 * node_modules: better-sqlite3 (a compiled binding), pg-native and cpu-features. The type check
 * is `tsc -p tsconfig.build.json --noEmit`; test/build.test.ts builds and runs the bundle.
 */
import { build } from 'esbuild'

export const options = {
  entryPoints: ['src/cli.ts', 'src/recordings/sqlite-worker.ts'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Flat: the worker sits beside the bundle, and so do the chunks (a chunk that starts the worker
  // finds it beside itself).
  entryNames: '[name]',
  // What is reached only by import() (undici, ioredis, pg, the CLI's other commands) goes to chunks
  // of its own, read and compiled only when imported: a start compiles a third less.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  // Less to read and compile at each start. Identifiers are not minified, so functions keep their
  // names without keepNames, whose __name() call on every function made at run time (closures on
  // a hook's path) cost about a tenth of the server's own CPU at the maximum hook rate.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  external: ['better-sqlite3', 'pg-native', 'cpu-features'],
  // CommonJS packages inside an ES module bundle still call require() for Node's own modules.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning'
}

/** Builds into `outdir` (dist/src), `root` being the project. */
export async function bundle (root = process.cwd(), outdir = 'dist/src') {
  await build({ ...options, absWorkingDir: root, outdir })
}

// `node build.mjs [outdir]`
if (import.meta.url === `file://${process.argv[1]}`) await bundle(process.cwd(), process.argv[2])
