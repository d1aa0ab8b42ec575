import t, { type Test } from 'tap'
import { pino } from 'pino'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { MemoryPublisherStore } from '../src/publishers/store.js'
import { postHook, startApp, waitFor } from './fixtures/app.js'
import { StubServer } from './fixtures/stub-server.js'

const base = { server_id: 'vid-1n7caq1', service_id: 'x6n92s02', client_id: 'og7nez71', ip: '127.0.0.1', vhost: '__defaultVhost__', app: 'live' }
const bodies: Record<string, Record<string, unknown>> = {
  on_connect: { ...base, action: 'on_connect', stream: 'cam1', param: '?key=k1', tcUrl: 'rtmp://127.0.0.1:1935/live', pageUrl: '' },
  on_close: { ...base, action: 'on_close', send_bytes: 4384, recv_bytes: 130130 },
  on_unpublish: { ...base, action: 'on_unpublish', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' },
  on_play: { ...base, action: 'on_play', stream: 'cam1', tcUrl: 'rtmp://127.0.0.1:1935/live', param: '', pageUrl: '', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' },
  on_stop: { ...base, action: 'on_stop', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '', stream_url: '/live/cam1' },
  on_dvr: { ...base, action: 'on_dvr', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '', cwd: '/srv/srs', file: '/srv/srs/dvr/live/cam1.1795315760536.flv', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' },
  on_hls: { ...base, action: 'on_hls', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '', duration: 9.87, cwd: '/srv/srs', file: './objs/nginx/html/live/cam1-1.ts', url: 'live/cam1-1.ts', m3u8: './objs/nginx/html/live/cam1.m3u8', m3u8_url: 'live/cam1.m3u8', seq_no: 1, stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' }
}
const publish = { ...base, action: 'on_publish', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '?key=k1', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' }

/** An SRS API that counts requests; any request means the hook reached SRS. */
async function deadSrs (t: Test) {
  const srs = await StubServer.start((_req, res) => { res.writeHead(500); res.end() })
  t.teardown(() => srs.close())
  return srs
}

t.test('every hook SRS 5-7 sends (as observed on SRS 7.0.18) is allowed at once', async (t) => {
  const srs = await deadSrs(t)
  const { hookBase, logs } = await startApp(t, { SRS_API_URL: srs.url })
  for (const [action, body] of Object.entries(bodies)) {
    const r = await postHook(hookBase, action, body)
    t.equal(r.status, 200, action)
    t.same(r.reply, { code: 0, msg: null }, action)
  }
  t.same(srs.requests.filter((r) => r.url !== '/api/v1/versions'), [], 'none of them calls SRS (but for its version, read at start)')
  await waitFor(() => logs.lines.filter((l) => l.msg === 'hook').length === 7, 5000, 'seven hook lines')
  t.match(logs.find((l) => l.action === 'on_connect'), { stream: '/live/cam1', client: 'og7nez71', ip: '127.0.0.1', param: '?key=***', outcome: 'allowed', code: 0, status: 200 })
  t.notOk(logs.lines.some((l) => JSON.stringify(l).includes('k1')), 'the key never reaches the log')
})

t.test('the callbacks also answer behind a gateway that strips /admin-api', async (t) => {
  const { url } = await startApp(t, {})
  const r = await postHook(`${url}/video/camera/callback`, 'on_play', bodies.on_play)
  t.same(r.reply, { code: 0, msg: null })
})

t.test('a numeric client_id (SRS <= 3, or a hand-written curl test) is the client of that decimal string', async (t) => {
  const { hookBase, logs } = await startApp(t, {})
  t.same((await postHook(hookBase, 'on_publish', { ...publish, client_id: 5 })).reply, { code: 0, msg: null })
  t.match(await logs.wait((l) => l.action === 'on_publish' && l.msg === 'hook'), { client: '5' })
})

t.test('bodies of other SRS versions are accepted', async (t) => {
  const { hookBase } = await startApp(t, {})
  const srs3 = { action: 'on_play', client_id: 1985, ip: '10.0.0.1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', pageUrl: '' }
  t.same((await postHook(hookBase, 'on_play', srs3)).reply, { code: 0, msg: null }, 'an integer client_id (SRS <= 3)')
  const srs4 = { action: 'on_unpublish', client_id: 'a1b2c3d4', ip: '10.0.0.1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '' }
  t.same((await postHook(hookBase, 'on_unpublish', srs4)).reply, { code: 0, msg: null }, 'no stream_url, stream_id or tcUrl (SRS 4)')
  const future = { ...bodies.on_play, new_field: { nested: true } }
  t.same((await postHook(hookBase, 'on_play', future)).reply, { code: 0, msg: null }, 'unknown extra fields')
  const whip = { ...bodies.on_play, tcUrl: '', param: 'key=x&upstream=rtc' }
  t.same((await postHook(hookBase, 'on_play', whip)).reply, { code: 0, msg: null }, 'WHIP: empty tcUrl, bare query')
})

t.test('bad input gets a 4xx with a non-zero code and a message, reaches nobody, and the server stays up', async (t) => {
  const srs = await deadSrs(t)
  const { app, hookBase, logs } = await startApp(t, { SRS_API_URL: srs.url, BODY_LIMIT: '2048' })
  const cases: Array<[string, string, unknown, number, number, RegExp]> = [
    ['malformed JSON', 'on_publish', '{"action":"on_publish",', 400, 4001, /^the body is not valid JSON \(received with Content-Type "application\/json"\); SRS sends each hook as a JSON object$/],
    ['empty body', 'on_publish', '', 400, 4001, /^the body is empty \(received with Content-Type "application\/json"\)/],
    ['a JSON array', 'on_publish', '[1,2]', 400, 4000, /body must be object/],
    ['a JSON string', 'on_publish', '"on_publish"', 400, 4000, /object/],
    ['missing stream', 'on_publish', { ...publish, stream: undefined }, 400, 4000, /stream/],
    ['missing client_id', 'on_publish', { ...publish, client_id: undefined }, 400, 4000, /client_id/],
    ['client_id an object', 'on_publish', { ...publish, client_id: { $ne: 1 } }, 400, 4000, /^invalid hook body: body\/client_id must be string or must be integer$/],
    ['client_id a fraction', 'on_publish', { ...publish, client_id: 5.5 }, 400, 4000, /body\/client_id must be string or must be integer/],
    ['client_id negative', 'on_publish', { ...publish, client_id: -1 }, 400, 4000, /body\/client_id must be string or must be >= 0/],
    ['app a number', 'on_publish', { ...publish, app: 5 }, 400, 4000, /app/],
    ['stream_id null', 'on_publish', { ...publish, stream_id: null }, 400, 4000, /stream_id/],
    ['empty app', 'on_publish', { ...publish, app: '' }, 400, 4000, /app/],
    ['a negative recv_bytes', 'on_close', { ...bodies.on_close, recv_bytes: -1 }, 400, 4000, /recv_bytes/],
    ['on_dvr without file', 'on_dvr', { ...bodies.on_dvr, file: undefined }, 400, 4000, /file/],
    ['another hook\'s body', 'on_publish', bodies.on_unpublish, 400, 4002, /on_unpublish.*on_publish callback/],
    ['oversized', 'on_publish', { ...publish, param: '?x=' + 'a'.repeat(4000) }, 413, 4013, /BODY_LIMIT/],
    ['a prototype-polluting body', 'on_publish', '{"__proto__":{"admin":true},"action":"on_publish"}', 400, 4001, /^the body holds a __proto__ or constructor key, which is refused/]
  ]
  for (const [name, action, body, status, code, msg] of cases) {
    const r = await postHook(hookBase, action, body)
    t.equal(r.status, status, `${name}: status`)
    t.equal(r.reply.code, code, `${name}: code`)
    t.match(r.reply.msg, msg, `${name}: message`)
  }
  t.same(srs.requests.filter((r) => r.url !== '/api/v1/versions'), [], 'nothing reached SRS (but the version probe), so nothing was evicted')
  t.equal(await app.publishers.store.size(), 0, 'no state was written')
  t.same((await postHook(hookBase, 'on_play', bodies.on_play)).reply, { code: 0, msg: null }, 'still serving')
  const line = await logs.wait((l) => l.outcome === 'bad-request' && l.code === 4002)
  t.match(line, { level: 40, action: 'on_publish', status: 400, msg: 'hook not processed' })
})

t.test('a form-encoded content type (curl -d) is parsed as JSON', async (t) => {
  const { hookBase } = await startApp(t, {})
  for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
    const res = await fetch(`${hookBase}/on_play`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(bodies.on_play) })
    t.same(await res.json(), { code: 0, msg: null }, type)
  }
})

t.test('a body that is not JSON says what content type it came with and how to send JSON', async (t) => {
  const srs = await deadSrs(t)
  const { app, hookBase } = await startApp(t, { SRS_API_URL: srs.url })
  const curl = ' with curl, add -H \'Content-Type: application/json\' and send a JSON object'
  const send = async (headers: Record<string, string>, body: string | Readable): Promise<{ status: number, reply: any }> => {
    const res = await request(`${hookBase}/on_publish`, { method: 'POST', headers, body })
    return { status: res.statusCode, reply: await res.body.json() }
  }
  // curl -d 'action=on_publish&stream=cam1': a form type and a form body.
  t.same(await send({ 'content-type': 'application/x-www-form-urlencoded' }, 'action=on_publish&stream=cam1'), {
    status: 400, reply: { code: 4001, msg: `the body is not valid JSON (received with Content-Type "application/x-www-form-urlencoded"); SRS sends JSON:${curl}` }
  })
  t.same(await send({ 'content-type': 'text/plain;charset=UTF-8' }, '{action: on_publish}'), {
    status: 400, reply: { code: 4001, msg: `the body is not valid JSON (received with Content-Type "text/plain;charset=UTF-8"); SRS sends JSON:${curl}` }
  })
  // Chunked, or without a content type: the same words.
  t.same(await send({ 'content-type': 'application/x-www-form-urlencoded' }, Readable.from([Buffer.from('action=on_'), Buffer.from('publish')])), {
    status: 400, reply: { code: 4001, msg: `the body is not valid JSON (received with Content-Type "application/x-www-form-urlencoded"); SRS sends JSON:${curl}` }
  })
  t.same(await send({}, 'action=on_publish'), { status: 400, reply: { code: 4001, msg: `the body is not valid JSON (received with no Content-Type); SRS sends JSON:${curl}` } })
  // A content type that is no media type at all: refused before any parser, saying what to send.
  t.same(await send({ 'content-type': 'x'.repeat(300) }, 'a'), { status: 415, reply: { code: 4001, msg: 'the Content-Type is not a media type; send JSON with Content-Type: application/json' } })
  t.same(await send({ 'content-type': `text/${'x'.repeat(300)}` }, 'a'), { status: 400, reply: { code: 4001, msg: `the body is not valid JSON (received with Content-Type "${`text/${'x'.repeat(300)}`.slice(0, 100)}"); SRS sends JSON:${curl}` } }, 'a long type is cut')
  t.same(srs.requests.filter((r) => r.url !== '/api/v1/versions'), [], 'nothing reached SRS')
  t.equal(await app.publishers.store.size(), 0)
})

t.test('unknown routes and methods answer 404 with a code', async (t) => {
  const { url, hookBase } = await startApp(t, {})
  for (const [method, path] of [['POST', `${hookBase}/on_forward`], ['GET', `${hookBase}/on_publish`], ['GET', `${url}/`]]) {
    const res = await fetch(path!, { method })
    t.equal(res.status, 404)
    t.match(await res.json(), { code: 4004, msg: /no route/ })
  }
})

t.test('an unexpected failure inside answers 500 with code 5000 and is logged', async (t) => {
  const store = new MemoryPublisherStore(10)
  store.deleteIfClient = async () => { throw new Error('store down') }
  const { hookBase, logs } = await startApp(t, {}, { state: { store } })
  const r = await postHook(hookBase, 'on_unpublish', bodies.on_unpublish)
  t.equal(r.status, 500)
  t.same(r.reply, { code: 5000, msg: 'internal error; see the server log' })
  const line = await logs.wait((l) => l.msg === 'unexpected error')
  t.match(line, { level: 50, err: { message: 'store down' } })
})

t.test('an empty stream_id is treated as absent: the stream is found in the listing', async (t) => {
  const srs = await deadSrs(t)
  const { hookBase } = await startApp(t, { SRS_API_URL: srs.url, SRS_API_RETRIES: '0' })
  const r = await postHook(hookBase, 'on_publish', { ...publish, stream_id: '' })
  t.same(r.reply, { code: 0, msg: null }, 'FAIL_MODE=open allows when SRS fails')
  t.ok(srs.requests.some((r) => /^\/api\/v1\/streams\/\?start=0/.test(r.url)), 'looked up in the listing')
})

t.test('an SRS 4 on_connect (no stream) is allowed and logged without a stream', async (t) => {
  const { hookBase, logs } = await startApp(t, {})
  const r = await postHook(hookBase, 'on_connect', { action: 'on_connect', client_id: 'a1b2c3d4', ip: '10.0.0.1', vhost: '__defaultVhost__', app: 'live', tcUrl: 'rtmp://h/live', pageUrl: '' })
  t.same(r.reply, { code: 0, msg: null })
  const line = await logs.wait((l) => l.action === 'on_connect')
  t.equal(line.stream, undefined)
  t.equal(line.client, 'a1b2c3d4')
})

t.test('a client error from Fastify itself keeps its 4xx status and gets code 4000', async (t) => {
  const app = await buildApp(loadConfig({ RECONCILE_INTERVAL_MS: '0' }), { logger: pino({ level: 'silent' }) })
  t.teardown(() => app.close())
  app.post('/teapot', async () => { throw Object.assign(new Error('short and stout'), { statusCode: 418 }) })
  const r = await app.inject({ method: 'POST', url: '/teapot' })
  t.equal(r.statusCode, 418)
  t.same(r.json(), { code: 4000, msg: 'short and stout' })
})
