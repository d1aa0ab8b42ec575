import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { postHook, startApp } from './fixtures/app.js'
import { startPostgres } from './fixtures/postgres.js'
import { dvr, recordingsSuite } from './fixtures/recordings-suite.js'
import { bounded, checkDatabaseUrl, isPermanent, redactUrl } from '../src/recordings/database.js'
import { PG_SCHEMA_VERSION, PgRecordingStore } from '../src/recordings/postgres.js'

/**
 * The recordings index in PostgreSQL: the shared suite, migrations (once, across replicas), two
 * replicas on one database, and what refuses to start. A real server: one throwaway cluster for
 * this file, a fresh database per test.
 */

const cluster = await startPostgres(t)

t.test('the recordings suite on PostgreSQL', async (t) => {
  recordingsSuite(t, { name: 'postgres', env: async () => ({ DATABASE_URL: await cluster.database() }) })
})

const storeOn = (url: string, over: Partial<ConstructorParameters<typeof PgRecordingStore>[0]> = {}) =>
  new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 5000, writeTimeoutMs: 2000, poolMax: 2, log: pino({ level: 'silent' }), ...over })

t.test('replicas starting at once migrate once: one applies each version, the others wait and find it done', async (t) => {
  const url = await cluster.database()
  const stores = Array.from({ length: 4 }, () => storeOn(url))
  t.teardown(async () => { await Promise.all(stores.map(async (s) => await s.close())) })
  const applied = await Promise.all(stores.map(async (s) => await s.migrate()))
  t.same(applied.flat(), [1], 'version 1 applied by exactly one replica')
  t.ok(stores.every((s) => s.migrated))
  t.match(await cluster.query('SELECT version, name FROM srs_hooks.schema_migrations', [], url), [{ version: 1, name: 'recordings index' }])
  t.equal(await stores[0]!.schemaVersion(), PG_SCHEMA_VERSION)
  t.same(await stores[1]!.migrate(), [], 'a later start applies nothing')
})

t.test('two apps started at once on one database: both serve, the schema is created once', async (t) => {
  const url = await cluster.database()
  const [a, b] = await Promise.all([
    startApp(t, { DATABASE_URL: url, DATA_DIR: join(t.testdir(), 'a') }),
    startApp(t, { DATABASE_URL: url, DATA_DIR: join(t.testdir(), 'b') })
  ])
  const migrated = [...a.logs.lines, ...b.logs.lines].filter((l) => l.msg === 'PostgreSQL schema migrated')
  t.equal(migrated.length, 1, 'one migration line across both')
  t.equal((await cluster.query('SELECT count(*)::int AS n FROM srs_hooks.schema_migrations', [], url))[0].n, 1)
})

t.test('two replicas writing to one database see each other\'s recordings; the same on_dvr to both is one', async (t) => {
  const url = await cluster.database()
  const a = await startApp(t, { DATABASE_URL: url, DATA_DIR: join(t.testdir(), 'a') })
  const b = await startApp(t, { DATABASE_URL: url, DATA_DIR: join(t.testdir(), 'b') })
  t.same((await postHook(a.hookBase, 'on_dvr', dvr({ file: '/srv/a.flv' }))).reply, { code: 0, msg: null })
  t.same((await postHook(b.hookBase, 'on_dvr', dvr({ file: '/srv/b.flv' }))).reply, { code: 0, msg: null })
  t.same((await postHook(a.hookBase, 'on_dvr', dvr({ file: '/srv/both.flv' }))).reply, { code: 0, msg: null })
  t.same((await postHook(b.hookBase, 'on_dvr', dvr({ file: '/srv/both.flv' }))).reply, { code: 0, msg: null })
  for (const replica of [a, b]) {
    const body = await (await fetch(`${replica.url}/admin-api/video/camera/recordings`)).json() as any
    t.same(body.items.map((i: any) => i.file), ['/srv/both.flv', '/srv/b.flv', '/srv/a.flv'])
  }
  t.equal(a.app.recordings.counters.stored + b.app.recordings.counters.stored, 3)
  t.equal(b.app.recordings.counters.duplicates, 1)
})

