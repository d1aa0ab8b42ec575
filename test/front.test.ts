import { request } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { LogCapture, startApp, waitFor, type TestApp } from './fixtures/app.js'
import { diskFullStore } from './fixtures/recordings-suite.js'
import { StubServer } from './fixtures/stub-server.js'

/**
 * The hook front (src/http/front.ts) answers SRS's hooks as Fastify's request path does: the same
 * status, reply, headers, log line and metrics, for good and bad requests alike. Each case is sent
 * to two apps built from the same configuration, one serving its hooks in front of Fastify and one
 * through Fastify only, and what each answered, logged and counted is compared.
 */

const base = { server_id: 'vid-1n7caq1', service_id: 'x6n92s02', client_id: 'og7nez71', ip: '127.0.0.1', vhost: '__defaultVhost__', app: 'live' }
const play = { ...base, action: 'on_play', stream: 'cam1', tcUrl: 'rtmp://127.0.0.1:1935/live', param: '?token=s3cret&vhost=v', pageUrl: '', stream_url: '/live/cam1', stream_id: 'vid-m9z53n9' }
const bodies: Record<string, Record<string, unknown>> = {
  on_play: play,
  on_connect: { ...base, action: 'on_connect', stream: 'cam1', param: '?key=k1', tcUrl: 'rtmp://127.0.0.1:1935/live', pageUrl: '' },
  on_stop: { ...play, action: 'on_stop' },
  on_close: { ...base, action: 'on_close', send_bytes: 4384, recv_bytes: 130130 },
  on_unpublish: { ...play, action: 'on_unpublish' },
  on_publish: { ...play, action: 'on_publish', param: '' },
  on_hls: { ...play, action: 'on_hls', duration: 9.87, cwd: '/srv/srs', file: './objs/nginx/html/live/cam1-1.ts', url: 'live/cam1-1.ts', m3u8: './objs/nginx/html/live/cam1.m3u8', m3u8_url: 'live/cam1.m3u8', seq_no: 1 },
  on_dvr: { ...play, action: 'on_dvr', cwd: '/srv/srs', file: '/srv/srs/dvr/live/cam1.1795315760536.flv' }
}

interface Sent { path: string, body?: string, headers?: Record<string, string>, chunked?: boolean }
interface Answer { status: number, headers: Record<string, unknown>, body: string }

async function send (url: string, s: Sent): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...s.headers }
    if (s.body !== undefined && s.chunked !== true) headers['content-length'] = Buffer.byteLength(s.body)
    const req = request(url + s.path, { method: 'POST', headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => {
        const { date: _date, 'keep-alive': _ka, ...rest } = res.headers
        resolve({ status: res.statusCode!, headers: rest, body })
      })
    })
    req.on('error', reject)
    if (s.chunked === true) req.write(s.body!.slice(0, 5))
    req.end(s.chunked === true ? s.body!.slice(5) : s.body)
  })
}

/** A log line with what differs between two runs of the same request removed (time, duration). */
function comparable (line: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (line === undefined) return undefined
  const { time: _time, ms, pid: _pid, hostname: _hostname, ...rest } = line
  return { ...rest, ms: typeof ms }
}

