import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import pg from 'pg'
import { postHook, startApp, waitFor, type TestApp } from './fixtures/app.js'
import { PgProxy, startPostgres } from './fixtures/postgres.js'
import { dvr } from './fixtures/recordings-suite.js'
import { createLogger } from '../src/logger.js'
import { PgRecordingStore } from '../src/recordings/postgres.js'
import { Spool, SpoolFile } from '../src/recordings/spool.js'
import { SpooledStore } from '../src/recordings/spooled.js'
import type { NewRecording } from '../src/recordings/store.js'

/**
 * PostgreSQL down, hanging, resetting connections, read-only or locked: every on_dvr is answered
 * within its bound, every acknowledged one is stored (in PostgreSQL, or in the spool and later in
 * PostgreSQL, once), and the spool's state is visible. One throwaway cluster for this file; the
 * tests that stop it restart it before they end.
 */

const cluster = await startPostgres(t)

async function proxied (t: Test): Promise<{ proxy: PgProxy, url: string, direct: string }> {
  const proxy = await PgProxy.start(cluster.port)
  t.teardown(() => proxy.close())
  const direct = await cluster.database()
  return { proxy, url: proxy.via(direct), direct }
}

const list = async (h: TestApp, query = '') => {
  const res = await fetch(`${h.url}/admin-api/video/camera/recordings${query}`)
  return { status: res.status, body: await res.json() as any }
}

const ready = async (h: TestApp) => await (await fetch(`${h.url}/readyz`)).json() as any

/** Every file listed, following the cursor. */
async function allFiles (h: TestApp): Promise<string[]> {
  const files: string[] = []
  let cursor: string | null = null
  do {
    const { body }: { body: any } = await list(h, `?limit=500${cursor === null ? '' : `&cursor=${cursor}`}`)
    files.push(...body.items.map((i: any) => i.file))
    cursor = body.next_cursor
  } while (cursor !== null)
  return files
}

const spoolDepth = (h: TestApp) => h.app.recordings.spool()!.depth

t.test('PostgreSQL stopped in the middle of a burst of on_dvr: every one acknowledged, spooled, then drained exactly once', async (t) => {
  const url = await cluster.database()
  const h = await startApp(t, { DATABASE_URL: url, SPOOL_RETRY_MS: '50', DATABASE_WRITE_TIMEOUT_MS: '2000', DATABASE_QUERY_TIMEOUT_MS: '2000' })
  const acked: string[] = []
  const refused: unknown[] = []
  let sent = 0
  let stopping: Promise<void> | undefined
  const worker = async (w: number): Promise<void> => {
    while (sent < 240) {
      const file = `/srv/dvr/w${w}.${sent++}.flv`
      const r = await postHook(h.hookBase, 'on_dvr', dvr({ file, client_id: `c${w}` }))
      if (r.status === 200 && r.reply.code === 0) acked.push(file)
      else refused.push(r.reply)
      if (acked.length === 60) stopping = cluster.stop('fast')
    }
  }
  await Promise.all(Array.from({ length: 8 }, async (_, w) => await worker(w)))
  await stopping
  t.same(refused, [], 'no on_dvr refused while PostgreSQL went away')
  t.equal(acked.length, 240)
  const { stored, spooled } = h.app.recordings.counters
  t.ok(stored >= 60 && spooled > 0, `${stored} stored directly, ${spooled} spooled`)
  t.equal(stored + spooled, 240)
  t.equal(spoolDepth(h), spooled)

  const down = await list(h)
  t.equal(down.status, 503, 'the index cannot be listed while PostgreSQL is down')
  t.match(down.body, { code: 4112, msg: new RegExp(`${spooled} recordings wait in this replica's spool`) })
  const degraded = await ready(h)
  t.match(degraded, { checks: { store: { ok: true, msg: /does not take a write.*recordings go to the spool/ } }, spool: { depth: spooled, max: 1_000_000 } })
  t.same(degraded.degraded, ['postgres'], 'PostgreSQL named under degraded, as Redis is')

  await cluster.start()
  await waitFor(() => spoolDepth(h) === 0, 15_000, 'the spool to drain')
  const files = await allFiles(h)
  t.same([...files].sort(), [...acked].sort(), 'every acknowledged recording listed once, nothing else')
  t.same(await cluster.query('SELECT file FROM srs_hooks.recordings GROUP BY file HAVING count(*) > 1', [], url), [], 'no duplicates')
  t.equal((h.app.recordings.store as SpooledStore).counters.drained, spooled)
  t.match((await list(h)).body, { code: 0, spooled: 0 })
})