t.test('a database migrated by a newer srs-hooks is refused at start, and so is one that does not exist', async (t) => {
  const url = await cluster.database()
  const s = storeOn(url)
  await s.migrate()
  await s.close()
  await cluster.query('INSERT INTO srs_hooks.schema_migrations (version, name) VALUES (99, \'from the future\')', [], url)
  await t.rejects(startApp(t, { DATABASE_URL: url }), /PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/t\d+_\d+ refused: PostgreSQL schema srs_hooks has schema version 99, newer than this srs-hooks knows \(1\)/)
  const missing = cluster.url('no_such_db', 'pw-never-shown')
  const err = await startApp(t, { DATABASE_URL: missing }).then(() => null, (e: Error) => e)
  t.match(err?.message, /refused: database "no_such_db" does not exist/)
  t.match(err?.message, /postgres:\/\/postgres:\*\*\*@127\.0\.0\.1/)
  t.notMatch(err?.message, /pw-never-shown/)
})

t.test('a migration that fails leaves nothing half-applied and is tried again at the next start', async (t) => {
  const url = await cluster.database()
  await cluster.query('CREATE SCHEMA srs_hooks; CREATE TABLE srs_hooks.meta (x int)', [], url)
  const s = storeOn(url)
  t.equal(s.spool(), null)
  await t.rejects(s.migrate(), { code: '42P07', message: /relation "meta" already exists/ })
  t.notOk(s.migrated)
  t.same(await cluster.query('SELECT version FROM srs_hooks.schema_migrations', [], url), [], 'version 1 not recorded')
  t.same(await cluster.query('SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = \'srs_hooks\' AND tablename = \'recordings\'', [], url), [{ n: 0 }], 'its tables rolled back')
  await cluster.query('DROP TABLE srs_hooks.meta', [], url)
  t.same(await s.migrate(), [1])
  await s.close()
})

t.test('with DATABASE_URL an unusable DATA_DIR (where the spool lives) stops the start with a message naming it', async (t) => {
  const dir = t.testdir({ 'a-file': 'x' })
  await t.rejects(startApp(t, { DATABASE_URL: await cluster.database(), DATA_DIR: join(dir, 'a-file', 'data') }), /cannot open the recordings spool in DATA_DIR=.*a-file/)
})

t.test('DATABASE_SCHEMA: another schema, created if missing, beside the default one', async (t) => {
  const url = await cluster.database()
  const { hookBase, app } = await startApp(t, { DATABASE_URL: url, DATABASE_SCHEMA: 'video_index' })
  await postHook(hookBase, 'on_dvr', dvr())
  t.equal(await app.recordings.count(), 1)
  t.match(await cluster.query('SELECT count(*)::int AS n FROM video_index.recordings', [], url), [{ n: 1 }])
  t.match(await cluster.query('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = \'srs_hooks\'', [], url), [{ n: 0 }])
})

t.test('DATABASE_URL: checked at start, its password masked in every message', async (t) => {
  t.equal(redactUrl('postgres://u:secret@h:5432/d?sslmode=require&password=x'), 'postgres://u:***@h:5432/d?sslmode=require&password=***')
  t.equal(redactUrl('postgresql://h/d'), 'postgresql://h/d')
  t.equal(redactUrl('not a url'), '(not a URL)')
  t.equal(checkDatabaseUrl('postgresql://u@h/d'), 'postgresql://u@h/d')
  for (const bad of ['mysql://u:secret@h/d', 'postgres://', 'secret']) {
    t.throws(() => checkDatabaseUrl(bad), { name: 'ConfigError', message: /^DATABASE_URL=.*expected postgres:\/\/user:password@host:5432\/database$/ })
    t.notMatch((() => { try { checkDatabaseUrl(bad) } catch (e) { return (e as Error).message } })(), /secret/)
  }
  await t.rejects(startApp(t, { DATABASE_URL: 'mysql://u:secret@h/d' }), /DATABASE_URL="mysql:\/\/u:\*\*\*@h\/d"/)
  t.ok(isPermanent({ code: '28P01' }) && isPermanent({ code: '3D000' }) && isPermanent({ code: '42501' }) && isPermanent({ code: 'SCHEMA_TOO_NEW' }))
  t.notOk(isPermanent({ code: 'ECONNREFUSED' }) || isPermanent({ code: '57P01' }) || isPermanent({ code: '25006' }) || isPermanent(new Error('x')))
  await t.rejects(bounded(new Promise(() => {}), 10, 'waiting'), { code: 'DATABASE_TIMEOUT', message: 'waiting: PostgreSQL did not answer within 10 ms' })
  t.equal(await bounded(Promise.resolve(7), 1000, 'x'), 7)
})
