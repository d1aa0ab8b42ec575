import { spawn } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import t from 'tap'
import { pino } from 'pino'
import { postHook, startApp, waitFor } from './fixtures/app.js'
import { diskFullStore, dvr, recordingsSuite } from './fixtures/recordings-suite.js'
import { GroupCommit, SqliteDatabase, type Reply } from '../src/recordings/group-commit.js'
import { SpoolFile } from '../src/recordings/spool.js'
import { Retention } from '../src/recordings/retention.js'
import { RecordingService, type StatFn } from '../src/recordings/service.js'
import { SQLITE_SCHEMA_VERSION, SqliteIndex, SqliteRecordingStore } from '../src/recordings/sqlite.js'
import { decodeCursor, encodeCursor, resolveRecordingPath, timestampOf, type NewRecording, type RecordingStore } from '../src/recordings/store.js'

t.test('the recorded file name\'s [timestamp] gives the start; paths resolve against cwd only when absolute', async (t) => {
  t.equal(timestampOf('./objs/nginx/html/live/cam1.1700000000000.flv'), 1700000000000)
  t.equal(timestampOf('/d/2024/01/02/1700000000000/cam1.flv'), null, 'only the base name counts')
  t.equal(timestampOf('cam1.99999999999999.flv'), null, 'not 13 digits')
  t.equal(timestampOf('cam1.9999999999999.flv'), null, 'after 2100')
  t.equal(timestampOf('a.1700000000000.b.1700000000001.mp4'), 1700000000001, 'the last one')
  t.equal(resolveRecordingPath('./objs/a.flv', '/usr/local/srs'), '/usr/local/srs/objs/a.flv')
  t.equal(resolveRecordingPath('/data/../etc/a.flv', '/x'), '/etc/a.flv', 'normalized, still only data')
  t.equal(resolveRecordingPath('objs/a.flv', undefined), null)
  t.equal(resolveRecordingPath('objs/a.flv', 'relative/cwd'), null)
  const c = { receivedAt: 1700000000000, id: 42 }
  t.same(decodeCursor(encodeCursor(c)), c)
  for (const bad of ['', 'not-base64!', Buffer.from('[1]').toString('base64url'), Buffer.from('[1,-2]').toString('base64url'), Buffer.from('{"a":1}').toString('base64url')]) {
    t.equal(decodeCursor(bad), null, `rejects ${JSON.stringify(bad)}`)
  }
})

t.test('the recordings suite on SQLite', async (t) => {
  recordingsSuite(t, { name: 'sqlite', env: async () => ({}) })
})

const rec = (i: number, over: Partial<NewRecording> = {}): NewRecording => ({
  vhost: 'v', app: 'a', stream: 's', streamUrl: 'v/a/s', clientId: 'c', file: `/f${i}`, path: `/f${i}`, startedAt: null, receivedAt: i, fileError: null, ...over
})

t.test('a store that cannot write refuses the on_dvr with 503 and code 1101, so SRS logs it', async (t) => {
  const broken = await diskFullStore(t.testdir())
  const { hookBase, logs, app } = await startApp(t, { SRS_API_URL: 'http://127.0.0.1:9' }, { recordings: broken })
  const r = await postHook(hookBase, 'on_dvr', dvr())
  t.equal(r.status, 503)
  t.equal(r.reply.code, 1101)
  t.match(r.reply.msg, /not stored: SQLITE_FULL/)
  t.equal(app.recordings.counters.failed, 1)
  await logs.wait((l) => l.action === 'on_dvr' && l.status === 503)
})

t.test('GET recordings answers 503 with code 4112 when the index does not answer', async (t) => {
  const real = await SqliteRecordingStore.open({ dir: t.testdir() })
  t.teardown(() => real.close())
  const failing = Object.assign(Object.create(real) as RecordingStore, {
    list: async () => { throw new Error('connection terminated') },
    close: async () => {}
  })
  const { url } = await startApp(t, { SRS_API_URL: 'http://127.0.0.1:9' }, { recordings: failing })
  const res = await fetch(`${url}/admin-api/video/camera/recordings`)
  t.equal(res.status, 503)
  t.match(await res.json(), { code: 4112, msg: /did not answer: connection terminated$/ })
})

