import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { SqliteRecordingStore } from '../src/recordings/sqlite.js'
import type { RecordingStore } from '../src/recordings/store.js'
import { postHook, startApp, startWorld } from './fixtures/app.js'
import { dvr } from './fixtures/recordings-suite.js'

/**
 * What an operator needs to find in the log and the metrics: a hook URL with a typo, a failed
 * operator login, who was refused, and an expected failure said in one line.
 */

const ADMIN = '/admin-api/video/camera'
const TOKEN = 'a-long-random-operator-token-0123456789'

const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const m = new RegExp(`^srs_hooks_${name} (\\d+)$`, 'm').exec(text)
  return m === null ? NaN : Number(m[1])
}

t.test('a hook URL with a typo (on_pubish) is logged with its path and counted', async (t) => {
  const { url, hookBase, logs } = await startApp(t, {})
  t.equal(await metric(url, 'unknown_callbacks_total'), 0)
  const res = await fetch(`${hookBase}/on_pubish?token=secret-in-url`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"action":"on_publish"}' })
  t.equal(res.status, 404)
  t.match(await res.json(), { code: 4004, msg: /no route POST \/admin-api\/video\/camera\/callback\/on_pubish$/ })
  const line = await logs.wait((l) => l.msg === 'request to an unknown callback path; check the hook URLs in srs.conf')
  t.match(line, { level: 40, method: 'POST', path: '/admin-api/video/camera/callback/on_pubish', caller: '127.0.0.1' })
  t.notMatch(JSON.stringify(line), /secret-in-url/, 'the query (which may hold HOOK_TOKEN) is not logged')
  // Behind a gateway that strips /admin-api, and a path with characters a log must escape.
  const odd = await fetch(`${url}/video/camera/callback/on_%0Apublish%22%7D`, { method: 'POST' })
  t.equal(odd.status, 404)
  const second = await logs.wait((l) => l.path?.startsWith('/video/camera/callback/') === true)
  t.equal(second.path, '/video/camera/callback/on_%0Apublish%22%7D')
  t.equal(logs.raw.filter((r) => r.includes('unknown callback path')).length, 2, 'one line each, each a line of its own')
  t.equal(await metric(url, 'unknown_callbacks_total'), 2)
  // Other unknown paths (a scanner) are answered the same, and neither logged nor counted as hooks.
  t.equal((await fetch(`${url}/wp-login.php`)).status, 404)
  t.equal(await metric(url, 'unknown_callbacks_total'), 2)
})