t.test('PostgreSQL hanging: an on_dvr is answered within DATABASE_WRITE_TIMEOUT_MS from the spool, the next ones at once, all drained when it answers', async (t) => {
  const { proxy, url } = await proxied(t)
  const h = await startApp(t, { DATABASE_URL: url, DATABASE_WRITE_TIMEOUT_MS: '300', DATABASE_QUERY_TIMEOUT_MS: '600', SPOOL_RETRY_MS: '100' })
  t.same((await postHook(h.hookBase, 'on_dvr', dvr({ file: '/a.flv' }))).reply, { code: 0, msg: null })
  proxy.set('hang')
  const b = await postHook(h.hookBase, 'on_dvr', dvr({ file: '/b.flv' }))
  t.same(b.reply, { code: 0, msg: null })
  t.ok(b.ms < 300 + 1500, `answered in ${Math.round(b.ms)} ms (bound 300 ms)`)
  const c = await postHook(h.hookBase, 'on_dvr', dvr({ file: '/c.flv' }))
  t.same(c.reply, { code: 0, msg: null })
  t.same(h.logs.lines.filter((l) => l.action === 'on_dvr').map((l) => l.outcome), ['stored', 'spooled', 'spooled'])
  t.match(h.logs.find((l) => l.msg === 'PostgreSQL did not take a recording within its bound; spooling it'), { err: /did not answer within 300 ms/ })
  const listed = await list(h)
  t.match(listed, { status: 503, body: { code: 4112, msg: /2 recordings wait/ } }, 'GET recordings is bounded too')
  t.match(await ready(h), { checks: { store: { ok: true, msg: /recordings go to the spool \(2 waiting\)/ } }, spool: { depth: 2 } })
  proxy.set('pass')
  await waitFor(() => spoolDepth(h) === 0, 10_000, 'the spool to drain')
  t.same(await allFiles(h), ['/c.flv', '/b.flv', '/a.flv'], 'in the order they arrived')
})

t.test('connections reset (a failover): on_dvr is spooled and drained once the new primary answers', async (t) => {
  const { proxy, url } = await proxied(t)
  const h = await startApp(t, { DATABASE_URL: url, SPOOL_RETRY_MS: '50' })
  await postHook(h.hookBase, 'on_dvr', dvr({ file: '/before.flv' }))
  proxy.set('reset')
  for (const f of ['/during1.flv', '/during2.flv']) t.same((await postHook(h.hookBase, 'on_dvr', dvr({ file: f }))).reply, { code: 0, msg: null })
  t.equal(h.app.recordings.counters.spooled, 2)
  await waitFor(() => (h.app.recordings.store as SpooledStore).counters.drainFailures > 0, 5000, 'a failed drain')
  proxy.set('pass')
  await waitFor(() => spoolDepth(h) === 0, 10_000, 'the spool to drain')
  t.same(await allFiles(h), ['/during2.flv', '/during1.flv', '/before.flv'])
})