/** The hook counters and the latency histogram's counts, by labels. */
async function hookMetrics (app: TestApp): Promise<string[]> {
  const text = await app.app.metrics.registry.metrics()
  return text.split('\n').filter((l) => /^srs_hooks_(hooks_total|hook_duration_seconds_count)\{/.test(l)).sort()
}

async function pair (t: Test, env: Record<string, string>): Promise<[TestApp, TestApp]> {
  const front = await startApp(t, env)
  const fastify = await startApp(t, env, { hookFront: false })
  return [front, fastify]
}

/**
 * How many hooks `app`'s front has answered: it counts them through `metrics.hookAnswered`, which
 * Fastify's path never calls (its metrics come from an onResponse hook).
 */
const frontCounts = new WeakMap<TestApp['app'], { n: number }>()
function servedByFront (app: TestApp['app']): number {
  let count = frontCounts.get(app)
  if (count === undefined) {
    const counted = count = { n: 0 }
    const answered = app.metrics.hookAnswered
    app.metrics.hookAnswered = (...args) => { counted.n++; answered(...args) }
    frontCounts.set(app, count)
  }
  return count.n
}

/**
 * Sends each case to both apps in turn and compares the answers and the lines each logged for it.
 * `answers` are the first app's; `viaFront`, whether its front answered each case (the second
 * app's never does).
 */
async function compare (t: Test, apps: [TestApp, TestApp], cases: Array<[string, Sent]>): Promise<{ answers: Answer[], viaFront: boolean[] }> {
  const answers: Answer[] = []
  const viaFront: boolean[] = []
  for (const [what, s] of cases) {
    const [a, b] = await Promise.all(apps.map(async (app) => {
      const lines = app.logs.lines.length
      const before = servedByFront(app.app)
      const answer = await send(app.url, s)
      // The line is written after the reply; wait for it (every hook request logs exactly one).
      const line = answer.status !== 404 ? await app.logs.wait((l) => app.logs.lines.indexOf(l) >= lines && (l.msg === 'hook' || l.msg === 'hook not processed')) : undefined
      return { answer, line: comparable(line), front: servedByFront(app.app) > before }
    }))
    t.same(a!.answer, b!.answer, `${what}: the same answer`)
    t.same(a!.line, b!.line, `${what}: the same log line`)
    t.equal(b!.front, false, `${what}: the app without its front served it through Fastify`)
    answers.push(a!.answer)
    viaFront.push(a!.front)
  }
  t.same(await hookMetrics(apps[0]), await hookMetrics(apps[1]), 'the same hook metrics')
  return { answers, viaFront }
}

const hookPath = (action: string): string => `/admin-api/video/camera/callback/${action}`
const json = { 'content-type': 'application/json' }

t.test('good hooks, and every way a hook body can be wrong, are answered, logged and counted alike', async (t) => {
  const srs = await StubServer.start((_req, res) => { res.writeHead(500); res.end() })
  t.teardown(() => srs.close())
  const apps = await pair(t, { SRS_API_URL: srs.url, BODY_LIMIT: '4096' })
  const cases: Array<[string, Sent]> = Object.entries(bodies).map(([action, body]) => [action, { path: hookPath(action), body: JSON.stringify(body), headers: json }])
  cases.push(
    ['through a gateway that strips /admin-api', { path: '/video/camera/callback/on_play', body: JSON.stringify(play), headers: json }],
    ['curl -d (a form content type)', { path: hookPath('on_play'), body: JSON.stringify(play), headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
    ['not JSON', { path: hookPath('on_play'), body: '{"action":', headers: json }],
    ['a JSON array', { path: hookPath('on_play'), body: '[]', headers: json }],
    ['__proto__ in the body', { path: hookPath('on_play'), body: '{"__proto__":{"x":1}}', headers: json }],
    ['constructor.prototype in the body', { path: hookPath('on_play'), body: '{"constructor":{"prototype":{"x":1}}}', headers: json }],
    ['an empty object', { path: hookPath('on_stop'), body: '{}', headers: json }],
    ['a wrong type', { path: hookPath('on_close'), body: JSON.stringify({ ...bodies.on_close, ip: 7 }), headers: json }],
    ['another hook\'s body', { path: hookPath('on_stop'), body: JSON.stringify(play), headers: json }],
    ['an action that is not a string', { path: hookPath('on_stop'), body: JSON.stringify({ ...play, action: 5 }), headers: json }],
    ['quotes, backslashes, control characters and non-ASCII in the fields', { path: hookPath('on_play'), body: JSON.stringify({ ...play, stream_url: 'c"a\\m\n\u0001é😀\ud800', client_id: 'q"\\' }), headers: json }],
    ['the same in a field over 100 characters', { path: hookPath('on_play'), body: JSON.stringify({ ...play, stream_url: 'c"a\\m\n\u0001é😀\ud800'.repeat(20) }), headers: json }],
    ['an empty body', { path: hookPath('on_play'), body: '', headers: json }],
    ['no content type (Fastify parses it as JSON too)', { path: hookPath('on_play'), body: JSON.stringify(play) }],
    ['a chunked body', { path: hookPath('on_play'), body: JSON.stringify(play), headers: json, chunked: true }],
    ['a body over BODY_LIMIT', { path: hookPath('on_play'), body: JSON.stringify({ ...play, pageUrl: 'x'.repeat(5000) }), headers: json }],
    ['a chunked body over BODY_LIMIT', { path: hookPath('on_play'), body: JSON.stringify({ ...play, pageUrl: 'x'.repeat(5000) }), headers: json, chunked: true }],
    ['a query string', { path: hookPath('on_play') + '?x=1', body: JSON.stringify(play), headers: json }],
    ['a hook that does not exist', { path: hookPath('on_teapot'), body: JSON.stringify(play), headers: json }]
  )
  const { answers, viaFront } = await compare(t, apps, cases)
  t.same(answers.map((a) => a.status), [...Array(10).fill(200), ...Array(8).fill(400), 200, 200, 400, 200, 200, 413, 413, 200, 404], 'the statuses the cases call for')
  t.match(answers[10]!.body, /^\{"code":4001,"msg":"the body is not valid JSON/, 'a reply with a code and words')
  t.same(viaFront, [...Array(20).fill(true), ...Array(7).fill(false)], 'the front served every case but the empty, untyped, chunked or oversized bodies, the query string and the unknown hook')
})

t.test('behind a TRUST_PROXY every hook goes through Fastify (request.ip is its to work out), answered alike', async (t) => {
  const apps = await pair(t, { TRUST_PROXY: '127.0.0.1' })
  const { answers, viaFront } = await compare(t, apps, [['a hook', { path: hookPath('on_play'), body: JSON.stringify(play), headers: json }]])
  t.same([answers[0]!.status, viaFront], [200, [false]])
})

t.test('a caller outside HOOK_ALLOW is refused alike, before its body is read', async (t) => {
  const apps = await pair(t, { HOOK_ALLOW: '10.0.0.0/8' })
  const { answers, viaFront } = await compare(t, apps, [
    ['a hook from 127.0.0.1', { path: hookPath('on_play'), body: JSON.stringify(play), headers: json }],
    ['not JSON from 127.0.0.1', { path: hookPath('on_play'), body: 'nonsense', headers: json }]
  ])
  t.same(answers.map((a) => a.status), [403, 403])
  t.same(viaFront, [true, true], 'refused by the front')
})

t.test('a hook whose handler fails is answered alike (an on_dvr the index cannot store: 503, so that SRS retries)', async (t) => {
  const env = {}
  const front = await startApp(t, env, { recordings: await diskFullStore(join(t.testdir(), 'a')) })
  const fastify = await startApp(t, env, { recordings: await diskFullStore(join(t.testdir(), 'b')), hookFront: false })
  const { answers, viaFront } = await compare(t, [front, fastify], [['an on_dvr', { path: hookPath('on_dvr'), body: JSON.stringify(bodies.on_dvr), headers: json }]])
  t.same([answers[0]!.status, viaFront], [503, [true]])
})

/** Sends a hook's headers and half its body on a socket of its own; returns the rest to send, and the socket. */
async function halfSent (app: TestApp, action: string): Promise<{ rest: string, socket: ReturnType<typeof connect>, reply: Promise<string> }> {
  const body = JSON.stringify(bodies[action])
  const { port } = new URL(app.url)
  const socket = connect(Number(port), '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (c: string) => { text += c })
  const reply = new Promise<string>((resolve) => socket.once('close', () => resolve(text)))
  socket.write(`POST ${hookPath(action)} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`)
  return { rest: body.slice(20), socket, reply }
}

t.test('a hook that arrives before the app closes is answered alike, and its connection closed', async (t) => {
  const apps = await pair(t, {})
  const replies = await Promise.all(apps.map(async (app) => {
    const before = servedByFront(app.app)
    const arrived = new Promise((resolve) => app.app.server.once('request', resolve))
    const h = await halfSent(app, 'on_play')
    await arrived
    const closed = app.app.close()
    await waitFor(() => app.app.hookFront.closing, 2000, 'the app closing')
    h.socket.end(h.rest)
    const reply = await h.reply
    await closed
    return { bytes: reply.replace(/\r\nDate: [^\r]*/i, ''), front: servedByFront(app.app) > before }
  }))
  t.same(replies.map((r) => r.front), [true, false], 'the front answered it, in the app with a front')
  t.equal(replies[0]!.bytes, replies[1]!.bytes, 'the same bytes')
  t.match(replies[0]!.bytes, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(replies[0]!.bytes, /\r\nconnection: close\r\n/i)
  t.match(replies[0]!.bytes, /\{"code":0,"msg":null\}$/)
})

t.test('a caller that hangs up before its body has arrived is dropped alike: nothing to answer, nothing logged or counted', async (t) => {
  const apps = await pair(t, {})
  await Promise.all(apps.map(async (app) => {
    const h = await halfSent(app, 'on_stop')
    h.socket.destroy()
    // The server has seen the hang-up once it holds no connection.
    await waitFor(async () => await new Promise<number>((resolve) => app.app.server.getConnections((_e, n) => resolve(n))) === 0, 2000, 'the connection gone')
  }))
  const { answers, viaFront } = await compare(t, apps, [['the next hook', { path: hookPath('on_play'), body: JSON.stringify(play), headers: json }]])
  t.same([answers[0]!.status, viaFront], [200, [true]])
  for (const app of apps) t.same(app.logs.lines.filter((l) => l.action === 'on_stop'), [], 'no line for the hook that never arrived')
  t.notMatch((await hookMetrics(apps[0])).join('\n'), /on_stop/, 'not counted')
})

t.test('with a logger whose lines are left to pino (here, one with a mixin), both paths log the same lines through it', async (t) => {
  const apps = await Promise.all([{}, { hookFront: false as const }].map(async (deps) => {
    const logs = new LogCapture()
    const app = await startApp(t, {}, { ...deps, logger: pino({ level: 'debug', mixin: () => ({ replica: 'a' }) }, logs.stream) })
    return { ...app, logs }
  })) as [TestApp, TestApp]
  const { viaFront } = await compare(t, apps, [
    ['a good hook', { path: hookPath('on_play'), body: JSON.stringify(play), headers: json }],
    ['a bad one', { path: hookPath('on_play'), body: '{}', headers: json }]
  ])
  t.same(viaFront, [true, true])
  t.match(apps[0].logs.find((l) => l.msg === 'hook'), { replica: 'a', action: 'on_play', outcome: 'allowed' }, 'pino wrote it (the mixin\'s field is there)')
})

t.test('below the logger\'s level no hook line is written, on either path', async (t) => {
  for (const deps of [{}, { hookFront: false as const }]) {
    const logs = new LogCapture()
    const { app, url } = await startApp(t, {}, { ...deps, logger: pino({ level: 'error' }, logs.stream) })
    t.equal((await send(url, { path: hookPath('on_play'), body: JSON.stringify(play), headers: json })).status, 200)
    t.equal((await send(url, { path: hookPath('on_play'), body: '{}', headers: json })).status, 400)
    // Closed, the app has run every answered request's onResponse.
    await app.close()
    t.same(logs.lines.filter((l) => l.action !== undefined), [], `no hook line (${deps.hookFront === false ? 'Fastify' : 'front'})`)
  }
})
