import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
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
  // The build leaves the code cache of the bundle it made (named by its hash), which a start uses and leaves alone.
  const hash = createHash('sha256').update(await readFile(join(out, 'srs-hooks.cjs'))).digest('hex').slice(0, 16)
  t.same((await readdir(out)).filter((f) => f.endsWith('.cache')), [`srs-hooks.${hash}.cache`])
  const cache = await stat(join(out, `srs-hooks.${hash}.cache`))
  // Strict, as the ES modules it was built from: its first statement is the directive.
  t.match((await readFile(join(out, 'srs-hooks.cjs'), 'utf8')).replace(/^#!.*\n/, ''), /^'use strict';/)
  const { lines, hookBase, stderr, child, exited } = await startBundle(t, out, { SRS_API_URL: 'http://127.0.0.1:9' })

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
  t.equal((await stat(join(out, `srs-hooks.${hash}.cache`))).ino, cache.ino, 'the cache was used, not written again')
})

t.test('the production bundle loads what a start defers and works with it: SRS\'s API (undici), Redis (ioredis), PostgreSQL (pg)', async (t) => {
  const [out, sim, redis, cluster] = await Promise.all([buildBundle(t), SrsSimulator.start({ version: '6' }), RedisServer.start(t), startPostgres(t)])
  t.teardown(() => sim.close())
  const database = await cluster.database()
  const { lines, hookBase, stderr, child, exited } = await startBundle(t, out, { SRS_API_URL: sim.apiUrl, REDIS_URL: redis.url, DATABASE_URL: database })
  sim.setHookBase(hookBase)

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