t.test('recordings while PostgreSQL resets every connection: 503 with code 4112 and one warning with the reason, nothing logged as an error', async (t) => {
  const { proxy, url } = await proxied(t)
  const h = await startApp(t, { DATABASE_URL: url, DATABASE_QUERY_TIMEOUT_MS: '2000' })
  t.equal((await fetch(`${h.url}/admin-api/video/camera/recordings?limit=5`)).status, 200)
  proxy.set('reset')
  const res = await fetch(`${h.url}/admin-api/video/camera/recordings?limit=5`)
  t.equal(res.status, 503)
  t.match(await res.json(), { code: 4112, msg: /the recordings index did not answer/ })
  const line = await h.logs.wait((l) => l.msg === 'request failed')
  t.match(line, { level: 40, code: 4112, reason: /the recordings index did not answer/, method: 'GET', url: '/admin-api/video/camera/recordings', caller: '127.0.0.1' })
  t.equal(line.err, undefined, 'no stack, no causes')
  t.notOk(h.logs.find((l) => l.level >= 50), 'nothing logged as an error')
  t.equal(h.logs.lines.filter((l) => l.msg === 'request failed').length, 1, 'one line')
})

t.test('a read-only database (a standby after a failover): on_dvr is spooled, then drained when it takes writes again', async (t) => {
  const url = await cluster.database()
  const db = new URL(url).pathname.slice(1)
  const h = await startApp(t, { DATABASE_URL: url, SPOOL_RETRY_MS: '50' })
  const setReadOnly = async (on: boolean): Promise<void> => {
    await cluster.query(`ALTER DATABASE ${db} SET default_transaction_read_only = ${on ? 'on' : 'off'}`)
    // Sessions keep the setting they started with: end them, as a failover does.
    await cluster.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [db])
  }
  await setReadOnly(true)
  t.same((await postHook(h.hookBase, 'on_dvr', dvr({ file: '/ro.flv' }))).reply, { code: 0, msg: null })
  t.equal(h.app.recordings.counters.spooled, 1)
  t.ok(h.logs.find((l) => l.code === '25006'), 'PostgreSQL said why: read-only transaction')
  t.match(await ready(h), { checks: { store: { ok: true, msg: /read-only transaction.*recordings go to the spool/ } } })
  await setReadOnly(false)
  await waitFor(() => spoolDepth(h) === 0, 10_000, 'the spool to drain')
  t.same(await allFiles(h), ['/ro.flv'])
})