t.test('the SQLite store keeps its rows across reopening and refuses a newer schema', async (t) => {
  const dir = t.testdir()
  const a = await SqliteRecordingStore.open({ dir })
  t.equal(a.kind, 'sqlite')
  t.match(await a.add(rec(1)), { created: true, spooled: false, id: 1 })
  t.same(await a.readiness(2), { ok: true, msg: null })
  t.equal(a.spool(), null)
  await a.close()
  t.match(await a.readiness(3), { ok: false, msg: /recordings\.db is not writable: the SQLite database is closed/ }, 'a closed store is not writable')
  await t.rejects(a.count(), /closed/)
  await a.close()
  const b = await SqliteRecordingStore.open({ dir })
  t.equal(await b.count(), 1)
  t.match(await b.add(rec(1)), { created: false, id: 1 })
  await b.close()
  const db = new Database(join(dir, 'recordings.db'))
  db.pragma('user_version = 99')
  db.close()
  await t.rejects(SqliteRecordingStore.open({ dir }), /schema version 99, newer than this srs-hooks knows \(2\)/)
})

t.test('an index of the first version is migrated in place: rows kept, new indexes added', async (t) => {
  const dir = t.testdir()
  const db = new Database(join(dir, 'recordings.db'))
  db.exec(`CREATE TABLE recordings (id INTEGER PRIMARY KEY, server_id TEXT NOT NULL, client_id TEXT NOT NULL, file_key TEXT NOT NULL,
    vhost TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL, stream_url TEXT NOT NULL, stream_id TEXT, cwd TEXT, file TEXT NOT NULL,
    path TEXT, started_at INTEGER, received_at INTEGER NOT NULL, size INTEGER, mtime INTEGER, file_error TEXT, checked_at INTEGER,
    UNIQUE (server_id, client_id, file_key));
    CREATE INDEX recordings_newest ON recordings (received_at DESC, id DESC);
    CREATE INDEX recordings_stream ON recordings (app, stream, received_at DESC, id DESC);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO recordings (server_id, client_id, file_key, vhost, app, stream, stream_url, file, received_at) VALUES ('', 'c', '/old', 'v', 'a', 's', '/a/s', '/old', 7);
    PRAGMA user_version = 1;`)
  db.close()
  const index = new SqliteIndex({ dir })
  t.teardown(() => index.close())
  t.same(index.info().version, SQLITE_SCHEMA_VERSION)
  t.same(index.list({ limit: 5 }).items.map((r) => r.file), ['/old'])
  const indexes = index.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'recordings_%' ORDER BY name").pluck().all()
  t.same(indexes, ['recordings_app', 'recordings_newest', 'recordings_span', 'recordings_stream', 'recordings_stream_name',
    'recordings_vhost', 'recordings_vhost_app', 'recordings_vhost_app_stream', 'recordings_vhost_stream'])
})

t.test('an unusable DATA_DIR stops the app at start with a message naming it', async (t) => {
  const dir = t.testdir({ 'a-file': 'x' })
  await t.rejects(startApp(t, { DATA_DIR: join(dir, 'a-file', 'data') }), /cannot open the recordings index in DATA_DIR=.*a-file/)
})

t.test('an index SQLite cannot open (a newer schema) does not hold up the start: hooks are answered, then the log and /readyz say it, and an on_dvr is refused', async (t) => {
  const dir = t.testdir()
  const db = new Database(join(dir, 'recordings.db'))
  db.pragma('user_version = 99')
  db.close()
  const { hookBase, url, logs } = await startApp(t, { DATA_DIR: dir })
  const play = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'c1', vhost: '__defaultVhost__', app: 'live', stream: 's' })
  t.same(play.reply, { code: 0, msg: null })
  const line = await waitFor(() => logs.find((l) => l.msg === 'the recordings index cannot be opened'), 5000, 'the log line')
  t.match(line, { level: 50, reason: /recordings\.db is not writable: .*schema version 99, newer than this srs-hooks knows \(2\)/ })
  const ready = await fetch(`${url}/readyz`)
  t.equal(ready.status, 503)
  t.match(JSON.stringify(await ready.json()), /schema version 99/)
  const r = await postHook(hookBase, 'on_dvr', dvr())
  t.same([r.status, r.reply.code], [503, 1101], 'not acknowledged: nothing was stored')
  const after = new Database(join(dir, 'recordings.db'), { readonly: true })
  t.teardown(() => after.close())
  t.equal(after.pragma('user_version', { simple: true }), 99, 'the file is left as it was')
})

