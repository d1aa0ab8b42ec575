import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { postHook, startApp, waitFor } from './fixtures/app.js'
import { SrsSimulator } from './fixtures/srs-sim.js'
import { RecordingService, type StatFn } from '../src/recordings/service.js'
import { SqliteRecordingStore } from '../src/recordings/sqlite.js'
import { decodeCursor, encodeCursor, resolveRecordingPath, timestampOf, type RecordingStore } from '../src/recordings/store.js'

const dvr = (over: Record<string, unknown> = {}) => ({
  server_id: 'vid-1n7caq1', service_id: 'x6n92s02', action: 'on_dvr', client_id: 'og7nez71', ip: '127.0.0.1',
  vhost: '__defaultVhost__', app: 'live', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '?key=k1',
  cwd: '/srv/srs', file: '/srv/srs/dvr/live/cam1.1795315760536.flv', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9',
  ...over
})

async function world (t: Test, env: Record<string, string> = {}, deps: Parameters<typeof startApp>[2] = {}) {
  const dir = t.testdir()
  const h = await startApp(t, { DATA_DIR: join(dir, 'data'), SRS_API_URL: 'http://127.0.0.1:9', ...env }, deps)
  const list = async (query = '') => {
    const res = await fetch(`${h.url}/admin-api/video/camera/recordings${query}`)
    return { status: res.status, body: await res.json() as any }
  }
  return { ...h, dir, list }
}

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

t.test('an on_dvr is acknowledged, stored and listed with the file name SRS reported, its size and its span', async (t) => {
  const { dir, hookBase, list, logs } = await world(t)
  const file = join(dir, 'live', 'cam1.1700000000000.flv')
  mkdirSync(join(dir, 'live'))
  writeFileSync(file, Buffer.alloc(20_000))
  const r = await postHook(hookBase, 'on_dvr', dvr({ cwd: dir, file }))
  t.same(r.reply, { code: 0, msg: null })
  const item = await waitFor(async () => {
    const { body } = await list()
    return body.items[0]?.checked_at !== null && body.items[0]
  }, 5000, 'the file to be examined')
  t.match(item, {
    vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', file, path: file, cwd: dir,
    size: 20_000, tiny: false, started_at: 1700000000000, client_id: 'og7nez71', server_id: 'vid-1n7caq1', stream_id: 'vid-m9z53n9', file_error: null
  })
  t.equal(item.ended_at, item.mtime)
  t.equal(item.duration_ms, item.mtime - 1700000000000)
  t.notOk(JSON.stringify(item).includes('k1'), 'the hook\'s param (with its key) is not stored')
  const line = await logs.wait((l) => l.action === 'on_dvr')
  t.match(line, { outcome: 'stored', code: 0, file, stream: '/live/cam1' })
})

t.test('the same on_dvr twice stores one recording; another session writing the same file is another', async (t) => {
  const { hookBase, list, logs } = await world(t)
  t.same((await postHook(hookBase, 'on_dvr', dvr())).reply, { code: 0, msg: null })
  t.same((await postHook(hookBase, 'on_dvr', dvr())).reply, { code: 0, msg: null })
  t.same((await postHook(`${hookBase.replace('/admin-api', '')}`, 'on_dvr', dvr())).reply, { code: 0, msg: null }, 'through the gateway too')
  t.equal((await list()).body.items.length, 1)
  await logs.wait((l) => l.action === 'on_dvr' && l.outcome === 'duplicate')
  await postHook(hookBase, 'on_dvr', dvr({ client_id: 'newsess1' }))
  t.equal((await list()).body.items.length, 2)
})