t.test('a write that timed out but did land (PostgreSQL slow on a lock) and its spooled copy are one recording', async (t) => {
  const url = await cluster.database()
  const h = await startApp(t, { DATABASE_URL: url, DATABASE_WRITE_TIMEOUT_MS: '300', DATABASE_QUERY_TIMEOUT_MS: '10000', SPOOL_RETRY_MS: '50' })
  const locker = new pg.Client({ connectionString: url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE srs_hooks.recordings IN EXCLUSIVE MODE')
  const r = await postHook(h.hookBase, 'on_dvr', dvr({ file: '/slow.flv' }))
  t.same(r.reply, { code: 0, msg: null })
  t.equal(h.app.recordings.counters.spooled, 1, 'spooled after 300 ms; the INSERT still waits in PostgreSQL')
  await locker.query('COMMIT')
  await waitFor(() => spoolDepth(h) === 0, 10_000, 'the spool to drain')
  t.match(await cluster.query('SELECT file, count(*)::int AS n FROM srs_hooks.recordings GROUP BY file', [], url), [{ file: '/slow.flv', n: 1 }])
  t.equal((h.app.recordings.store as SpooledStore).counters.drained, 1)
})

t.test('a replica that stops with recordings in its spool drains them when it starts again; PostgreSQL down at start is no reason not to start', async (t) => {
  const { proxy, url } = await proxied(t)
  const dataDir = join(t.testdir(), 'data')
  proxy.set('reset')
  const first = await startApp(t, { DATABASE_URL: url, DATA_DIR: dataDir, SPOOL_RETRY_MS: '50' })
  t.ok(first.logs.find((l) => l.msg === 'PostgreSQL is out of reach at start; recordings go to the spool until it answers'))
  for (const f of ['/1.flv', '/2.flv', '/3.flv']) t.same((await postHook(first.hookBase, 'on_dvr', dvr({ file: f }))).reply, { code: 0, msg: null })
  t.equal(spoolDepth(first), 3)
  await first.app.close()
  proxy.set('pass')
  const second = await startApp(t, { DATABASE_URL: url, DATA_DIR: dataDir })
  await waitFor(() => spoolDepth(second) === 0, 10_000, 'the spool to drain')
  t.ok(second.logs.find((l) => l.msg === 'draining the spool a previous run left' && l.spooled === 3))
  t.same(await allFiles(second), ['/3.flv', '/2.flv', '/1.flv'])
})

t.test('the spool is bounded: full, an on_dvr that cannot reach PostgreSQL is refused (1101), never acknowledged unstored; /readyz says so', async (t) => {
  const { proxy, url } = await proxied(t)
  const h = await startApp(t, { DATABASE_URL: url, SPOOL_MAX_ROWS: '2', SPOOL_RETRY_MS: '50' })
  proxy.set('reset')
  for (const f of ['/1.flv', '/2.flv']) t.same((await postHook(h.hookBase, 'on_dvr', dvr({ file: f }))).reply, { code: 0, msg: null })
  const full = await postHook(h.hookBase, 'on_dvr', dvr({ file: '/3.flv' }))
  t.equal(full.status, 503)
  t.match(full.reply, { code: 1101, msg: /not stored: the spool is full \(SPOOL_MAX_ROWS=2\)/ })
  t.same((await postHook(h.hookBase, 'on_dvr', dvr({ file: '/1.flv' }))).status, 503, 'even a duplicate: the spool cannot say')
  const r = await fetch(`${h.url}/readyz`)
  t.equal(r.status, 503)
  t.match(await r.json(), { failed: ['srs', 'store'], checks: { store: { ok: false, msg: /the spool is full \(SPOOL_MAX_ROWS=2\): on_dvr is refused/ } }, spool: { depth: 2, max: 2 } })
  t.equal(h.app.recordings.counters.failed, 2)
  proxy.set('pass')
  await waitFor(() => spoolDepth(h) === 0, 10_000, 'the spool to drain')
  t.same(await allFiles(h), ['/2.flv', '/1.flv'])
  t.match(await ready(h), { degraded: [], checks: { store: { ok: true, msg: null } }, spool: { depth: 0, oldest_age_ms: null } })
})

t.test('/readyz and /metrics show the spool\'s depth and the age of its oldest recording; GET recordings says how many wait', async (t) => {
  const { proxy, url } = await proxied(t)
  let clock = 1_800_000_000_000
  const h = await startApp(t, { DATABASE_URL: url, SPOOL_RETRY_MS: '600000' }, { now: () => clock })
  proxy.set('reset')
  await postHook(h.hookBase, 'on_dvr', dvr({ file: '/1.flv' }))
  clock += 2000
  await postHook(h.hookBase, 'on_dvr', dvr({ file: '/2.flv' }))
  clock += 5000
  t.match(await ready(h), { spool: { depth: 2, oldest_age_ms: 7000, max: 1_000_000 } })
  const metrics = await (await fetch(`${h.url}/metrics`)).text()
  t.match(metrics, /\nsrs_hooks_recordings_spool_depth 2\n/)
  t.match(metrics, /\nsrs_hooks_recordings_spool_oldest_age_seconds 7\n/)
  t.match(metrics, /\nsrs_hooks_recordings_spool_max 1000000\n/)
  t.match(metrics, /\nsrs_hooks_recordings_indexed_total\{result="spooled"\} 2\n/)
  t.match(metrics, /\nsrs_hooks_recordings_spool_drain_failures_total [1-9]/)
  t.match(metrics, /\nsrs_hooks_recordings nan\n/i, 'the index\'s size is not made up while it does not answer')
  proxy.set('pass')
  // PostgreSQL answers again, the drain waits for its retry: what GET recordings shows meanwhile.
  t.match(await list(h), { status: 200, body: { code: 0, items: [], spooled: 2 } })
  t.match(await (await fetch(`${h.url}/metrics`)).text(), /\nsrs_hooks_recordings 0\n/)
})

t.test('what examining a file finds while its recording waits in the spool goes into PostgreSQL with it, even mid-drain', async (t) => {
  const url = await cluster.database()
  const log = pino({ level: 'silent' })
  const real = new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 5000, writeTimeoutMs: 1000, poolMax: 2, log })
  let gate: (() => void) | undefined
  let entered: (() => void) | undefined
  const inDrain = new Promise<void>((resolve) => { entered = resolve })
  const pgStore = Object.assign(Object.create(real) as PgRecordingStore, {
    migrate: async () => await real.migrate(),
    add: async () => { throw new Error('connection refused') },
    insertMany: async (rows: Parameters<PgRecordingStore['insertMany']>[0]) => {
      entered!()
      await new Promise<void>((resolve) => { gate = resolve })
      return await real.insertMany(rows)
    },
    setFileInfo: async (...a: Parameters<PgRecordingStore['setFileInfo']>) => { await real.setFileInfo(...a) },
    close: async () => { await real.close() }
  })
  Object.defineProperty(pgStore, 'migrated', { get: () => real.migrated })
  const spool = await Spool.open({ dir: t.testdir(), max: 10 })
  const store = new SpooledStore(pgStore, spool, { writeTimeoutMs: 1000, retryMs: 50, log })
  t.teardown(() => store.close())
  await store.start(5000)
  const r: NewRecording = { vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: '/f', path: '/f', startedAt: null, receivedAt: 1, fileError: null }
  t.match(await store.add(r), { id: null, created: true, spooled: true })
  t.match(await store.add(r), { created: false, spooled: true }, 'spooled twice is one row')
  await inDrain
  // The batch left the spool's table for PostgreSQL; the stat() result arrives now.
  await store.setFileInfo({ serverId: '', clientId: 'c', fileKey: '/f' }, { size: 42, mtime: 7 }, 5)
  gate!()
  await waitFor(() => store.spool().depth === 0, 5000, 'the drain')
  await store.drained()
  t.match((await real.list({ limit: 5 })).items, [{ file: '/f', size: 42, mtime: 7, checkedAt: 5 }])
  await store.setFileInfo({ serverId: '', clientId: 'c', fileKey: '/f' }, { error: 'cannot stat: ENOENT' }, 4)
  t.match((await real.list({ limit: 5 })).items, [{ size: 42, checkedAt: 5 }], 'an older examination never overwrites a newer one')
})

