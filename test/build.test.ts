import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
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
