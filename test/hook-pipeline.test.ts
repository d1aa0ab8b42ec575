import { connect } from 'node:net'
import { pino } from 'pino'
import t from 'tap'
import { LogCapture, postHook, startApp, waitFor, type TestApp } from './fixtures/app.js'

/**
 * SRS's and ZLMediaKit's callbacks go through one pipeline (src/http/hooks.ts): one line per
 * answered hook in the same shape, the metrics, the error mapping and the caller check.
 */

const base = { server_id: 'vid-1n7caq1', service_id: 'x6n92s02', client_id: 'og7nez71', ip: '127.0.0.1', vhost: '__defaultVhost__', app: 'live' }
const play = { ...base, action: 'on_play', stream: 'cam1', tcUrl: 'rtmp://127.0.0.1:1935/live', param: '?token=s3cret&vhost=v', pageUrl: '', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' }
const keepalive = { mediaServerId: 'zlm-1', hook_index: 7, data: {} }

/** The hook counters, by labels. */
async function hookCounts (app: TestApp): Promise<string[]> {
  const text = await app.app.metrics.registry.metrics()
  return text.split('\n').filter((l) => /^srs_hooks_hooks_total\{/.test(l)).sort()
}

t.test('SRS\'s and ZLMediaKit\'s hooks are logged in one shape by one writer: request id, kind, action, what happened, status, time', async (t) => {
  const app = await startApp(t, {})
  t.equal((await postHook(app.hookBase, 'on_play', play)).status, 200)
  t.equal((await postHook(app.hookBase + '/zlm', 'on_server_keepalive', keepalive)).status, 200)
  await app.app.close()
  const lines = app.logs.raw.filter((l) => l.includes('"msg":"hook"'))
  t.equal(lines.length, 2)
  t.match(lines[0], /^\{"level":30,"time":\d+,"pid":\d+,"hostname":"[^"]*","reqId":"req-\w+","action":"on_play","stream":"\/live\/cam1","client":"og7nez71","ip":"127\.0\.0\.1","param":"\?token=\*\*\*&vhost=v","outcome":"allowed","code":0,"status":200,"ms":[\d.]+,"msg":"hook"\}$/)
  // ZLMediaKit's keepalive comes every few seconds: at debug.
  t.match(lines[1], /^\{"level":20,"time":\d+,"pid":\d+,"hostname":"[^"]*","reqId":"req-\w+","kind":"zlm","action":"on_server_keepalive","hookIndex":7,"server":"zlm-1","outcome":"noted","code":0,"status":200,"ms":[\d.]+,"msg":"hook"\}$/)
})

t.test('with a logger whose lines are left to pino (here, one with a mixin), the same lines are written through it, at their levels', async (t) => {
  const logs = new LogCapture()
  const app = await startApp(t, {}, { logger: pino({ level: 'debug', mixin: () => ({ replica: 'a' }) }, logs.stream) })
  t.equal((await postHook(app.hookBase, 'on_play', play)).status, 200)
  t.equal((await postHook(app.hookBase, 'on_play', '{}')).status, 400)
  t.equal((await postHook(app.hookBase + '/zlm', 'on_server_keepalive', keepalive)).status, 200)
  await app.app.close()
  const hooks = logs.lines.filter((l) => l.action !== undefined)
  t.match(hooks, [
    { level: 30, replica: 'a', action: 'on_play', outcome: 'allowed', status: 200, msg: 'hook' },
    { level: 40, replica: 'a', action: 'on_play', outcome: 'bad-request', code: 4000, caller: '127.0.0.1', status: 400, msg: 'hook not processed' },
    { level: 20, replica: 'a', kind: 'zlm', action: 'on_server_keepalive', hookIndex: 7, outcome: 'noted', status: 200, msg: 'hook' }
  ])
  t.equal(hooks.length, 3)
})

t.test('below the logger\'s level no hook line is written; the hooks are counted all the same', async (t) => {
  const logs = new LogCapture()
  const app = await startApp(t, {}, { logger: pino({ level: 'error' }, logs.stream) })
  t.equal((await postHook(app.hookBase, 'on_play', play)).status, 200)
  t.equal((await postHook(app.hookBase, 'on_play', '{}')).status, 400)
  t.equal((await postHook(app.hookBase + '/zlm', 'on_server_keepalive', keepalive)).status, 200)
  const counted = await hookCounts(app)
  await app.app.close()
  t.same(logs.lines.filter((l) => l.action !== undefined), [], 'no hook line')
  t.same(counted, [
    'srs_hooks_hooks_total{action="on_play",outcome="allowed"} 1',
    'srs_hooks_hooks_total{action="on_play",outcome="bad-request"} 1',
    'srs_hooks_hooks_total{action="zlm/on_server_keepalive",outcome="noted"} 1'
  ])
})

/** Sends a hook's headers and half its body on a socket of its own; returns the rest to send, the socket and what it receives until closed. */
async function halfSent (app: TestApp, body: string): Promise<{ rest: string, socket: ReturnType<typeof connect>, reply: Promise<string> }> {
  const socket = connect(Number(new URL(app.url).port), '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (c: string) => { text += c })
  const reply = new Promise<string>((resolve) => socket.once('close', () => resolve(text)))
  socket.write(`POST /admin-api/video/camera/callback/on_play HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`)
  return { rest: body.slice(20), socket, reply }
}

t.test('a hook that arrived before the app began to close is answered, and its connection closed', async (t) => {
  const app = await startApp(t, {})
  const arrived = new Promise((resolve) => app.app.server.once('request', resolve))
  const h = await halfSent(app, JSON.stringify(play))
  await arrived
  const closed = app.app.close()
  // The server stops listening once the app's preClose hooks have run.
  await waitFor(() => !app.app.server.listening, 2000, 'the app closing')
  h.socket.end(h.rest)
  const reply = await h.reply
  await closed
  t.match(reply, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(reply, /\r\nconnection: close\r\n/i)
  t.match(reply, /\{"code":0,"msg":null\}$/)
})

t.test('a caller that hangs up before its body has arrived is dropped: nothing to answer, nothing logged or counted', async (t) => {
  const app = await startApp(t, {})
  const h = await halfSent(app, JSON.stringify({ ...play, action: 'on_stop' }))
  h.socket.destroy()
  // The server has seen the hang-up once it holds no connection.
  await waitFor(async () => await new Promise<number>((resolve) => app.app.server.getConnections((_e, n) => resolve(n))) === 0, 2000, 'the connection gone')
  t.equal((await postHook(app.hookBase, 'on_play', play)).status, 200, 'the next hook is answered')
  await app.app.close()
  t.same(app.logs.lines.filter((l) => l.action !== undefined).map((l) => l.outcome), ['allowed'], 'one line: the next hook\'s')
  t.same(await hookCounts(app), ['srs_hooks_hooks_total{action="on_play",outcome="allowed"} 1'], 'counted once')
})

t.test('a body sent to another hook\'s URL is refused by the schema as a mismatch; a wrong type for action is an invalid body', async (t) => {
  const app = await startApp(t, {})
  const mismatch = await postHook(app.hookBase, 'on_play', { ...play, action: 'on_publish' })
  t.match(mismatch, { status: 400, reply: { code: 4002, msg: /body\.action is "on_publish" but this is the on_play callback/ } })
  const wrongType = await postHook(app.hookBase, 'on_play', { ...play, action: 5 })
  t.match(wrongType, { status: 400, reply: { code: 4000 } })
  const both = await postHook(app.hookBase, 'on_play', { ...play, action: 'on_stop', app: 7 })
  t.match(both, { status: 400, reply: { code: 4000 } }, 'another field wrong too: an invalid body')
})

t.test('the caller check runs only where HOOK_TOKEN or HOOK_ALLOW is set, on both media servers\' callbacks', async (t) => {
  const open = await startApp(t, {})
  t.equal((await postHook(open.hookBase + '/zlm', 'on_server_keepalive', keepalive)).status, 200)
  const guarded = await startApp(t, { HOOK_TOKEN: 'a-long-enough-hook-token' })
  t.match(await postHook(guarded.hookBase, 'on_play', play), { status: 403, reply: { code: 1003 } })
  t.match(await postHook(guarded.hookBase + '/zlm', 'on_server_keepalive', keepalive), { status: 403, reply: { code: 1003 } })
  const withToken = await fetch(`${guarded.hookBase}/zlm/on_server_keepalive?token=a-long-enough-hook-token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(keepalive) })
  t.equal(withToken.status, 200)
})