t.test('a burst of writes is committed in groups, each answered once its group is on disk', async (t) => {
  const store = await SqliteRecordingStore.open({ dir: t.testdir() })
  t.teardown(() => store.close())
  const added = await Promise.all(Array.from({ length: 200 }, async (_, i) => await store.add(rec(i))))
  t.equal(added.filter((a) => a.created).length, 200)
  t.equal(new Set(added.map((a) => a.id)).size, 200)
  const stats = await store.stats()
  t.equal(stats.calls, 201, `the 200 adds and this call: ${JSON.stringify(stats)}`)
  t.ok(stats.commits < 100, `200 writes took ${stats.commits} commits`)
  t.equal(await store.count(), 200)
})

t.test('in a group, a call that fails fails alone; a commit that fails fails every call of its group', async (t) => {
  const dir = t.testdir()
  const db = new Database(join(dir, 'g.db'))
  t.teardown(() => db.close())
  db.exec(`CREATE TABLE x (v INTEGER NOT NULL UNIQUE);
    CREATE TABLE y (v INTEGER REFERENCES x (v) DEFERRABLE INITIALLY DEFERRED)`)
  db.pragma('foreign_keys = ON')
  const insert = db.prepare('INSERT INTO x (v) VALUES (?)')
  const orphan = db.prepare('INSERT INTO y (v) VALUES (?)')
  let failCommit = false
  const replies: Reply[] = []
  const ops = {
    put: { write: true, run: (v: number) => insert.run(v).changes },
    get: { write: false, run: () => db.prepare('SELECT count(*) FROM x').pluck().get() },
    breakCommit: { write: true, run: () => { if (failCommit) db.exec('ROLLBACK') } },
    orphan: { write: true, run: (v: number) => orphan.run(v).changes }
  }
  const group = new GroupCommit(db, ops, (r) => replies.push(...r))
  group.push({ id: 1, op: 'put', args: [1] })
  group.push({ id: 2, op: 'put', args: [1] })
  group.push({ id: 3, op: 'put', args: [2] })
  group.push({ id: 4, op: 'nope', args: [] })
  group.flush()
  t.match(replies, [{ id: 1, value: 1 }, { id: 2, error: { message: /UNIQUE/, code: 'SQLITE_CONSTRAINT_UNIQUE' } }, { id: 3, value: 1 }, { id: 4, error: { message: 'no operation nope' } }])
  replies.length = 0
  group.push({ id: 5, op: 'get', args: [] })
  group.flush()
  t.same(replies, [{ id: 5, value: 2 }], 'reads alone need no transaction')
  t.same(group.stats, { groups: 2, commits: 1, calls: 5 })
  replies.length = 0
  failCommit = true
  group.push({ id: 6, op: 'put', args: [3] })
  group.push({ id: 7, op: 'breakCommit', args: [] })
  group.flush()
  t.match(replies, [{ id: 6, error: { message: /no transaction is active/ } }, { id: 7, error: {} }], 'nothing answered as stored')
  t.equal(db.prepare('SELECT count(*) FROM x').pluck().get(), 2, 'and nothing stored')
  replies.length = 0
  group.push({ id: 9, op: 'put', args: [5] })
  group.push({ id: 10, op: 'orphan', args: [99] })
  group.flush()
  t.match(replies, [{ id: 9, error: { code: 'SQLITE_CONSTRAINT_FOREIGNKEY' } }, { id: 10, error: { code: 'SQLITE_CONSTRAINT_FOREIGNKEY' } }], 'COMMIT refused (a deferred check): rolled back, nothing answered as stored')
  t.notOk(db.inTransaction)
  t.equal(db.prepare('SELECT count(*) FROM x').pluck().get(), 2)
  replies.length = 0
  const other = new Database(join(dir, 'g.db'))
  t.teardown(() => other.close())
  other.exec('BEGIN IMMEDIATE')
  db.pragma('busy_timeout = 0')
  group.push({ id: 8, op: 'put', args: [4] })
  group.flush()
  t.match(replies, [{ id: 8, error: { code: 'SQLITE_BUSY' } }], 'the write lock held elsewhere')
  other.exec('ROLLBACK')
  replies.length = 0
  const many = Array.from({ length: 1500 }, (_, i) => ({ id: 100 + i, op: 'put', args: [100 + i] }))
  for (const c of many) group.push(c)
  group.flushAll()
  t.equal(replies.length, 1500)
  t.equal(group.stats.groups, 7, 'at most 1000 calls per group: two groups')
})