t.test('relative and absolute paths: resolved against cwd, kept as reported, examined only when absolute', async (t) => {
  const { dir, hookBase, list, app } = await world(t)
  mkdirSync(join(dir, 'objs', 'live'), { recursive: true })
  writeFileSync(join(dir, 'objs', 'live', 'rel.flv'), Buffer.alloc(100))
  await postHook(hookBase, 'on_dvr', dvr({ cwd: dir, file: './objs/live/rel.flv', stream: 'rel', stream_url: '/live/rel' }))
  await postHook(hookBase, 'on_dvr', dvr({ cwd: undefined, server_id: undefined, file: './objs/live/nocwd.flv', stream: 'nocwd', stream_url: '/live/nocwd' }))
  await app.recordings.idle()
  const items = (await list()).body.items
  t.match(items.find((i: any) => i.stream === 'rel'), { file: './objs/live/rel.flv', path: join(dir, 'objs/live/rel.flv'), size: 100, tiny: true, started_at: null, duration_ms: null })
  t.match(items.find((i: any) => i.stream === 'nocwd'), { file: './objs/live/nocwd.flv', path: null, cwd: null, server_id: null, size: null, tiny: null, file_error: /relative path without an absolute cwd/ })
})

t.test('a file this server cannot read (missing, or not a regular file) is still indexed, with why', async (t) => {
  const { dir, hookBase, list, app } = await world(t)
  await postHook(hookBase, 'on_dvr', dvr({ file: '/nonexistent/srs/live/cam1.1700000000000.flv' }))
  await postHook(hookBase, 'on_dvr', dvr({ file: dir, stream: 'dir', stream_url: '/live/dir' }))
  await app.recordings.idle()
  const items = (await list()).body.items
  t.match(items.find((i: any) => i.stream === 'cam1'), { size: null, started_at: 1700000000000, file_error: 'cannot stat: ENOENT' })
  t.match(items.find((i: any) => i.stream === 'dir'), { size: null, file_error: 'not a regular file' })
  t.type(items[0].checked_at, 'number')
})

t.test('a stat() that hangs (a dead mount) never delays the reply; the index says so and takes the late answer', async (t) => {
  let answer: ((v: Awaited<ReturnType<StatFn>>) => void) | undefined
  const stat: StatFn = async () => await new Promise((resolve) => { answer = resolve })
  const { hookBase, list, app } = await world(t, { DVR_STAT_TIMEOUT_MS: '50' }, { stat })
  const r = await postHook(hookBase, 'on_dvr', dvr({ file: '/mnt/dead/live/cam1.1700000000000.flv' }))
  t.same(r.reply, { code: 0, msg: null })
  t.ok(r.ms < 1000, `answered in ${Math.round(r.ms)} ms while stat() hangs`)
  t.ok(answer !== undefined, 'stat() was called')
  const timedOut = await waitFor(async () => (await list()).body.items[0]?.file_error?.includes('did not answer within 50 ms') === true, 5000, 'the timeout to be recorded')
  t.ok(timedOut)
  answer!({ size: 12_345, mtimeMs: 1700000005000.4, isFile: () => true })
  await app.recordings.idle()
  t.match((await list()).body.items[0], { size: 12_345, mtime: 1700000005000, file_error: null, duration_ms: 5000 })
})

t.test('a store that cannot write refuses the on_dvr with 503 and code 1101, so SRS logs it', async (t) => {
  const dir = t.testdir()
  const real = new SqliteRecordingStore(dir)
  const broken: RecordingStore = {
    add: () => { throw new Error('SQLITE_FULL: database or disk is full') },
    setFileInfo: (...a) => real.setFileInfo(...a),
    list: (q) => real.list(q),
    count: () => real.count(),
    checkWritable: (n) => real.checkWritable(n),
    close: () => real.close()
  }
  const { hookBase, logs, app } = await world(t, {}, { recordings: broken })
  const r = await postHook(hookBase, 'on_dvr', dvr())
  t.equal(r.status, 503)
  t.equal(r.reply.code, 1101)
  t.match(r.reply.msg, /not stored: SQLITE_FULL/)
  t.equal(app.recordings.counters.failed, 1)
  await logs.wait((l) => l.action === 'on_dvr' && l.status === 503)
})