t.test('a recording PostgreSQL refuses for what it holds is not spooled when it answers, and set aside (not lost, not blocking) when spooled', async (t) => {
  const { proxy, url } = await proxied(t)
  const errors: Array<Record<string, unknown>> = []
  const log = { ...pino({ level: 'silent' }), error: (o: Record<string, unknown>) => { errors.push(o) } } as any
  const pgStore = new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 2000, writeTimeoutMs: 1000, poolMax: 2, log })
  const dir = t.testdir()
  const spool = await Spool.open({ dir, max: 10 })
  const store = new SpooledStore(pgStore, spool, { writeTimeoutMs: 1000, retryMs: 20, log, batch: 10 })
  t.teardown(() => store.close())
  await store.start(5000)
  const rec = (file: string): NewRecording => ({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file, path: file, startedAt: null, receivedAt: 1, fileError: null })
  // Past the service's checks (a NUL never reaches a store through on_dvr), as a row PostgreSQL refuses.
  await t.rejects(store.add(rec('/direct\u0000.flv')), { code: '22021' }, 'refused at once: not spooled, not acknowledged')
  t.equal(store.spool().depth, 0)
  proxy.set('reset')
  for (const f of ['/1.flv', '/poison\u0000.flv', '/2.flv']) t.match(await store.add(rec(f)), { spooled: true })
  proxy.set('pass')
  await waitFor(() => store.spool().depth === 0, 10_000, 'the drain')
  await store.drained()
  t.same((await pgStore.list({ limit: 10 })).items.map((r) => r.file), ['/2.flv', '/1.flv'])
  t.equal(store.counters.rejected, 1)
  t.match(errors, [{ code: '22021', file: '/poison\u0000.flv' }])
  const Database = (await import('better-sqlite3')).default
  const db = new Database(join(dir, 'spool.db'), { readonly: true })
  t.match(db.prepare('SELECT recording, reason FROM rejected').all(), [{ recording: /poison/, reason: /^22021: invalid byte sequence/ }], 'kept, with why')
  db.close()
})