t.test('a database the worker cannot open (DATA_DIR gone since start) fails its calls with why, and is opened at the next call once it can be', async (t) => {
  const dir = join(t.testdir(), 'data')
  const store = await SqliteRecordingStore.open({ dir })
  t.teardown(() => store.close())
  rmSync(dir, { recursive: true })
  writeFileSync(dir, 'not a directory')
  await t.rejects(store.add(rec(1)), { name: 'SqliteWorkerError', code: 'EEXIST', message: /data/ })
  rmSync(dir)
  t.match(await store.add(rec(1)), { created: true }, 'opened (and created) at this call')
})

t.test('a worker that dies fails the calls it held (never answered as stored); the next call opens the database in a new one', async (t) => {
  // End the worker the earlier tests used, cleanly (what ran in it is then recorded by coverage).
  await SqliteDatabase.retireWorker()
  const store = await SqliteRecordingStore.open({ dir: t.testdir() })
  t.teardown(() => store.close())
  t.match(await store.add(rec(1)), { created: true })
  const inFlight = store.add(rec(2))
  await SqliteDatabase.stopWorker()
  await t.rejects(inFlight, /the SQLite worker exited/)
  t.match(await store.add(rec(3)), { created: true })
  t.same((await store.list({ limit: 10 })).items.map((r) => r.file).filter((f) => f !== '/f2'), ['/f3', '/f1'], 'what was acknowledged is there')
  await SqliteDatabase.stopWorker()
  await store.close()
  t.match(await store.readiness(1), { ok: false, msg: /closed/ })
})

t.test('a process that ends with a database still open ends: an idle database holds nothing, and the worker closes it first', async (t) => {
  const dir = t.testdir()
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL('./fixtures/forgets-a-database.ts', import.meta.url)), dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  let code: number | null | undefined
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.on('exit', (c) => { code = c })
  await waitFor(() => code !== undefined, 30_000, 'the process to end on its own')
  t.equal(out, 'stored\n')
  t.equal(code, 0)
  const store = await SqliteRecordingStore.open({ dir })
  t.teardown(() => store.close())
  t.same((await store.list({ limit: 10 })).items.map((r) => r.file), ['/forgotten.flv'], 'what was acknowledged is there')
})

t.test('a retention sweep the store fails is logged and counted; the next one tries again', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  let fail = true
  const store = { prune: async () => { if (fail) throw new Error('database is locked'); return 0 } } as unknown as RecordingStore
  const retention = new Retention({ store, days: 1, everyMs: 60_000, now: () => 1e12, log: { ...pino({ level: 'silent' }), warn: (o: Record<string, unknown>) => warnings.push(o) } as any })
  t.equal(await retention.sweep(), 0)
  t.equal(retention.failures, 1)
  t.match(warnings, [{ err: 'database is locked', deleted: 0 }])
  fail = false
  t.equal(await retention.sweep(), 0)
  t.equal(retention.failures, 1)
})

t.test('examining files: bounded in flight and in waiting; late answers after close are dropped', async (t) => {
  const store = await SqliteRecordingStore.open({ dir: t.testdir() })
  const pending: Array<() => void> = []
  const stat: StatFn = async () => await new Promise((resolve) => pending.push(() => resolve({ size: 1, mtimeMs: 1, isFile: () => true })))
  const warnings: unknown[] = []
  const log = pino({ level: 'silent' })
  const service = new RecordingService({ roots: ['/'], store, now: () => 5, log: { ...log, warn: (o: unknown) => warnings.push(o) } as any, minBytes: 10, statTimeoutMs: 60_000, stat, maxStats: 1, maxQueued: 1 })
  const notice = (i: number) => ({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: `/f${i}` })
  await service.index(notice(1))
  await service.index(notice(2))
  const third = await service.index(notice(3))
  t.equal(pending.length, 1, 'one stat() at a time')
  await waitFor(async () => (await store.list({ limit: 10 })).items.find((r) => r.id === third.id)?.fileError?.includes('too many files waiting'), 2000, 'the refusal to be recorded')
  pending.shift()!()
  await waitFor(() => pending.length === 1, 2000, 'the queued stat to start')
  t.equal(service.tiny((await store.list({ limit: 10 })).items.find((r) => r.file === '/f1')!), true)
  await service.close()
  pending.shift()!()
  await service.idle()
  t.equal(warnings.length, 0, 'nothing written after close')
})

