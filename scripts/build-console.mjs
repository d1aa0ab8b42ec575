/**
 * The operator console's build (part of `npm run build`): web/console/main.ts bundled and
 * minified into console.js, beside index.html and console.css, in dist/console (or the folder
 * given). srs-hooks serves that folder (routes/console.ts); nothing is fetched from elsewhere.
 */
import { copyFileSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'

export async function buildConsole (root = process.cwd(), outdir = 'dist/console') {
  const out = resolve(root, outdir)
  mkdirSync(out, { recursive: true })
  await build({
    absWorkingDir: root,
    entryPoints: ['web/console/main.ts'],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2022',
    outfile: join(out, 'console.js'),
    logLevel: 'warning'
  })
  for (const f of ['index.html', 'console.css']) copyFileSync(join(root, 'web/console', f), join(out, f))
  return out
}

// `node scripts/build-console.mjs [outdir]`
if (import.meta.url === `file://${process.argv[1]}`) await buildConsole(process.cwd(), process.argv[2])