t.test('PostgreSQL out of reach and the spool unwritable: not ready, saying both; a spool from a newer srs-hooks is refused at start', async (t) => {
  const { proxy, url } = await proxied(t)
  const log = pino({ level: 'silent' })
  const dir = t.testdir()
  const spool = await Spool.open({ dir, max: 10 })
  const store = new SpooledStore(new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 1000, writeTimeoutMs: 500, poolMax: 1, log }), spool, { writeTimeoutMs: 500, retryMs: 60_000, log })
  await store.start(2000)
  proxy.set('reset')
  t.match(await store.readiness(1), { ok: true, msg: /recordings go to the spool \(0 waiting\)/ })
  await spool.close()
  t.match(await store.readiness(2), { ok: false, msg: /does not take a write.*; the spool .*spool\.db is not writable either: the SQLite database is closed/ })
  await store.close()
  const Database = (await import('better-sqlite3')).default
  const db = new Database(join(dir, 'spool.db'))
  db.pragma('user_version = 7')
  db.close()
  await t.rejects(Spool.open({ dir, max: 10 }), /spool\.db has schema version 7, newer than this srs-hooks knows \(1\)/)
})

t.test('PostgreSQL failing for good in the middle of setting a refused row aside: the drain stops there and tries again later', async (t) => {
  const url = await cluster.database()
  const log = pino({ level: 'silent' })
  const real = new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 2000, writeTimeoutMs: 1000, poolMax: 2, log })
  let calls = 0
  const pgStore = Object.assign(Object.create(real) as PgRecordingStore, {
    migrate: async () => await real.migrate(),
    add: async () => { throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' }) },
    insertMany: async (rows: Parameters<PgRecordingStore['insertMany']>[0]) => {
      calls++
      // The batch: a data error; the first row alone: PostgreSQL gone; then all is well.
      if (calls === 1) throw Object.assign(new Error('value too long'), { code: '22001' })
      if (calls === 2) throw Object.assign(new Error('terminating connection'), { code: '57P01' })
      return await real.insertMany(rows)
    },
    close: async () => { await real.close() }
  })
  Object.defineProperty(pgStore, 'migrated', { get: () => real.migrated })
  const spool = await Spool.open({ dir: t.testdir(), max: 10 })
  const store = new SpooledStore(pgStore, spool, { writeTimeoutMs: 1000, retryMs: 20, log })
  t.teardown(() => store.close())
  await store.start(5000)
  const r = (file: string): NewRecording => ({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file, path: file, startedAt: null, receivedAt: 1, fileError: null })
  await store.add(r('/1.flv'))
  await store.add(r('/2.flv'))
  await waitFor(() => store.spool().depth === 0, 5000, 'the drain')
  await store.drained()
  t.same((await real.list({ limit: 5 })).items.map((x) => x.file).sort(), ['/1.flv', '/2.flv'], 'nothing set aside: the refusal was not the rows\' own')
  t.equal(store.counters.rejected, 0)
  t.equal(store.counters.drainFailures, 1)
})