t.test('a failed operator login is logged with the caller and why, never the token', async (t) => {
  const { url, logs } = await startApp(t, { ADMIN_TOKEN: TOKEN })
  const none = await fetch(`${url}${ADMIN}/events`, { headers: { 'x-forwarded-for': '198.51.100.7' } })
  t.equal(none.status, 401)
  const guess = 'a-guess-of-the-token-0000000000'
  const wrong = await fetch(`${url}${ADMIN}/streams?x=1`, { headers: { authorization: `Bearer ${guess}` } })
  t.equal(wrong.status, 401)
  const lines = [
    await logs.wait((l) => l.msg === 'operator API: access refused' && l.reason === 'no-token'),
    await logs.wait((l) => l.msg === 'operator API: access refused' && l.reason === 'wrong-token')
  ]
  t.match(lines[0], { level: 40, caller: '127.0.0.1', forwardedFor: '198.51.100.7', method: 'GET', url: `${ADMIN}/events` })
  t.match(lines[1], { level: 40, caller: '127.0.0.1', method: 'GET', url: `${ADMIN}/streams` })
  const all = logs.raw.join('\n')
  t.notMatch(all, guess, 'the token tried is not logged')
  t.notMatch(all, TOKEN, 'nor the real one')
  t.equal((await fetch(`${url}${ADMIN}/events`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200)
  t.equal(logs.lines.filter((l) => l.msg === 'operator API: access refused').length, 2, 'a good login is not')
})

t.test('ADMIN_TOKEN shorter than 16 characters is refused at start, without echoing it', async (t) => {
  t.throws(() => loadConfig({ ADMIN_TOKEN: 'short-token' }), /ADMIN_TOKEN=\(hidden\): .*16/)
  t.equal(loadConfig({ ADMIN_TOKEN: '0123456789abcdef' }).ADMIN_TOKEN, '0123456789abcdef')
})

t.test('refused hooks name the caller\'s address in their log line, on both request paths', async (t) => {
  const { hookBase, logs } = await startWorld(t, { HOOK_TOKEN: 'hook-token-123', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: 'publish-secret-0123456789' })
  const publish = { action: 'on_publish', client_id: 'c1', ip: '203.0.113.9', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '', server_id: 'vid-x' }
  // No token: refused by the caller check (403), sized body (the hook front) and chunked (Fastify's path).
  const sized = await postHook(hookBase, 'on_publish', publish)
  t.equal(sized.status, 403)
  const chunked = await fetch(`${hookBase}/on_publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new ReadableStream({ start (c) { c.enqueue(new TextEncoder().encode(JSON.stringify(publish))); c.close() } }),
    duplex: 'half'
  } as RequestInit)
  t.equal(chunked.status, 403)
  // With the token but no signature: a publish refused (HTTP 200, code 1009).
  const unsigned = await postHook(`${hookBase}`, 'on_publish?token=hook-token-123', publish)
  t.equal(unsigned.status, 200)
  t.not(unsigned.reply.code, 0)
  const refused = logs.lines.filter((l) => l.action === 'on_publish')
  t.equal(refused.length, 3)
  // The caller check runs before the body is read: those lines have no client ip, only the caller's.
  t.match(refused, [{ status: 403, code: 1003, caller: '127.0.0.1' }, { status: 403, code: 1003, caller: '127.0.0.1' }, { status: 200, code: 1009, caller: '127.0.0.1', ip: '203.0.113.9' }])
  // An allowed hook's line does not need it.
  const play = await postHook(hookBase, 'on_play?token=hook-token-123', { ...publish, action: 'on_play' })
  t.equal(play.reply.code, 0)
  const allowed = await logs.wait((l) => l.action === 'on_play')
  t.equal(allowed.caller, undefined)
})

t.test('a kick while SRS is down is one warning with the reason, not an error with a stack', async (t) => {
  const { sim, url, logs } = await startWorld(t, { SRS_API_RETRIES: '0' })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  sim.setFault('down')
  const res = await fetch(`${url}${ADMIN}/streams/live/cam1/publisher`, { method: 'DELETE' })
  t.equal(res.status, 503)
  t.match(await res.json(), { code: 4110, msg: /cannot evict the publisher of \/live\/cam1: SRS's API failed \(unreachable\)/ })
  const line = await logs.wait((l) => l.msg === 'request failed')
  t.match(line, { level: 40, code: 4110, reason: /SRS's API failed \(unreachable\)/, method: 'DELETE', url: `${ADMIN}/streams/live/cam1/publisher`, caller: '127.0.0.1' })
  t.equal(line.err, undefined, 'no stack, no causes')
  t.notOk(logs.find((l) => l.level >= 50), 'nothing logged as an error')
})

t.test('recordings while the index is down are one warning with the reason, not an error with a stack', async (t) => {
  const real = await SqliteRecordingStore.open({ dir: join(t.testdir(), 'real') })
  t.teardown(() => real.close())
  const failing = Object.assign(Object.create(real) as RecordingStore, {
    list: async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:5432') },
    close: async () => {}
  })
  const { url, logs } = await startApp(t, { SRS_API_URL: 'http://127.0.0.1:9' }, { recordings: failing })
  const res = await fetch(`${url}${ADMIN}/recordings?limit=5`)
  t.equal(res.status, 503)
  const line = await logs.wait((l) => l.msg === 'request failed')
  t.match(line, { level: 40, code: 4112, reason: 'the recordings index did not answer: connect ECONNREFUSED 127.0.0.1:5432', url: `${ADMIN}/recordings` })
  t.notOk(logs.find((l) => l.level >= 50), 'nothing logged as an error')
  t.equal(logs.lines.filter((l) => l.level >= 40).length, 1, 'one line')
})

t.test('an on_dvr the index cannot store is said once, in its hook line, with the caller', async (t) => {
  const real = await SqliteRecordingStore.open({ dir: join(t.testdir(), 'real') })
  t.teardown(() => real.close())
  const failing = Object.assign(Object.create(real) as RecordingStore, {
    add: async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:5432') },
    spool: () => null,
    close: async () => {}
  })
  const { hookBase, logs } = await startApp(t, { SRS_API_URL: 'http://127.0.0.1:9' }, { recordings: failing })
  const r = await postHook(hookBase, 'on_dvr', dvr())
  t.equal(r.status, 503)
  const line = await logs.wait((l) => l.action === 'on_dvr')
  t.match(line, { level: 40, status: 503, code: 1101, reason: /not stored: connect ECONNREFUSED/, caller: '127.0.0.1' })
  t.notOk(logs.find((l) => l.level >= 50), 'nothing logged as an error')
})