t.test('paging: newest first, an opaque cursor, and filters by app, stream and time', async (t) => {
  let clock = 1_700_000_000_000
  const { hookBase, list } = await world(t, {}, { now: () => clock })
  for (let i = 0; i < 7; i++) {
    clock += 1000
    await postHook(hookBase, 'on_dvr', dvr({ app: i % 2 === 0 ? 'live' : 'vod', stream: `s${i % 3}`, file: `/nowhere/f${i}.flv`, stream_url: undefined }))
  }
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const { status, body }: { status: number, body: any } = await list(`?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`)
    t.equal(status, 200)
    seen.push(...body.items.map((i: any) => i.file))
    cursor = body.next_cursor
    pages++
  } while (cursor !== null)
  t.same(seen, [6, 5, 4, 3, 2, 1, 0].map((i) => `/nowhere/f${i}.flv`), 'every recording once, newest first')
  t.equal(pages, 3)
  t.same((await list('?app=vod')).body.items.map((i: any) => i.file), ['/nowhere/f5.flv', '/nowhere/f3.flv', '/nowhere/f1.flv'])
  t.same((await list('?app=live&stream=s0')).body.items.map((i: any) => i.file), ['/nowhere/f6.flv', '/nowhere/f0.flv'])
  t.same((await list('?vhost=other')).body.items, [])
  const t2 = 1_700_000_000_000 + 2000
  const t4 = 1_700_000_000_000 + 4000
  t.same((await list(`?from=${t2}&to=${t4}`)).body.items.map((i: any) => i.file), ['/nowhere/f3.flv', '/nowhere/f2.flv', '/nowhere/f1.flv'])
  t.same((await list(`?from=${new Date(t4).toISOString()}`)).body.items.length, 4, 'an ISO date works too')
  t.equal((await list('?limit=500')).body.items.length, 7)
})

t.test('bad query parameters get 400 with code 4100 and a message', async (t) => {
  const { list } = await world(t)
  for (const [q, why] of [
    ['?limit=0', /limit/], ['?limit=501', /limit/], ['?limit=ten', /limit/], ['?from=yesterday', /from must be epoch/],
    ['?to=2024-13-45T00:00:00Z', /to must be/], ['?from=2000&to=1000', /from is after to/], ['?cursor=garbage', /cursor/],
    ['?colour=red', /colour|additional/i], ['?app=', /app/]
  ] as const) {
    const r = await list(q)
    t.equal(r.status, 400, q)
    t.equal(r.body.code, 4100, q)
    t.match(r.body.msg, why, q)
  }
})

t.test('the simulator\'s on_dvr (SRS 6 and 4 bodies) is indexed', async (t) => {
  for (const version of ['6', '4'] as const) {
    const sim = await SrsSimulator.start({ version })
    t.teardown(() => sim.close())
    const { hookBase, list } = await world(t, { SRS_API_URL: sim.apiUrl })
    sim.setHookBase(hookBase)
    const a = await sim.publish({ app: 'live', stream: 'cam9' })
    const call = await sim.dvr(a.clientId)
    t.ok(call.accepted, `SRS ${version} accepted the reply`)
    t.match((await list('?stream=cam9')).body.items, [{ client_id: a.clientId, file: call.body.file, cwd: '/usr/local/srs', path: /^\/usr\/local\/srs\/objs\/nginx\/html\/live\/cam9\.\d{13}\.flv$/, started_at: Number }])
  }
})

t.test('the SQLite store keeps its rows across reopening and refuses a newer schema', async (t) => {
  const dir = t.testdir()
  const a = new SqliteRecordingStore(dir)
  const rec = { vhost: 'v', app: 'a', stream: 's', streamUrl: 'v/a/s', clientId: 'c', file: 'f', path: null, startedAt: null, receivedAt: 1, fileError: null }
  t.equal(a.add(rec).created, true)
  a.checkWritable(2)
  a.close()
  t.throws(() => a.checkWritable(3), /not open/, 'a closed store is not writable')
  const b = new SqliteRecordingStore(dir)
  t.equal(b.count(), 1)
  t.equal(b.add(rec).created, false)
  b.close()
  const Database = (await import('better-sqlite3')).default
  const db = new Database(join(dir, 'recordings.db'))
  db.pragma('user_version = 99')
  db.close()
  t.throws(() => new SqliteRecordingStore(dir), /schema version 99/)
})

