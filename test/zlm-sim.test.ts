// Tests of the ZLMediaKit simulator itself: hooks, publishers and players, against a tiny hooks server that
// records what it receives. The HTTP API and the RTP server lifecycle are in zlm-sim-api and zlm-sim-rtp.

import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EventEmitter } from 'node:events'
import { ZlmSimulator, ZLM_HOOKS, DEFAULT_VHOST, SERVER_NAME, styled, hookVerdict } from './fixtures/zlm-sim.js'
import type { ZlmSimOptions } from './fixtures/zlm-sim.js'
import { waitFor } from './fixtures/wait.js'

interface Test { teardown: (fn: () => unknown) => void }

// ------------------------------------------------------------------ helpers (the same in every zlm-sim test file)

interface Received { hook: string, url: string, headers: IncomingHttpHeaders, raw: string, body: Record<string, any> }
interface Reply { status?: number, body?: string, hang?: boolean }
type Replier = (r: Received) => Reply | Promise<Reply>

interface HooksServer {
  base: string
  received: Received[]
  reply: (fn: Replier) => void
  waitFor: (pred: (r: Received) => boolean, ms?: number) => Promise<Received>
  of: (hook: string) => Received[]
}

async function hooksServer (t: Test): Promise<HooksServer> {
  const received: Received[] = []
  const events = new EventEmitter()
  let replier: Replier = () => ({})
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const url = req.url as string
      const r: Received = { hook: new URL('http://x' + url).pathname.split('/').pop() as string, url, headers: req.headers, raw, body: JSON.parse(raw) }
      received.push(r)
      events.emit('received', r)
      void Promise.resolve(replier(r)).then((reply) => {
        if (reply.hang === true) return
        res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' })
        res.end(reply.body ?? '{"code":0,"msg":"success"}')
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/index/hook`,
    received,
    reply: (fn) => { replier = fn },
    waitFor: async (pred, ms = 5000) => await waitFor(() => received.find(pred), ms, 'a matching hook request'),
    of: (hook) => received.filter((r) => r.hook === hook)
  }
}

interface ApiAnswer { status: number, text: string, json: Record<string, any> }

async function api (sim: ZlmSimulator, name: string, params: Record<string, string | number> = {}, secret: string | null = sim.secret): Promise<ApiAnswer> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))
  if (secret !== null) q.set('secret', secret)
  return await new Promise((resolve, reject) => {
    http.get(`${sim.apiUrl}/index/api/${name}?${q.toString()}`, { agent: false }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => {
        let json: Record<string, any> = {}
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode as number, text, json })
      })
    }).on('error', reject)
  })
}

async function setup (t: Test, opts: ZlmSimOptions = {}): Promise<{ sim: ZlmSimulator, hooks: HooksServer }> {
  const hooks = await hooksServer(t)
  const sim = await ZlmSimulator.start({ hookBase: hooks.base, aliveIntervalSec: 0, retryDelayMs: 50, ...opts })
  t.teardown(async () => await sim.close())
  return { sim, hooks }
}

const changed = (r: Received, regist: boolean): boolean => r.hook === 'on_stream_changed' && r.body.regist === regist

// ------------------------------------------------------------------ hook transport (section 1)

t.test('on_server_started carries every configuration key, api.secret included, as hook_index 0 without X-VHOST', async (t) => {
  const { sim, hooks } = await setup(t, { mediaServerId: 'zlm-test', secret: 's3cret', hookQuery: '?token=a' })
  const r = await hooks.waitFor((x) => x.hook === 'on_server_started')
  t.equal(r.url, '/index/hook/on_server_started?token=a')
  t.equal(r.body.hook_index, 0)
  t.equal(r.body.mediaServerId, 'zlm-test')
  t.equal(r.body['general.mediaServerId'], 'zlm-test')
  t.equal(r.body['api.secret'], 's3cret')
  t.equal(r.body['hook.on_publish'], `${hooks.base}/on_publish?token=a`)
  t.equal(r.body['rtmp.port'], '1935')
  t.ok(Object.keys(r.body).length > 100, 'about every key')
  for (const [k, v] of Object.entries(r.body)) {
    if (k !== 'hook_index' && k !== 'mediaServerId') t.type(v, 'string', `${k} is a string`)
  }
  t.equal(r.headers['x-vhost'], undefined)
  t.equal(r.headers['content-type'], 'application/json')
  t.equal(r.headers['user-agent'], SERVER_NAME)
  t.equal(sim.config('hook.enable'), '1')
  t.equal(sim.mediaServerId, 'zlm-test')
  t.equal(sim.secret, 's3cret')
})

t.test('hook bodies are jsoncpp styled JSON with sorted keys, mediaServerId, a hook_index and X-VHOST', async (t) => {
  const { sim, hooks } = await setup(t, { mediaServerId: 'zlm-body' })
  const res = await sim.publish({ app: 'live', stream: 'cam1', params: 'k="v"\\é😀\b\f\n\r\t\u0001' })
  t.equal(res.ok, true)
  t.match(res.id, /^\d+-\d+$/, 'a session id like "6-11"')
  const pub = await hooks.waitFor((r) => r.hook === 'on_publish')
  t.equal(pub.raw, [
    '{',
    '   "app" : "live",',
    `   "hook_index" : ${String(pub.body.hook_index)},`,
    `   "id" : "${res.id}",`,
    '   "ip" : "127.0.0.1",',
    '   "mediaServerId" : "zlm-body",',
    '   "originType" : 1,',
    '   "originTypeStr" : "rtmp_push",',
    '   "params" : "k=\\"v\\"\\\\\\u00e9\\ud83d\\ude00\\b\\f\\n\\r\\t\\u0001",',
    `   "port" : ${String(pub.body.port)},`,
    '   "protocol" : "rtmp",',
    '   "schema" : "rtmp",',
    '   "stream" : "cam1",',
    '   "vhost" : "__defaultVhost__"',
    '}',
    ''
  ].join('\n'))
  t.equal(pub.body.params, 'k="v"\\é😀\b\f\n\r\t\u0001', 'the escapes decode to the same text')
  t.equal(pub.headers['x-vhost'], DEFAULT_VHOST)
  t.equal(pub.headers.accept, '*/*')
  const reg = await hooks.waitFor((r) => changed(r, true) && r.body.schema === 'rtmp')
  t.match(reg.raw, /\n {3}"tracks" : \[\n {6}\{\n {9}"channels" : 1,/, 'arrays of objects are multi-line')
  t.match(reg.raw, /"fps" : 15\.0,/, 'float members print as doubles')
  t.match(reg.raw, /"loss" : -1\.0,/)
  const call = sim.calls('on_publish')[0]
  t.equal(call?.raw, pub.raw)
  t.equal(call?.outcome, 'accepted')
  t.equal(call?.attempt, 0)
  t.equal(call?.hookIndex, pub.body.hook_index)
  t.equal(call?.headers['X-VHOST'], DEFAULT_VHOST)
})

t.test('styled() follows jsoncpp StyledWriter for short and long arrays, empty containers and doubles', async (t) => {
  t.equal(styled({ b: [1, 2], a: [], c: {}, d: null, e: true, f: 0.5, g: 2.3 }), [
    '{',
    '   "a" : [],',
    '   "b" : [ 1, 2 ],',
    '   "c" : {},',
    '   "d" : null,',
    '   "e" : true,',
    '   "f" : 0.5,',
    '   "g" : 2.2999999999999998',
    '}',
    ''
  ].join('\n'))
  const long = Array.from({ length: 30 }, (_, i) => i)
  t.equal(styled(long).split('\n').length, 33, 'an array of 30 scalars is multi-line (size * 3 >= 74)')
  const wide = ['x'.repeat(40), 'y'.repeat(40)]
  t.equal(styled(wide), '[\n   "' + 'x'.repeat(40) + '",\n   "' + 'y'.repeat(40) + '"\n]\n', 'a line of 74 characters or more is multi-line')
  t.equal(styled([]), '[]\n')
})

t.test('hookVerdict: ZLMediaKit\'s reply contract', async (t) => {
  t.match(hookVerdict(200, '{"code":0}'), { err: '', retry: false })
  t.match(hookVerdict(200, '{"code":0.0,"msg":"ok"}'), { err: '', retry: false }, 'an integral double is an integer for jsoncpp')
  t.match(hookVerdict(200, '{"code":401,"msg":"denied by test"}'), { err: '[auth failed]: code:401 msg:"denied by test"', retry: false })
  t.match(hookVerdict(200, '{"code":1}'), { err: '[auth failed]: code:1 msg:null', retry: false })
  t.match(hookVerdict(200, '{"code":"0"}'), { err: '[json code]:code not int:"0"', retry: true })
  t.match(hookVerdict(200, '{"code":true}'), { retry: true })
  t.match(hookVerdict(200, '{"code":1.5}'), { retry: true })
  t.match(hookVerdict(200, '{}'), { err: '[json code]:code not int:null', retry: true })
  t.match(hookVerdict(200, '{"code":1e300}'), { retry: true }, 'out of int64 range')
  t.match(hookVerdict(200, 'nope'), { err: /^\[parse json failed\]/, retry: true })
  t.match(hookVerdict(200, '[0]'), { err: /^\[parse json failed\]/, retry: true })
  t.match(hookVerdict(200, '0'), { retry: true })
  t.match(hookVerdict(201, '{"code":0}'), { err: '[bad http status code]:201', retry: true })
})

t.test('a non-zero code refuses the publisher and is not retried', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_publish' ? { body: '{"code":401,"msg":"denied by test"}' } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([res.ok, res.reason], [false, 'NetStream.Publish.BadAuth: [auth failed]: code:401 msg:"denied by test"'])
  t.equal(hooks.of('on_publish').length, 1)
  t.match(sim.calls('on_publish'), [{ outcome: 'refused', retried: false, status: 200, reply: { code: 401 } }])
  t.same(sim.schemas('live', 'cam1'), [])
  t.match(sim.session(res.id), { state: 'ended', kicked: false })
  const rtsp = await sim.publish({ app: 'live', stream: 'cam1', schema: 'rtsp' })
  t.match(rtsp.reason, /^401 Unauthorized: /)
})

t.test('a 500, bad JSON, a non-integer code or a timeout is retried once after retry_delay with a new hook_index, then refuses', async (t) => {
  const replies: Array<[string, Reply]> = [
    ['500', { status: 500, body: 'oops' }],
    ['not json', { body: 'not json' }],
    ['string code', { body: '{"code":"0"}' }],
    ['timeout', { hang: true }]
  ]
  for (const [what, reply] of replies) {
    const { sim, hooks } = await setup(t, { retryDelayMs: 150, hookTimeoutSec: 0.3 })
    hooks.reply((r) => r.hook === 'on_publish' ? reply : {})
    const res = await sim.publish({ app: 'live', stream: what })
    t.equal(res.ok, false, `${what}: refused`)
    const calls = sim.calls('on_publish')
    t.equal(calls.length, 2, `${what}: retried once`)
    const [first, second] = calls as [typeof calls[0] & {}, typeof calls[0] & {}]
    t.same([first.retried, second.retried], [true, false])
    t.same([first.attempt, second.attempt], [0, 1])
    t.equal(first.outcome, 'failed')
    t.ok(second.hookIndex > first.hookIndex, `${what}: a new hook_index`)
    t.ok(second.startedAt - (first.startedAt + first.ms) >= 140, `${what}: after retry_delay`)
    t.equal(second.body.stream, what)
    t.equal(res.reason, 'NetStream.Publish.BadAuth: ' + second.err)
  }
})

t.test('with the hooks server down the publisher is refused after the retry, [network err]', async (t) => {
  const sim = await ZlmSimulator.start({ hookBase: 'http://127.0.0.1:1/index/hook', aliveIntervalSec: 0, retryDelayMs: 50 })
  t.teardown(async () => await sim.close())
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(res.ok, false)
  t.match(res.reason, /\[network err\]:/)
  t.equal(sim.calls('on_publish').length, 2)
})

t.test('a retry that succeeds lets the publisher in', async (t) => {
  const { sim, hooks } = await setup(t)
  let n = 0
  hooks.reply((r) => r.hook === 'on_publish' && n++ === 0 ? { status: 503 } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(res.ok, true)
  t.same(sim.calls('on_publish').map((c) => c.outcome), ['failed', 'accepted'])
})

t.test('a failing notification is retried and changes nothing', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_stream_changed' ? { status: 500 } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(res.ok, true)
  await waitFor(() => sim.calls('on_stream_changed').filter((c) => c.attempt === 1).length === 4, 5000, '4 failed retries')
  t.equal(sim.calls('on_stream_changed').length, 8)
  t.equal(sim.owner('live', 'cam1'), res.id)
})

t.test('hooks not given a URL are not sent: an unhooked publish is allowed', async (t) => {
  const { sim, hooks } = await setup(t, { hooks: ['on_stream_changed'] })
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(res.ok, true)
  await waitFor(() => hooks.of('on_stream_changed').length === 4, 5000, '4 registrations')
  t.same(hooks.received.map((r) => r.hook), ['on_stream_changed', 'on_stream_changed', 'on_stream_changed', 'on_stream_changed'])
  t.equal(sim.config('hook.on_publish'), '')
  t.match(await sim.httpAccess('/x'), { ok: true, reason: '', second: 0 }, 'on_http_access not configured: allowed')
  t.equal((await sim.shellLogin('u', 'p')).ok, true)

  const off = await ZlmSimulator.start({ aliveIntervalSec: 0 })
  t.teardown(async () => await off.close())
  t.equal(off.config('hook.enable'), '0', 'no hook base: hooks disabled')
  t.equal((await off.publish({ app: 'live', stream: 'x' })).ok, true)
  off.setHookBase(hooks.base + '/', '?q=1')
  t.equal(off.config('hook.on_play'), `${hooks.base}/on_play?q=1`)
})

// ------------------------------------------------------------------ publishers (section 2)

t.test('a publish registers the stream once per schema, the session as originSock', async (t) => {
  const { sim, hooks } = await setup(t)
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  const regs = await waitFor(() => hooks.received.filter((r) => changed(r, true)).length === 4 && hooks.received.filter((r) => changed(r, true)), 5000, '4 registrations')
  t.same(regs.map((r) => r.body.schema).sort(), ['fmp4', 'rtmp', 'rtsp', 'ts'])
  const pubIndex = hooks.of('on_publish')[0]?.body.hook_index as number
  for (const r of regs) {
    t.ok(r.body.hook_index > pubIndex, 'on_publish came first')
    t.match(r.body, {
      regist: true,
      app: 'live',
      stream: 'cam1',
      vhost: DEFAULT_VHOST,
      params: '',
      originType: 1,
      originTypeStr: 'rtmp_push',
      originUrl: 'rtmp://__defaultVhost__/live/cam1',
      originSock: { identifier: res.id, local_port: 1935, peer_ip: '127.0.0.1' },
      readerCount: 0,
      totalReaderCount: 0,
      aliveSecond: 0,
      bytesSpeed: 0,
      totalBytes: 0,
      isRecordingMP4: false,
      isRecordingHLS: false,
      tracks: [{ codec_id_name: 'mpeg4-generic', loss: -1 }, { codec_id_name: 'H264', fps: 15, loss: -1 }]
    })
    t.type(r.body.createStamp, 'number')
  }
  t.same(sim.schemas('live', 'cam1'), ['rtmp', 'rtsp', 'ts', 'fmp4'])

  const hls = await setup(t, { hls: true })
  await hls.sim.publish({ app: 'live', stream: 'cam2', schema: 'rtsp' })
  const five = await waitFor(() => hls.hooks.received.filter((r) => changed(r, true)).length === 5 && hls.hooks.received.filter((r) => changed(r, true)), 5000, '5 registrations')
  t.same(five.map((r) => r.body.schema).sort(), ['fmp4', 'hls', 'rtmp', 'rtsp', 'ts'], 'HLS on: 5 schemas')
  t.match(five.find((r) => r.body.schema === 'hls')?.body, { originTypeStr: 'rtsp_push', isRecordingHLS: true })
})

t.test('the on_publish reply may turn schemas off and set continue_push_ms; stream_changed_schemas filters the hook', async (t) => {
  const { sim, hooks } = await setup(t, { config: { 'hook.stream_changed_schemas': 'rtsp/rtmp' } })
  hooks.reply((r) => r.hook === 'on_publish' ? { body: '{"code":0,"enable_ts":false,"enable_fmp4":0,"enable_rtsp":null,"continue_push_ms":0}' } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(sim.schemas('live', 'cam1'), ['rtmp', 'rtsp'])
  await waitFor(() => hooks.received.filter((r) => changed(r, true)).length === 2, 5000, '2 registrations')
  sim.crash(res.id)
  t.same(sim.schemas('live', 'cam1'), [], 'continue_push_ms 0: a crash unregisters at once')
  await waitFor(() => hooks.received.filter((r) => changed(r, false)).length === 2, 5000, '2 unregistrations')

  const all = await setup(t, { config: { 'hook.stream_changed_schemas': '' } })
  all.hooks.reply((r) => r.hook === 'on_publish' ? { body: '{"code":0,"continue_push_ms":"200"}' } : {})
  const res2 = await all.sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(() => all.hooks.received.filter((r) => changed(r, true)).length === 4, 5000, '4 registrations')
  all.sim.crash(res2.id, 'reset')
  t.same(all.sim.schemas('live', 'cam1').length, 4, 'continue_push_ms from a string: the source stays')
  await waitFor(() => all.sim.schemas('live', 'cam1').length === 0, 5000, 'unregistered after 200 ms')
})

t.test('a second publisher is refused while the first is live, after its on_publish; accepted once the first is kicked and gone', async (t) => {
  const { sim, hooks } = await setup(t, { flowThresholdKB: 0 })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([second.ok, second.reason], [false, 'NetStream.Publish.BadName: Already publishing.'])
  t.equal(hooks.of('on_publish').length, 2, 'the refused newcomer\'s on_publish was sent and accepted first')
  const rtsp = await sim.publish({ app: 'live', stream: 'cam1', schema: 'rtsp' })
  t.equal(rtsp.reason, '406 Not Acceptable: Already publishing.', 'RTSP ANNOUNCE on an RTMP stream')

  const kick = await api(sim, 'kick_session', { id: first.id })
  t.same(kick.json, { code: 0 })
  await waitFor(() => hooks.received.filter((r) => changed(r, false)).length === 4, 5000, '4 unregistrations')
  const third = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([third.ok, third.continued], [true, false])
  t.equal(sim.owner('live', 'cam1'), third.id)
  t.match(sim.session(first.id), { state: 'ended', kicked: true, endReason: 'kick_session' })
  t.ok(sim.kicks.includes(first.id))
  const flow = hooks.of('on_flow_report').find((r) => r.body.id === first.id)
  t.match(flow?.body, { player: false, schema: 'rtmp', app: 'live', stream: 'cam1', protocol: 'rtmp' })
})

t.test('a frozen publisher keeps the stream until keepAliveSecond, then a newcomer continues it', async (t) => {
  const { sim, hooks } = await setup(t, { keepAliveSecond: 0.6, sessionCheckMs: 50, continuePushMs: 5000 })
  // taken before the publish: the freeze starts at or after it
  const frozenAt = Date.now()
  const first = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const attempts: boolean[] = []
  const accepted = await waitFor(async () => {
    const r = await sim.publish({ app: 'live', stream: 'cam1' })
    attempts.push(r.ok)
    return r.ok && r
  }, 5000, 'a newcomer accepted')
  t.ok(Date.now() - frozenAt >= 600, 'not before keepAliveSecond')
  t.ok(attempts.length > 1 && attempts[0] === false, 'refused at first')
  t.equal(accepted.continued, true, 'the timed-out source is continued')
  t.match(sim.session(first.id), { state: 'ended', kicked: false, endReason: 'recv data from rtmp pusher timeout' })
  t.equal(hooks.received.filter((r) => changed(r, false)).length, 0, 'no unregistration')
  t.equal(sim.owner('live', 'cam1'), accepted.id)
})

t.test('a publisher stalled while live is dropped keepAliveSecond later (SRT: srt.timeoutSec)', async (t) => {
  const { sim } = await setup(t, { keepAliveSecond: 0.3, sessionCheckMs: 50, config: { 'srt.timeoutSec': '0.2', 'rtc.timeoutSec': '0.2' } })
  // an idle HTTP connection to the API is a session too; the manager leaves it alone
  const idle = net.connect(Number(new URL(sim.apiUrl).port), '127.0.0.1')
  t.teardown(() => idle.destroy())
  await new Promise((resolve) => idle.once('connect', resolve))
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  sim.stall(res.id)
  sim.stall(res.id)
  const rtsp = await sim.publish({ app: 'live', stream: 'cam2', schema: 'rtsp', stalled: true })
  const srt = await sim.publish({ app: 'live', stream: 'cam3', schema: 'srt', stalled: true })
  const rtc = await sim.publish({ app: 'live', stream: 'cam4', schema: 'rtc', stalled: true })
  await waitFor(() => [res, rtsp, srt, rtc].every((r) => sim.session(r.id)?.state === 'ended'), 5000, 'dropped')
  t.same([res, rtsp, srt, rtc].map((r) => sim.session(r.id)?.endReason), ['recv data from rtmp pusher timeout', 'pusher session timeout', 'srt timeout', 'webrtc timeout'])
  t.equal(idle.destroyed, false, 'the idle HTTP connection stays')
  t.throws(() => sim.stall(res.id), /no live publisher/)
  t.throws(() => sim.stop('nope'), /no live publisher/)
})

t.test('a crashed publisher\'s source is kept for continue_push_ms and a reconnect continues it', async (t) => {
  const { sim, hooks } = await setup(t, { continuePushMs: 5000 })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(() => hooks.received.filter((r) => changed(r, true)).length === 4, 5000, '4 registrations')
  const player = await sim.play({ app: 'live', stream: 'cam1' })
  t.equal(player.ok, true)
  sim.crash(first.id)
  t.equal(sim.owner('live', 'cam1'), undefined, 'ownership is free')
  t.same(sim.schemas('live', 'cam1').length, 4, 'the source is still there')
  const lingering = await api(sim, 'getMediaList', { schema: 'rtmp' })
  t.match(lingering.json.data, [{ originSock: null, originType: 0, originTypeStr: 'unknown', originUrl: 'rtmp://__defaultVhost__/live/cam1' }])
  const again = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([again.ok, again.continued], [true, true])
  t.equal(sim.owner('live', 'cam1'), again.id)
  t.equal(hooks.received.filter((r) => changed(r, false)).length, 0, 'no unregister')
  t.equal(hooks.received.filter((r) => changed(r, true)).length, 4, 'no second register')
  t.match(sim.session(player.id), { state: 'live', kicked: false }, 'players kept')
  const list = await api(sim, 'getMediaList', { schema: 'rtmp' })
  t.match(list.json.data, [{ originSock: { identifier: again.id }, readerCount: 1, totalReaderCount: 1 }])
})

t.test('a crashed publisher\'s source unregisters after continue_push_ms and cannot be closed meanwhile', async (t) => {
  const { sim, hooks } = await setup(t, { continuePushMs: 400 })
  const first = await sim.publish({ app: 'live', stream: 'cam1', schema: 'rtsp' })
  sim.crash(first.id, 'reset')
  const closing = await api(sim, 'close_stream', { schema: 'rtsp', vhost: DEFAULT_VHOST, app: 'live', stream: 'cam1', force: 1 })
  t.same(closing.json, { code: -1, msg: 'close failed', result: -1 }, 'no listener: close() is false')
  const many = await api(sim, 'close_streams', { app: 'live', force: 1 })
  t.same(many.json, { code: 0, count_hit: 4, count_closed: 0 })
  t.equal(sim.schemas('live', 'cam1').length, 4)
  const rtmp = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(rtmp.ok, false, 'an RTMP publisher cannot take over an RTSP source')
  const gone = await hooks.waitFor((r) => changed(r, false), 3000)
  t.ok(gone)
  await waitFor(() => hooks.received.filter((r) => changed(r, false)).length === 4, 5000, '4 unregistrations')
  t.same(sim.schemas('live', 'cam1'), [])
})

t.test('WebRTC continues an RTSP source; SRT never continues', async (t) => {
  const { sim } = await setup(t, { continuePushMs: 5000 })
  const rtsp = await sim.publish({ app: 'live', stream: 'a', schema: 'rtsp' })
  sim.crash(rtsp.id)
  const rtc = await sim.publish({ app: 'live', stream: 'a', schema: 'rtc' })
  t.same([rtc.ok, rtc.continued], [true, true])
  const srt = await sim.publish({ app: 'live', stream: 'b', schema: 'srt' })
  t.equal(srt.ok, true)
  sim.crash(srt.id)
  const srt2 = await sim.publish({ app: 'live', stream: 'b', schema: 'srt' })
  t.same([srt2.ok, srt2.reason], [false, 'NetStream.Publish.BadName: Already publishing.'])
  const list = await api(sim, 'getMediaList', { stream: 'a', schema: 'rtsp' })
  t.match(list.json.data, [{ originTypeStr: 'rtc_push', originSock: { identifier: rtc.id, local_port: 8000 } }])
})

t.test('a clean stop unregisters at once, once per schema, then on_flow_report', async (t) => {
  const { sim, hooks } = await setup(t, { flowThresholdKB: 1, bytesPerSecond: 1_000_000 })
  const res = await sim.publish({ app: 'live', stream: 'cam1', params: 'token=1' })
  await waitFor(() => hooks.received.filter((r) => changed(r, true)).length === 4, 5000, '4 registrations')
  await waitFor(() => Date.now() - (sim.calls('on_publish')[0]?.startedAt ?? 0) > 50, 5000, 'some bytes')
  sim.stop(res.id)
  t.same(sim.schemas('live', 'cam1'), [], 'gone at once')
  const offs = await waitFor(() => hooks.received.filter((r) => changed(r, false)).length === 4 && hooks.received.filter((r) => changed(r, false)), 5000, '4 unregistrations')
  for (const r of offs) {
    t.same(Object.keys(r.body).sort(), ['app', 'hook_index', 'mediaServerId', 'params', 'regist', 'schema', 'stream', 'vhost'], 'only the tuple')
    t.match(r.body, { regist: false, vhost: DEFAULT_VHOST, app: 'live', stream: 'cam1', params: 'token=1' })
  }
  t.same(offs.map((r) => r.body.schema).sort(), ['fmp4', 'rtmp', 'rtsp', 'ts'])
  const flow = await hooks.waitFor((r) => r.hook === 'on_flow_report')
  t.match(flow.body, { id: res.id, player: false, params: 'token=1', ip: '127.0.0.1' })
  t.ok(flow.body.totalBytes > 1024)
  t.type(flow.body.duration, 'number')
  t.ok(Math.min(...offs.map((r) => r.body.hook_index)) < flow.body.hook_index, 'deleteStream drops the source before onError reports the flow')
})

t.test('notifications are concurrent: delayed delivery makes unregistrations arrive out of hook_index order', async (t) => {
  // emitted rtmp, rtsp, ts, fmp4: the later the index, the shorter the delay
  const delays: Record<string, number> = { rtmp: 240, rtsp: 160, ts: 80, fmp4: 0 }
  const { sim, hooks } = await setup(t, { hookDelayMs: (hook, body) => hook === 'on_stream_changed' && body.regist === false ? delays[body.schema as string] as number : 0 })
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  sim.stop(res.id)
  const offs = await waitFor(() => hooks.received.filter((r) => changed(r, false)).length === 4 && hooks.received.filter((r) => changed(r, false)), 5000, '4 unregistrations')
  const indexes = offs.map((r) => r.body.hook_index as number)
  t.same(indexes, [...indexes].sort((a, b) => b - a), 'arrival order is the reverse of hook_index order')
  t.same(offs.map((r) => r.body.schema), ['fmp4', 'ts', 'rtsp', 'rtmp'])

  const jitter = await setup(t, { hookJitterMs: 30 })
  t.equal((await jitter.sim.publish({ app: 'live', stream: 'x' })).ok, true)
})

t.test('totalBytes grows while media flows and stops when stalled; bytesSpeed is sampled as ZLToolKit does', async (t) => {
  let now = 1_800_000_000_000
  const { sim } = await setup(t, { now: () => now, bytesPerSecond: 100_000, sessionCheckMs: 60_000, hooks: [] })
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  const entry = async (): Promise<Record<string, any>> => (await api(sim, 'getMediaList', { schema: 'rtmp' })).json.data[0]
  now += 50
  t.match(await entry(), { totalBytes: 5000, bytesSpeed: 0, currentStamp: 50, aliveSecond: 0 }, 'within 100 ms: the last value (0)')
  now += 450
  t.match(await entry(), { totalBytes: 50_000, bytesSpeed: 0 }, 'before the first second: 0')
  now += 1000
  t.match(await entry(), { totalBytes: 150_000, bytesSpeed: 100_000, aliveSecond: 1 }, 'first sample: bytes over the elapsed time')
  now += 50
  t.match(await entry(), { bytesSpeed: 100_000 }, 'within 100 ms: cached')
  sim.stall(res.id)
  now += 1000
  t.match(await entry(), { totalBytes: 155_000, bytesSpeed: 80_000 }, 'stalled: an EMA over 5 s decays (100000 + (5000*1000 - 100000*1050)/5000)')
  now += 6000
  t.match(await entry(), { totalBytes: 155_000, bytesSpeed: 0 }, 'a gap of 5 s or more: bytes over the gap')
  const other = (await api(sim, 'getMediaList', { schema: 'ts' })).json.data[0]
  t.equal(other.bytesSpeed, 18_128, 'each schema samples on its own (155000 bytes over 8.55 s)')
  t.equal(other.tracks[0].loss, undefined, 'no loss in API answers (not the owner thread)')
  t.equal(other.createStamp, 1_800_000_000)
})

t.test('a publisher closed while its on_publish is pending stays closed; slow hooks hit handshakeSecond', async (t) => {
  const { sim, hooks } = await setup(t, { handshakeSecond: 0.3, sessionCheckMs: 50 })
  hooks.reply((r) => r.hook === 'on_publish' || r.hook === 'on_play' ? { hang: true } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([res.ok, res.reason], [false, 'illegal connection'])
  t.same(sim.schemas('live', 'cam1'), [])
  const play = await sim.play({ app: 'live', stream: 'cam1' })
  t.same([play.ok, play.reason], [false, 'illegal connection'])
  const r2 = sim.play({ app: 'live', stream: 'x', schema: 'rtsp' })
  t.equal((await r2).ok, false)
})

t.test('a publisher kicked while its on_publish is pending is not let in when the hook answers', async (t) => {
  const { sim, hooks } = await setup(t)
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await gate
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const pub = await hooks.waitFor((r) => r.hook === 'on_publish')
  const sessions = await api(sim, 'getAllSession')
  t.ok(sessions.json.data.some((s: any) => s.id === pub.body.id && s.typeid === 'mediakit::RtmpSession'), 'listed while authorising')
  t.same((await api(sim, 'kick_session', { id: pub.body.id })).json, { code: 0 })
  await waitFor(() => sim.session(pub.body.id)?.state === 'ended', 5000, 'closed')
  release()
  const res = await pending
  t.same([res.ok, res.reason], [false, 'kick_session'])
  t.same(sim.schemas('live', 'cam1'), [])
})

t.test('vhosts count only with general.enableVhost', async (t) => {
  const { sim, hooks } = await setup(t, { config: { 'general.enableVhost': '1' } })
  await sim.publish({ app: 'live', stream: 'cam1', vhost: 'v1.example' })
  const pub = await hooks.waitFor((r) => r.hook === 'on_publish')
  t.equal(pub.headers['x-vhost'], 'v1.example')
  t.same(sim.schemas('live', 'cam1', 'v1.example').length, 4)
  await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(sim.schemas('live', 'cam1').length, 4, 'no vhost: __defaultVhost__, another stream')
  const plain = await setup(t)
  await plain.sim.publish({ app: 'live', stream: 'cam1', vhost: 'v1.example' })
  t.equal(plain.sim.schemas('live', 'cam1').length, 4, 'without it: __defaultVhost__')
})

// ------------------------------------------------------------------ players

t.test('a player is accepted by on_play, listed as a session, counted as a reader, and never kicked', async (t) => {
  const { sim, hooks } = await setup(t)
  await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', params: 'x=1' })
  t.same([p.ok, p.reason], [true, ''])
  const onPlay = hooks.of('on_play')[0]
  t.same(Object.keys(onPlay?.body ?? {}).sort(), ['app', 'hook_index', 'id', 'ip', 'mediaServerId', 'params', 'port', 'protocol', 'schema', 'stream', 'vhost'])
  t.match(onPlay?.body, { id: p.id, schema: 'rtsp', protocol: 'rtsp', params: 'x=1' })
  const sessions = await api(sim, 'getAllSession')
  t.match(sessions.json.data.find((s: any) => s.id === p.id), { typeid: 'mediakit::RtspSession', local_port: 554, identifier: p.id })
  const list = await api(sim, 'getMediaList', { schema: 'rtsp' })
  t.match(list.json.data, [{ readerCount: 1, totalReaderCount: 1 }])
  t.match(sim.session(p.id), { kind: 'player', state: 'live', kicked: false })
  t.same(sim.kicks, [])
  sim.stopPlayer(p.id)
  t.throws(() => sim.stopPlayer(p.id), /no live player/)
  t.equal(sim.session('nope'), undefined)
})

t.test('a refused on_play refuses the player', async (t) => {
  const { sim, hooks } = await setup(t)
  await sim.publish({ app: 'live', stream: 'cam1' })
  hooks.reply((r) => r.hook === 'on_play' ? { body: '{"code":-1,"msg":"no"}' } : {})
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  t.same([p.ok, p.reason], [false, 'NetStream.Play.BadAuth: [auth failed]: code:-1 msg:"no"'])
  const r = await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp' })
  t.match(r.reason, /^401 Unauthorized: /)
})

t.test('a player of a missing stream sends on_stream_not_found and waits for the stream', async (t) => {
  const { sim, hooks } = await setup(t)
  const waiting = sim.play({ app: 'live', stream: 'cam1' })
  const nf = await hooks.waitFor((r) => r.hook === 'on_stream_not_found')
  t.match(nf.body, { app: 'live', stream: 'cam1', schema: 'rtmp', protocol: 'rtmp' })
  t.ok(nf.body.hook_index > (hooks.of('on_play')[0]?.body.hook_index as number), 'after on_play')
  await sim.publish({ app: 'live', stream: 'other' })
  await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await waiting
  t.equal(p.ok, true)

  const ts = await setup(t, { maxStreamWaitMs: 200 })
  const late = await ts.sim.play({ app: 'live', stream: 'nosuch', schema: 'ts' })
  t.same([late.ok, late.reason], [false, 'NetStream.Play.StreamNotFound: no such stream'], 'maxStreamWaitMS later')
  const rtspLate = await ts.sim.play({ app: 'live', stream: 'nosuch', schema: 'rtsp' })
  t.match(rtspLate.reason, /^404 /)
})

t.test('on_stream_not_found answered with close:true drops the player at once', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_stream_not_found' ? { body: '{"code":0,"close":true}' } : {})
  const started = Date.now()
  const p = await sim.play({ app: 'live', stream: 'nosuch' })
  t.equal(p.ok, false)
  t.ok(Date.now() - started < 5000)
})

t.test('RTSP players go through on_rtsp_realm and on_rtsp_auth', async (t) => {
  const { sim, hooks } = await setup(t)
  await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp' })).ok, true, 'realm "" (default reply): no RTSP auth')
  hooks.reply((r) => {
    if (r.hook === 'on_rtsp_realm') return { body: '{"code":0,"realm":"zlm"}' }
    if (r.hook === 'on_rtsp_auth') return { body: '{"code":0,"encrypted":false,"passwd":"pw"}' }
    return {}
  })
  t.equal((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', rtspAuth: { user: 'u', password: 'pw' } })).ok, true)
  const auth = hooks.of('on_rtsp_auth')[0]
  t.match(auth?.body, { user_name: 'u', realm: 'zlm', must_no_encrypt: false, schema: 'rtsp' })
  t.equal((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', rtspAuth: { user: 'u', password: 'bad' } })).reason, '401 Unauthorized: wrong password')
  hooks.reply((r) => r.hook === 'on_rtsp_realm' ? { body: '{"code":0,"realm":"zlm"}' } : {})
  t.equal((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', rtspAuth: { user: 'u', password: 'pw' } })).reason, '401 Unauthorized: wrong password', 'a reply without passwd means an empty password')
  hooks.reply((r) => {
    if (r.hook === 'on_rtsp_realm') return { body: '{"code":0,"realm":"zlm"}' }
    if (r.hook === 'on_rtsp_auth') return { body: '{"code":0,"encrypted":false,"passwd":"pw"}' }
    return {}
  })
  t.equal((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp' })).reason, '401 Unauthorized: no credentials')
  hooks.reply((r) => r.hook === 'on_rtsp_auth' ? { body: '{"code":1}' } : r.hook === 'on_rtsp_realm' ? { body: '{"code":0,"realm":"zlm"}' } : {})
  t.match((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', rtspAuth: { user: 'u', password: 'pw' } })).reason, /^401 Unauthorized: \[auth failed\]/)
  hooks.reply((r) => r.hook === 'on_rtsp_realm' ? { body: '{"code":1}' } : {})
  const n = hooks.of('on_rtsp_auth').length
  t.match((await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', rtspAuth: { user: 'u', password: 'pw' } })).reason, /^401 Unauthorized: \[auth failed\]/, 'realm hook failed: unAuthedRealm')
  t.equal(hooks.of('on_rtsp_auth').length, n, 'and no on_rtsp_auth is sent')
})

t.test('a player closed while its hooks are pending is not let in', async (t) => {
  const { sim, hooks } = await setup(t, { handshakeSecond: 0.3, sessionCheckMs: 50 })
  await sim.publish({ app: 'live', stream: 'cam1' })
  hooks.reply((r) => r.hook === 'on_rtsp_realm' ? { body: '{"code":0,"realm":"zlm"}' } : r.hook === 'on_rtsp_auth' ? { hang: true } : {})
  const a = await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp', rtspAuth: { user: 'u', password: 'pw' } })
  t.same([a.ok, a.reason], [false, 'illegal connection'])
  hooks.reply((r) => r.hook === 'on_rtsp_realm' ? { hang: true } : {})
  const b = await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp' })
  t.same([b.ok, b.reason], [false, 'illegal connection'])
  hooks.reply(() => ({}))
  const c = await sim.play({ app: 'live', stream: 'missing' })
  t.same([c.ok, c.reason], [false, 'illegal connection'], 'waiting for the stream past handshakeSecond')
})

t.test('players are detached, not kicked, when the stream goes; close_stream keeps a watched stream without force', async (t) => {
  const { sim, hooks } = await setup(t, { flowThresholdKB: 0 })
  await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  const args = { schema: 'rtmp', vhost: DEFAULT_VHOST, app: 'live', stream: 'cam1' }
  t.same((await api(sim, 'close_stream', args)).json, { code: -1, msg: 'close failed', result: -1 }, 'viewers: not closed')
  t.same(sim.schemas('live', 'cam1').length, 4)
  t.same((await api(sim, 'close_streams', { stream: 'cam1' })).json, { code: 0, count_hit: 4, count_closed: 0 })
  t.same((await api(sim, 'close_stream', { ...args, force: 1 })).json, { code: 0, msg: 'success', result: 0 })
  t.same(sim.schemas('live', 'cam1'), [], 'closed before the answer')
  t.match(sim.session(p.id), { state: 'ended', kicked: false, endReason: 'ring buffer detached' })
  t.same(sim.kicks, [])
  await hooks.waitFor((r) => r.hook === 'on_flow_report' && r.body.player === true && r.body.id === p.id)
})

t.test('on_stream_none_reader after the last reader left; {close:true} closes the stream', async (t) => {
  const { sim, hooks } = await setup(t, { streamNoneReaderDelayMs: 150 })
  await sim.publish({ app: 'live', stream: 'cam1' })
  const first = await hooks.waitFor((r) => r.hook === 'on_stream_none_reader')
  t.match(first.body, { schema: 'rtmp', app: 'live', stream: 'cam1' }, 'also for a stream nobody watched yet')
  t.same(Object.keys(first.body).sort(), ['app', 'hook_index', 'mediaServerId', 'params', 'schema', 'stream', 'vhost'])
  t.equal(sim.schemas('live', 'cam1').length, 4, '{code:0} alone keeps it')
  const p = await sim.play({ app: 'live', stream: 'cam1', schema: 'fmp4' })
  hooks.reply((r) => r.hook === 'on_stream_none_reader' ? { body: '{"code":0,"close":true}' } : {})
  sim.stopPlayer(p.id)
  const second = await hooks.waitFor((r) => r.hook === 'on_stream_none_reader' && r.body.schema === 'fmp4')
  t.ok(second)
  await waitFor(() => sim.schemas('live', 'cam1').length === 0, 5000, 'closed')
})

// ------------------------------------------------------------------ other hooks

t.test('on_record_mp4 carries the Recorder fields; a recording stream reports its file when it stops', async (t) => {
  const { sim, hooks } = await setup(t)
  t.equal(await sim.recordMp4('live', 'cam1', { startTime: 1_700_000_000, timeLen: 10.3, fileSize: 1234 }), true)
  const r = await hooks.waitFor((x) => x.hook === 'on_record_mp4')
  t.same(Object.keys(r.body).sort(), ['app', 'file_name', 'file_path', 'file_size', 'folder', 'hook_index', 'mediaServerId', 'params', 'start_time', 'stream', 'time_len', 'url', 'vhost'])
  t.match(r.body, {
    start_time: 1_700_000_000,
    file_size: 1234,
    file_name: '22-13-20-0.mp4',
    folder: '/opt/media/bin/www/record/live/cam1/2023-11-14/',
    file_path: '/opt/media/bin/www/record/live/cam1/2023-11-14/22-13-20-0.mp4',
    url: 'record/live/cam1/2023-11-14/22-13-20-0.mp4',
    vhost: DEFAULT_VHOST
  })
  t.match(r.raw, /"time_len" : 10\.300000190734863,/, 'time_len is a C float')
  t.equal(await sim.recordTs('live', 'cam1'), true)
  const ts = await hooks.waitFor((x) => x.hook === 'on_record_ts')
  t.match(ts.body.file_name, /\.ts$/)
  t.match(ts.body.file_path, /\.ts$/)
  t.match(ts.body.url, /\.ts$/)
  t.match(ts.raw, /"time_len" : 10\.5,/)

  hooks.reply((x) => x.hook === 'on_publish' ? { body: '{"code":0,"enable_mp4":true}' } : {})
  const res = await sim.publish({ app: 'live', stream: 'rec' })
  t.equal((await api(sim, 'getMediaList', { stream: 'rec', schema: 'rtmp' })).json.data[0].isRecordingMP4, true)
  sim.stop(res.id)
  const file = await hooks.waitFor((x) => x.hook === 'on_record_mp4' && x.body.stream === 'rec')
  t.match(file.body, { app: 'live', stream: 'rec' })
})

t.test('on_server_keepalive every alive_interval and on demand; on_server_exited; on_shell_login; on_http_access', async (t) => {
  const { sim, hooks } = await setup(t, { aliveIntervalSec: 0.1 })
  await sim.publish({ app: 'live', stream: 'cam1' })
  const ka = await hooks.waitFor((r) => r.hook === 'on_server_keepalive' && r.body.data.MediaSource === 4)
  t.match(ka.body.data, { MediaSource: 4, MultiMediaSourceMuxer: 1, TcpSession: 1 })
  t.equal(ka.headers['x-vhost'], undefined)
  t.equal(await sim.serverExited(), true)
  const exited = hooks.of('on_server_exited')[0]
  t.same(Object.keys(exited?.body ?? {}).sort(), ['hook_index', 'mediaServerId'])

  const login = await sim.shellLogin('admin', 'pw')
  t.equal(login.ok, true)
  t.match(hooks.of('on_shell_login')[0]?.body, { user_name: 'admin', passwd: 'pw', ip: '127.0.0.1', id: login.id })
  hooks.reply((r) => r.hook === 'on_shell_login' ? { status: 500 } : r.hook === 'on_http_access' ? { body: '{"code":0,"err":"","path":"","second":600}' } : {})
  t.equal((await sim.shellLogin('admin', 'pw')).ok, false, 'a failure refuses')

  const access = await sim.httpAccess('/live/cam1.live.flv', { params: 'token=1', headers: { 'User-Agent': 'curl' } })
  t.same([access.ok, access.second], [true, 600])
  t.match(hooks.of('on_http_access')[0]?.body, { path: '/live/cam1.live.flv', is_dir: false, params: 'token=1', 'header.User-Agent': 'curl' })
  hooks.reply((r) => r.hook === 'on_http_access' ? { body: '{"code":0,"err":"denied","second":0}' } : {})
  t.same((await sim.httpAccess('/x', { isDir: true })).reason, 'denied')
  hooks.reply((r) => r.hook === 'on_http_access' ? { body: '{"code":9}' } : {})
  t.same((await sim.httpAccess('/y')).ok, false)
})

t.test('waitForHook resolves on a later call, fails at its deadline and when the simulator closes', async (t) => {
  const { sim } = await setup(t)
  const later = sim.waitForHook((c) => c.hook === 'on_publish')
  await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal((await later).hook, 'on_publish')
  t.equal((await sim.waitForHook((c) => c.hook === 'on_publish')).hook, 'on_publish', 'an earlier call')
  await t.rejects(sim.waitForHook((c) => c.hook === 'on_play', 50), /no matching hook call within 50 ms/)
  const pending = sim.waitForHook((c) => c.hook === 'on_play')
  await sim.close()
  await t.rejects(pending, /simulator closed/)
  await sim.close()
  t.same(ZLM_HOOKS.length, 17)
})

t.test('closing the simulator ends pending hooks, retries and player waits', async (t) => {
  const hooks = await hooksServer(t)
  hooks.reply((r) => r.hook === 'on_publish' ? { hang: true } : r.hook === 'on_play' ? { status: 500 } : {})
  const sim = await ZlmSimulator.start({ hookBase: hooks.base, aliveIntervalSec: 0, retryDelayMs: 10_000, hooks: ['on_publish', 'on_play'] })
  const pub = sim.publish({ app: 'live', stream: 'a' })
  const play = sim.play({ app: 'live', stream: 'b' })
  await hooks.waitFor((r) => r.hook === 'on_play')
  await waitFor(() => sim.calls('on_play').length === 1, 5000, 'the first on_play failed')
  await sim.close()
  t.equal((await pub).ok, false)
  t.equal((await play).ok, false)
  const late = await ZlmSimulator.start({ hookBase: hooks.base, hooks: ['on_stream_not_found'] })
  const waiting = late.play({ app: 'live', stream: 'c' })
  await hooks.waitFor((r) => r.hook === 'on_stream_not_found' && r.body.stream === 'c')
  const starting = late.play({ app: 'live', stream: 'd' })
  await late.close()
  t.match(await waiting, { ok: false, reason: 'NetStream.Play.StreamNotFound: no such stream' })
  t.match(await starting, { ok: false, reason: 'NetStream.Play.StreamNotFound: no such stream' })
  t.equal(late.startRtpSender(30000).last(), 'no-server', 'nothing runs after close')
})
