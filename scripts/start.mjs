/**
 * `npm start`: serves with the built server, building it first only when the build is missing or
 * older than what it is built from (its sources, the build's settings, the installed packages).
 * A start with an up-to-date build runs no type check and no bundling. `npm run serve` runs the
 * build as it is, for production.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const root = process.cwd()
const SOURCES = ['src', 'routes', 'web', 'build.mjs', 'scripts/build-console.mjs', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']

/** The newest file under `path` and its modification time; none when it does not exist. */
function newest (path) {
  let st
  try {
    st = statSync(path)
  } catch {
    return { file: undefined, mtimeMs: 0 }
  }
  if (!st.isDirectory()) return { file: path, mtimeMs: st.mtimeMs }
  let best = { file: undefined, mtimeMs: 0 }
  for (const name of readdirSync(path)) {
    const n = newest(join(path, name))
    if (n.mtimeMs > best.mtimeMs) best = n
  }
  return best
}

/** Why the build must run again, or undefined when it is up to date. The command is what the build writes. */
function stale () {
  let built
  try {
    built = statSync(join(root, 'dist', 'src', 'cli.js')).mtimeMs
  } catch {
    return 'no build yet'
  }
  for (const s of SOURCES) {
    const n = newest(join(root, s))
    if (n.mtimeMs > built) return `${n.file.slice(root.length + 1)} changed since the last build`
  }
  return undefined
}

const why = stale()
if (why !== undefined) {
  process.stderr.write(`srs-hooks: building (${why})\n`)
  const r = spawnSync('npm', ['run', 'build'], { stdio: 'inherit', cwd: root })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
await import(pathToFileURL(join(root, 'dist', 'src', 'cli.js')).href)