t.test('a store closed while its migration waits (another replica holds the migration lock) cuts that session: nothing is left holding the process', async (t) => {
  const url = await cluster.database()
  const locker = new pg.Client({ connectionString: url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('SELECT pg_advisory_lock(hashtext($1))', ['srs-hooks migrations srs_hooks'])
  const store = new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 2000, writeTimeoutMs: 1000, poolMax: 1, log: pino({ level: 'silent' }) })
  let settled: unknown
  store.migrate().then(() => { settled = 'migrated' }, (err: Error) => { settled = err })
  await waitFor(async () => (await locker.query('SELECT count(*)::int AS n FROM pg_locks WHERE locktype = \'advisory\' AND NOT granted')).rows[0].n === 1, 5000, 'the migration to wait for the lock')
  await store.close()
  await waitFor(() => settled !== undefined, 5000, 'the migration to end')
  t.match(settled, Error, 'failed, not migrated')
  t.notOk(store.migrated)
  // PostgreSQL notices the client is gone once the lock it waits for is granted, and ends the session.
  await locker.query('SELECT pg_advisory_unlock(hashtext($1))', ['srs-hooks migrations srs_hooks'])
  await waitFor(async () => (await locker.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = \'srs-hooks\' AND datname = current_database()')).rows[0].n === 0, 10_000, 'its session to end in PostgreSQL')
})

t.test('the spool file, directly: keyed rows in order, file information, removal of what another process drained, rows set aside', async (t) => {
  const file = new SpoolFile({ dir: t.testdir() })
  t.teardown(() => file.close())
  const r = (f: string): NewRecording => ({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: f, path: f, startedAt: null, receivedAt: 5, fileError: null })
  t.match(file.add(r('/1'), 10), { created: true, depth: 1, oldestAt: 5 })
  t.match(file.add(r('/1'), 10), { created: false, depth: 1 })
  t.match(file.add(r('/2'), 10), { created: true, depth: 2 })
  t.equal(file.setFileInfo({ serverId: '', clientId: 'c', fileKey: '/2' }, { size: 9, mtime: 8 }, 7), 1)
  t.equal(file.setFileInfo({ serverId: '', clientId: 'c', fileKey: '/nope' }, { size: 9, mtime: 8 }, 7), 0)
  const [a, b] = file.peek(10)
  t.match([a, b], [{ recording: { file: '/1' }, size: null }, { recording: { file: '/2' }, size: 9, mtime: 8, checkedAt: 7 }])
  t.match(file.remove([a!.seq, 999]), { removed: [{ seq: a!.seq }], depth: 1 }, 'a row already gone is skipped')
  t.match(file.reject([{ seq: b!.seq, reason: '22021: bad' }], 11), { depth: 0, oldestAt: null })
  t.same(file.db.prepare('SELECT reason, rejected_at FROM rejected').all(), [{ reason: '22021: bad', rejected_at: 11 }])
  t.same(file.peek(10), [])
})

t.test('DATABASE_URL\'s password never reaches the log, whatever fails', async (t) => {
  const { proxy, url } = await proxied(t)
  const secret = 'pw-7f3c9d2e1b'
  const withPassword = new URL(url)
  withPassword.password = secret
  proxy.set('reset')
  const h = await startApp(t, { DATABASE_URL: withPassword.toString(), SPOOL_RETRY_MS: '20', DATABASE_QUERY_TIMEOUT_MS: '300' })
  await postHook(h.hookBase, 'on_dvr', dvr())
  await ready(h)
  await list(h)
  await waitFor(() => (h.app.recordings.store as SpooledStore).counters.drainFailures >= 3, 5000, 'drain retries')
  proxy.set('pass')
  await waitFor(() => spoolDepth(h) === 0, 10_000, 'the spool to drain')
  const text = h.logs.lines.map((l) => JSON.stringify(l)).join('\n')
  t.ok(h.logs.lines.length > 5)
  t.match(text, /postgres:\/\/postgres:\*\*\*@127\.0\.0\.1/, 'the URL is logged masked')
  t.notOk(text.includes(secret), 'never in clear')
  const lines: string[] = []
  const logger = createLogger('info', { write: (l: string) => { lines.push(l) } })
  logger.info({ DATABASE_URL: withPassword.toString(), config: { DATABASE_URL: withPassword.toString() }, connectionString: withPassword.toString() }, 'a careless line')
  logger.flush()
  t.notOk(lines.join('').includes(secret), 'the logger masks it under its names')
})
