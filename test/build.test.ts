import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import nodeModule from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { postHook, waitFor } from './fixtures/app.js'
import { startPostgres } from './fixtures/postgres.js'
import { dvr } from './fixtures/recordings-suite.js'
import { RedisServer } from './fixtures/redis.js'
import { SrsSimulator } from './fixtures/srs-sim.js'

const root = fileURLToPath(new URL('..', import.meta.url))
// Three builds and starts of the bundle: more than the default 60 s on a loaded machine.
t.setTimeout(180_000)
/**
 * Plain node, as `npm run serve` starts it: tap adds its loader and coverage to every child's
 * environment, and `env` (which then execs node) takes them off again, so that the bundle's own
 * coverage, mapped back to node_modules, stays out of the project's.
 */
const PLAIN = ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE']

/** Builds the bundle into a folder inside the project (so that better-sqlite3 resolves), removed after `t`. */
async function buildBundle (t: Test): Promise<string> {
  await mkdir(join(root, '.tap'), { recursive: true })
  const out = await mkdtemp(join(root, '.tap', 'bundle-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  await promisify(execFile)('env', [...PLAIN, process.execPath, 'build.mjs', out], { cwd: root })
  return out
}

/** Starts the bundle with `env`; its log lines as they come, its hook base once it listens, and its exit. */
async function startBundle (t: Test, out: string, env: Record<string, string>): Promise<{ lines: string[], hookBase: string, stderr: () => string, child: ChildProcess, exited: Promise<number | null> }> {
  const child = spawn('env', [...PLAIN, process.execPath, join(out, 'cli.js')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', RECONCILE_INTERVAL_MS: '0', DATA_DIR: t.testdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const lines: string[] = []
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)))
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const line = await waitFor(() => lines.find((l) => l.includes('Server listening at http://127.0.0.1')), 20_000, 'the bundle to listen')
  const hookBase = `${JSON.parse(line).msg.replace('Server listening at ', '')}/admin-api/video/camera/callback`
  return { lines, hookBase, stderr: () => stderr, child, exited }
}

t.test('the production bundle serves hooks, stores a recording through its SQLite worker, and exits 0 on SIGTERM', async (t) => {
  const out = await buildBundle(t)
  // The build writes the command, the bundle, the worker and their maps: no cache of any kind.
  t.same((await readdir(out)).sort(), ['cli.js', 'sqlite-worker.cjs', 'sqlite-worker.cjs.map', 'srs-hooks.cjs', 'srs-hooks.cjs.map'])
  // Strict, as the ES modules it was built from: its first statement is the directive.
  t.match((await readFile(join(out, 'srs-hooks.cjs'), 'utf8')).replace(/^#!.*\n/, ''), /^'use strict';/)
  const dataDir = t.testdir()
  const { lines, hookBase, stderr, child, exited } = await startBundle(t, out, { SRS_API_URL: 'http://127.0.0.1:9', DATA_DIR: dataDir })

  const play = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'c1', vhost: '__defaultVhost__', app: 'live', stream: 's' })
  t.same(play.reply, { code: 0, msg: null })
  // on_dvr is answered once stored, and SQLite writes in the worker beside the bundle.
  const stored = await postHook(hookBase, 'on_dvr', dvr())
  t.same([stored.status, stored.reply], [200, { code: 0, msg: null }], stderr())
  await waitFor(() => lines.some((l) => l.includes('"action":"on_dvr"')), 5000, 'the on_dvr log line')
  const again = await postHook(hookBase, 'on_dvr', dvr())
  t.same(again.reply, { code: 0, msg: null }, 'the same recording again is a duplicate, answered alike')

  child.kill('SIGTERM')
  t.equal(await exited, 0, lines.slice(-5).join('\n') + stderr())
  t.ok(lines.some((l) => l.includes('"signal":"SIGTERM"')), 'closed gracefully')
  // Where Node has a compile cache (22.1+), the start left one in DATA_DIR for the next; Node 20 has none.
  const cached = await readdir(join(dataDir, 'compile-cache')).catch(() => null)
  if (typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache === 'function') {
    t.ok(cached !== null && cached.length > 0, 'a compile cache in DATA_DIR/compile-cache')
  } else {
    t.equal(cached, null, 'no compile cache folder on a Node without one')
  }
})

t.test('the production bundle loads what a start defers and works with it: SRS\'s API (undici), Redis (ioredis), PostgreSQL (pg)', async (t) => {
  const [out, sim, redis, cluster] = await Promise.all([buildBundle(t), SrsSimulator.start({ version: '6' }), RedisServer.start(t), startPostgres(t)])
  t.teardown(() => sim.close())
  const database = await cluster.database()
  const cacheDir = join(t.testdir(), 'cache')
  const { lines, hookBase, stderr, child, exited } = await startBundle(t, out, { SRS_API_URL: sim.apiUrl, REDIS_URL: redis.url, DATABASE_URL: database, NODE_COMPILE_CACHE: cacheDir })
  sim.setHookBase(hookBase)
  // NODE_COMPILE_CACHE names the compile cache's folder; the start writes it once listening, not only at exit.
  const cached = await readdir(cacheDir).catch(() => null)
  if (typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache === 'function') {
    t.ok(cached !== null && cached.length > 0, 'a compile cache in NODE_COMPILE_CACHE while serving')
  } else {
    t.equal(cached, null, 'Node 20 writes no compile cache')
  }

  // A free stream (one API call), then a takeover of a live one (a kick and the wait for its release, shared state in Redis).
  const free = await sim.publish({ app: 'live', stream: 'free' })
  t.ok(free.ok, `${free.reason} ${stderr()}`)
  sim.seedLive(1, { prefix: 'held' })
  const takeover = await sim.publish({ app: 'live', stream: 'held0' })
  t.ok(takeover.ok, `${takeover.reason} ${stderr()}`)
  t.match(await waitFor(() => lines.find((l) => l.includes('"outcome":"took-over"')), 5000, 'the takeover\'s line'), /"stream":"\/live\/held0"/, 'taken over')
  const stored = await postHook(hookBase, 'on_dvr', dvr())
  t.same([stored.status, stored.reply], [200, { code: 0, msg: null }], stderr())
  t.same(await cluster.query('SELECT stream, file FROM srs_hooks.recordings', [], database), [{ stream: dvr().stream, file: dvr().file }], 'stored in PostgreSQL')

  child.kill('SIGTERM')
  t.equal(await exited, 0, lines.slice(-5).join('\n') + stderr())
})

t.test('the package\'s bin runs as a user runs it, with npx from the package\'s folder: --version, help, sign, doctor, evict', async (t) => {
  // The package's folder as a clone is after `npm ci && npm run build`: package.json and dist/src,
  // inside the project so that node_modules resolves. npx runs the bin of the package it stands in.
  await mkdir(join(root, '.tap'), { recursive: true })
  const pkg = await mkdtemp(join(root, '.tap', 'package-'))
  t.teardown(() => rm(pkg, { recursive: true, force: true }))
  const [sim] = await Promise.all([
    SrsSimulator.start({ version: '6' }),
    copyFile(join(root, 'package.json'), join(pkg, 'package.json')),
    promisify(execFile)('env', [...PLAIN, process.execPath, 'build.mjs', join(pkg, 'dist', 'src')], { cwd: root })
  ])
  t.teardown(() => sim.close())
  t.equal((await stat(join(pkg, 'dist', 'src', 'cli.js'))).mode & 0o111, 0o111, 'the bin is executable')
  const npx = async (args: string[], env: Record<string, string> = {}) => await new Promise<{ code: number | null, out: string, err: string }>((resolve) => {
    const child = spawn('env', [...PLAIN, 'npx', '--offline', 'srs-hooks', ...args], { cwd: pkg, env: { ...process.env, SRS_API_URL: sim.apiUrl, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { err += c.toString() })
    child.on('exit', (code) => resolve({ code, out, err }))
  })
  const secret = 'publish-secret-0123456789abcdef'
  const [version, help, signed, doctor, evicted] = await Promise.all([
    npx(['--version']),
    npx(['evict', '--help']),
    npx(['sign', 'live/cam1', '--expires', '1700003600'], { PUBLISH_SECRET: secret }),
    npx(['doctor']),
    npx(['evict', 'live/nobody'])
  ])
  const pkgJson = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }
  t.same([version.code, version.out], [0, `srs-hooks ${pkgJson.version}\n`], version.err)
  t.equal(help.code, 0, help.err)
  t.match(help.out, /usage: srs-hooks evict .*\n\nexit codes:\n {2}0 {2}evicted.*\n {2}1 .*\n {2}2 .*\n {2}3 {2}nothing to evict/s)
  t.same([signed.code, signed.out], [0, `?expires=1700003600&sign=${createHmac('sha256', secret).update('live/cam1:1700003600').digest('hex')}\n`], signed.err)
  t.match(signed.err, /warning: this URL expired/)
  t.ok(doctor.out.includes(`OK    SRS's API answers at ${sim.apiUrl}: SRS 6`), doctor.out + doctor.err)
  t.same([evicted.code, evicted.err], [3, 'nothing to evict: SRS lists no active publisher of /live/nobody\n'], evicted.out)

  // npm start (scripts/start.mjs) runs an up-to-date build as it is, and builds first when a source is newer.
  const start = async (cwd: string) => await new Promise<{ code: number | null, out: string, err: string }>((resolve) => {
    const child = spawn('env', [...PLAIN, process.execPath, join(root, 'scripts', 'start.mjs'), '--version'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { err += c.toString() })
    child.on('exit', (code) => resolve({ code, out, err }))
  })
  const upToDate = await start(pkg)
  t.same([upToDate.code, upToDate.out, upToDate.err], [0, `srs-hooks ${pkgJson.version}\n`, ''], 'no build: the built command runs at once')
  await mkdir(join(pkg, 'src'))
  await writeFile(join(pkg, 'src', 'changed.ts'), '')
  const future = new Date(Date.now() + 60_000)
  await utimes(join(pkg, 'src', 'changed.ts'), future, future)
  const changed = await start(pkg)
  t.match(changed.err, /^srs-hooks: building \(src\/changed\.ts changed since the last build\)\n/, 'a newer source: the build runs first')
  t.not(changed.code, 0, 'and its failure (this folder has no tsconfig) stops the start')
  t.notMatch(changed.out, /srs-hooks \d/, 'nothing served after a failed build')
  const empty = await mkdtemp(join(root, '.tap', 'package-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  // A folder of its own for npm run build, which fails at once.
  await writeFile(join(empty, 'package.json'), JSON.stringify({ name: 'empty', scripts: { build: 'exit 3' } }))
  const first = await start(empty)
  t.match(first.err, /^srs-hooks: building \(no build yet\)/)
  t.equal(first.code, 3, 'the build\'s exit code')
})