t.test('an unusable DATA_DIR stops the app at start with a message naming it', async (t) => {
  const dir = t.testdir({ 'a-file': 'x' })
  await t.rejects(startApp(t, { DATA_DIR: join(dir, 'a-file', 'data') }), /cannot open the recordings index in DATA_DIR=.*a-file/)
})

t.test('examining files: bounded in flight and in waiting; late answers after close are dropped', async (t) => {
  const dir = t.testdir()
  const store = new SqliteRecordingStore(dir)
  const pending: Array<() => void> = []
  const stat: StatFn = async () => await new Promise((resolve) => pending.push(() => resolve({ size: 1, mtimeMs: 1, isFile: () => true })))
  const warnings: unknown[] = []
  const log = pino({ level: 'silent' })
  const service = new RecordingService({ store, now: () => 5, log: { ...log, warn: (o: unknown) => warnings.push(o) } as any, minBytes: 10, statTimeoutMs: 60_000, stat, maxStats: 1, maxQueued: 1 })
  const notice = (i: number) => ({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: `/f${i}` })
  service.index(notice(1))
  service.index(notice(2))
  const third = service.index(notice(3)).recording
  t.equal(pending.length, 1, 'one stat() at a time')
  t.match(store.list({ limit: 10 }).items.find((r) => r.id === third.id), { fileError: /too many files waiting/ })
  pending.shift()!()
  await waitFor(() => pending.length === 1, 2000, 'the queued stat to start')
  t.equal(service.tiny(store.list({ limit: 10 }).items.find((r) => r.file === '/f1')!), true)
  service.close()
  pending.shift()!()
  await service.idle()
  t.equal(store.list.length, 1)
  t.equal(warnings.length, 0, 'nothing written after close')
})

t.test('a failure to record what stat() found is logged, not thrown', async (t) => {
  const store = new SqliteRecordingStore(t.testdir())
  t.teardown(() => store.close())
  const broken: RecordingStore = { ...bind(store), setFileInfo: () => { throw new Error('SQLITE_BUSY') } }
  const warnings: Array<Record<string, unknown>> = []
  const service = new RecordingService({
    store: broken, now: () => 1, minBytes: 1, statTimeoutMs: 1000,
    stat: async (p) => { if (p === '/odd') throw new Error('odd failure'); return { size: 5, mtimeMs: 1, isFile: () => true } },
    log: { debug () {}, info () {}, error () {}, warn: (o: Record<string, unknown>) => warnings.push(o) } as any
  })
  service.index({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: '/f' })
  await service.idle()
  t.match(warnings, [{ err: 'SQLITE_BUSY', recording: 1 }])
  const real = new RecordingService({ store, now: () => 1, minBytes: 1, statTimeoutMs: 1000, stat: async () => { throw new Error('odd failure') }, log: pino({ level: 'silent' }) })
  const odd = real.index({ vhost: 'v', app: 'a', stream: 's', streamUrl: '/a/s', clientId: 'c', file: '/odd' }).recording
  await real.idle()
  t.match(store.list({ limit: 5 }).items.find((r) => r.id === odd.id), { fileError: 'cannot stat: odd failure' }, 'an error without a code')
})

function bind (s: SqliteRecordingStore): RecordingStore {
  return {
    add: (r) => s.add(r),
    setFileInfo: (...a) => s.setFileInfo(...a),
    list: (q) => s.list(q),
    count: () => s.count(),
    checkWritable: (n) => s.checkWritable(n),
    close: () => s.close()
  }
}