t.test('a failure to record what stat() found is logged, not thrown', async (t) => {
  const store = await SqliteRecordingStore.open({ dir: t.testdir() })
  t.teardown(() => store.close())
  const broken = Object.assign(Object.create(store) as RecordingStore, {
    add: async (r: NewRecording) => await store.add(r),
    setFileInfo: async () => { throw new Error('SQLITE_BUSY') }
  })
  const warnings: Array<Record<string, unknown>> = []
  const service = new RecordingService({
    roots: ['/'],
    store: broken,
    now: () => 1,
    minBytes: 1,
    statTimeoutMs: 1000,
    stat: async () => ({ size: 5, mtimeMs: 1, isFile: () => true }),
    log: { debug () {}, info () {}, error () {}, warn: (o: Record<string, unknown>) => warnings.push(o) } as any
  })
  await service.index({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: '/f' })
  await service.idle()
  t.match(warnings, [{ err: 'SQLITE_BUSY', file: '/f' }])
  const real = new RecordingService({ roots: ['/'], store, now: () => 1, minBytes: 1, statTimeoutMs: 1000, stat: async () => { throw new Error('odd failure') }, log: pino({ level: 'silent' }) })
  const odd = await real.index({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: '/odd' })
  await real.idle()
  t.match((await store.list({ limit: 5 })).items.find((r) => r.id === odd.id), { fileError: 'cannot stat: odd failure' }, 'an error without a code')
  t.equal(real.spool(), null)
  t.equal(real.spoolAgeMs(), null)
  // Past what any hook's schema lets through: a caller of the service itself.
  await t.rejects(real.index({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', serverId: 'é'.repeat(600), clientId: 'c', file: '/ids' }), /server_id and client_id take more than 1024 bytes together/)
})

t.test('the spool counts a recording only once its commit succeeded: a failed commit leaves its depth, and room, as they were', async (t) => {
  const file = new SpoolFile({ dir: t.testdir() })
  t.teardown(() => file.close())
  let failCommit = false
  const replies: Reply[] = []
  // A commit that fails as one does on a full disk or an I/O error: SQLite has rolled the group back.
  const ops = { ...file.ops, breakCommit: { write: true, run: () => { if (failCommit) file.db.exec('ROLLBACK') } } }
  const group = new GroupCommit(file.db, ops, (r) => replies.push(...r), (committed) => { file.settle(committed) })
  group.push({ id: 1, op: 'add', args: [rec(1), 2] })
  group.flush()
  t.match(replies, [{ id: 1, value: { created: true, depth: 1 } }])
  failCommit = true
  group.push({ id: 2, op: 'add', args: [rec(2), 2] })
  group.push({ id: 3, op: 'breakCommit', args: [] })
  group.flush()
  t.match(replies.slice(1), [{ id: 2, error: {} }, { id: 3, error: {} }], 'not answered as spooled')
  t.equal(file.db.prepare('SELECT count(*) FROM spool').pluck().get(), 1, 'nor stored')
  t.equal(file.state().depth, 1, 'nor counted')
  failCommit = false
  group.push({ id: 4, op: 'add', args: [rec(3), 2] })
  group.flush()
  t.match(replies.slice(3), [{ id: 4, value: { created: true, depth: 2 } }], 'the room it did not take is still there (SPOOL_MAX_ROWS=2)')
  group.push({ id: 5, op: 'add', args: [rec(4), 2] })
  group.flush()
  t.match(replies.slice(4), [{ id: 5, error: { code: 'SPOOL_FULL' } }])
  group.push({ id: 6, op: 'remove', args: [[1, 2, 3]] })
  group.push({ id: 7, op: 'breakCommit', args: [] })
  failCommit = true
  group.flush()
  t.equal(file.state().depth, 2, 'a removal rolled back leaves the rows counted')
})
