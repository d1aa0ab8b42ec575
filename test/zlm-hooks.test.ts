import t from 'tap'
import { Codes } from '../src/errors.js'
import { postHook, waitFor } from './fixtures/app.js'
import { startZlmWorld, ZLM_TEST_SECRET } from './fixtures/zlm-app.js'
import { ZLM_HOOKS } from './fixtures/zlm-sim.js'

/**
 * ZLMediaKit's reply contract for every hook (docs/zlm-protocol.md section 1): HTTP 200 and an integer
 * code; refusals only for on_publish, on_play and the authorising hooks; unknown hooks get 0. The
 * simulator judges each answer as ZLMediaKit does (hookVerdict).
 */

const TOKEN = 'hook-token-0123456789'

t.test('every hook is answered HTTP 200 with an integer code, as ZLMediaKit expects', async (t) => {
  const { sim, logs } = await startZlmWorld(t, { DVR_MIN_BYTES: '1' }, {
    flowThresholdKB: 0,
    streamNoneReaderDelayMs: 50,
    maxStreamWaitMs: 300,
    rtpTimeoutSec: 0.2,
    rtpCheckMs: 50
  })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(a.ok)
  await sim.waitForHook((c) => c.hook === 'on_stream_none_reader')
  t.ok(sim.owner('live', 'cam1'), 'on_stream_none_reader answered close:false: the camera\'s stream stays')
  const viewer = await sim.play({ app: 'live', stream: 'cam1', schema: 'rtsp' })
  t.ok(viewer.ok, 'on_rtsp_realm gave no realm: an RTSP player is authorised by on_play alone')
  sim.stopPlayer(viewer.id)
  const missing = await sim.play({ app: 'live', stream: 'nosuch' })
  t.match(missing, { ok: false, reason: /StreamNotFound/ }, 'on_stream_not_found: the player waited maxStreamWaitMS')
  const shell = await sim.shellLogin('admin', 'admin', '10.0.0.8')
  t.match(shell, { ok: false, reason: /\[auth failed\]: code:1017/ }, 'shell logins are refused')
  const access = await sim.httpAccess('/www/record/live/cam1/', { isDir: true, ip: '10.0.0.8' })
  t.same([access.ok, access.second], [true, 600], 'the file server is allowed, cached 10 minutes')
  t.ok(await sim.recordMp4('live', 'cam1'))
  t.ok(await sim.recordTs('live', 'cam1'))
  sim.serverKeepalive()
  t.ok(await sim.serverExited())
  sim.stop(a.id)
  const res = await fetch(`${sim.apiUrl}/index/api/openRtpServer?secret=${ZLM_TEST_SECRET}&port=0&stream_id=gb1`)
  t.equal((await res.json() as { code: number }).code, 0)
  await sim.waitForHook((c) => c.hook === 'on_rtp_server_timeout')
  await sim.waitForHook((c) => c.hook === 'on_flow_report')
  const rtspAuth = await postHook(sim.config('hook.on_rtsp_auth')!.replace(/\/on_rtsp_auth$/, ''), 'on_rtsp_auth', { mediaServerId: 'zlm-test-1', hook_index: 1, realm: 'r', user_name: 'u', must_no_encrypt: false })
  t.same(rtspAuth, { status: 200, reply: { code: Codes.ZLM_NOT_AUTHORISED, msg: 'srs-hooks gives no RTSP realm: RTSP players are authorised by on_play (PLAY_AUTH)' }, ms: rtspAuth.ms })
  const sendRtp = await postHook(sim.config('hook.on_publish')!.replace(/\/on_publish$/, ''), 'on_send_rtp_stopped', { mediaServerId: 'zlm-test-1', hook_index: 2, app: 'live', stream: 'cam1', vhost: '__defaultVhost__', ssrc: '1', originType: 1 })
  t.same(sendRtp.reply, { code: 0, msg: null })
  await waitFor(() => logs.find((l) => l.action === 'on_server_keepalive'), 5000, 'the keepalive line')
  const seen = new Set(sim.hookCalls.map((c) => c.hook))
  for (const hook of ZLM_HOOKS.filter((h) => !['on_rtsp_auth', 'on_send_rtp_stopped', 'on_server_started'].includes(h))) {
    t.ok(seen.has(hook), `${hook} was sent`)
  }
  for (const c of sim.hookCalls) {
    t.equal(c.status, 200, `${c.hook} #${c.hookIndex}: HTTP 200`)
    t.not(c.outcome, 'failed', `${c.hook} #${c.hookIndex}: an integer code (${c.err})`)
    if (c.outcome === 'refused') t.ok(['on_shell_login'].includes(c.hook), `${c.hook} is one that may refuse`)
  }
  t.match(sim.calls('on_stream_none_reader')[0]!.reply, { code: 0, close: false })
  t.match(sim.calls('on_stream_not_found')[0]!.reply, { code: 0, close: false })
  t.match(sim.calls('on_rtsp_realm')[0]!.reply, { code: 0, realm: '' })
  const keepalive = logs.find((l) => l.action === 'on_server_keepalive')!
  t.equal(keepalive.level, 20, 'the keepalive is logged at debug')
  const exited = logs.find((l) => l.action === 'on_server_exited')!
  t.match(exited, { level: 30, kind: 'zlm', outcome: 'noted', server: 'zlm-test-1', status: 200 })
  t.type(exited.hookIndex, 'number', 'the log line has the hook_index')
})

t.test('a hook this server does not know gets 0; a path that is no hook gets 404', async (t) => {
  const { zlmHookBase, logs } = await startZlmWorld(t)
  const r = await postHook(zlmHookBase, 'on_something_new', { mediaServerId: 'zlm-test-1', hook_index: 5, whatever: [1, 2] })
  t.same([r.status, r.reply], [200, { code: 0, msg: null }])
  t.match(await logs.wait((l) => l.action === 'on_something_new'), { outcome: 'unknown-hook', code: 0 })
  for (const path of ['not_a_hook', 'on_a/b', 'on_UPPER']) {
    const res = await fetch(`${zlmHookBase}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"mediaServerId":"x"}' })
    t.equal(res.status, 404, path)
    t.equal((await res.json() as { code: number }).code, Codes.NOT_FOUND)
  }
})

t.test('bad input gets a 4xx with a code and a message, and harms nothing', async (t) => {
  const { sim, zlmHookBase, app } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const base = { mediaServerId: 'zlm-test-1', app: 'live', stream: 'cam1', vhost: '__defaultVhost__' }
  const cases: Array<[string, string, unknown, number]> = [
    ['not JSON', 'on_publish', '{"app":', Codes.INVALID_JSON],
    ['an empty body', 'on_stream_changed', '', Codes.INVALID_JSON],
    ['no mediaServerId', 'on_publish', { ...base, mediaServerId: undefined, id: '1-1' }, Codes.INVALID_BODY],
    ['a numeric id', 'on_publish', { ...base, id: 12 }, Codes.INVALID_BODY],
    ['a string port', 'on_publish', { ...base, id: '1-1', port: '1935' }, Codes.INVALID_BODY],
    ['regist as a string', 'on_stream_changed', { ...base, regist: 'false' }, Codes.INVALID_BODY],
    ['an RTP timeout without stream_id', 'on_rtp_server_timeout', { mediaServerId: 'zlm-test-1', local_port: 30000 }, Codes.INVALID_BODY],
    ['a record without file_path', 'on_record_mp4', { ...base, start_time: 1 }, Codes.INVALID_BODY],
    ['a negative hook_index', 'on_server_keepalive', { mediaServerId: 'zlm-test-1', hook_index: -1 }, Codes.INVALID_BODY],
    ['an array', 'on_play', [1], Codes.INVALID_BODY]
  ]
  for (const [what, hook, body, code] of cases) {
    const r = await postHook(zlmHookBase, hook, body)
    t.equal(r.status, 400, what)
    t.equal(r.reply.code, code, `${what}: code ${code}`)
    t.type(r.reply.msg, 'string')
  }
  t.same(sim.kicks, [])
  t.equal(sim.owner('live', 'cam1'), a.id)
  t.equal((await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.clientId, a.id)
})

t.test('HOOK_TOKEN guards the ZLMediaKit hooks too: a forged call without it is refused with 403 and changes nothing', async (t) => {
  const { sim, zlmHookBase, app } = await startZlmWorld(t, { HOOK_TOKEN: TOKEN }, {}, { hookQuery: `?token=${TOKEN}` })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(a.ok, 'ZLMediaKit, which has the token in its hook URLs, gets through')
  const before = sim.apiCalls.length
  const r = await postHook(zlmHookBase, 'on_publish', { mediaServerId: 'zlm-test-1', app: 'live', stream: 'cam1', vhost: '__defaultVhost__', id: '9-9', ip: '6.6.6.6' })
  t.same([r.status, r.reply.code], [403, Codes.HOOK_TOKEN_INVALID])
  t.equal(sim.apiCalls.length, before, 'ZLMediaKit was not even asked')
  t.same(sim.kicks, [])
  t.equal((await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.clientId, a.id)
})

t.test('on_publish from a ZLMediaKit none of ZLM_API_URL is: FAIL_MODE decides, credentials still count, nobody is evicted', async (t) => {
  for (const failMode of ['open', 'closed'] as const) {
    const { sim, zlmHookBase, logs } = await startZlmWorld(t, { FAIL_MODE: failMode })
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    const body = { mediaServerId: 'zlm-stranger', hook_index: 1, app: 'live', stream: 'cam1', vhost: '__defaultVhost__', id: a.id, ip: '127.0.0.1', originTypeStr: 'rtmp_push' }
    const r = await postHook(zlmHookBase, 'on_publish', body)
    if (failMode === 'open') t.same(r.reply, { code: 0, msg: null }, 'open: allowed')
    else t.match(r.reply, { code: Codes.SRS_API_UNAVAILABLE, msg: /mediaServerId "zlm-stranger" is none of the ZLMediaKit servers in ZLM_API_URL/ }, 'closed: refused')
    t.same(sim.kicks, [])
    t.match(await logs.wait((l) => /none of ZLM_API_URL/.test(l.msg ?? '')), { level: 40, mediaServerId: 'zlm-stranger' })
    const notice = await postHook(zlmHookBase, 'on_stream_changed', { ...body, regist: false })
    t.same(notice.reply, { code: 0, msg: null }, 'the other hooks of a stranger are answered 0 and do nothing')
    const timeout = await postHook(zlmHookBase, 'on_rtp_server_timeout', { mediaServerId: 'zlm-stranger', stream_id: 'gb1' })
    t.same(timeout.reply, { code: 0, msg: null })
  }
})

t.test('on_publish of a ZLMediaKit source that is no push (a pull): its credentials are checked, nothing is taken over', async (t) => {
  const dir = t.testdir({ 'keys.json': JSON.stringify({ 'live/pulled': 'k1' }) })
  const { sim, zlmHookBase } = await startZlmWorld(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: `${dir}/keys.json` })
  const a = await sim.publish({ app: 'live', stream: 'pulled', params: 'key=k1', stalled: true })
  const body = { mediaServerId: 'zlm-test-1', app: 'live', stream: 'pulled', vhost: '__defaultVhost__', id: 'proxy-1', originTypeStr: 'pull' }
  t.same((await postHook(zlmHookBase, 'on_publish', { ...body, params: 'key=k1' })).reply, { code: 0, msg: null })
  t.match((await postHook(zlmHookBase, 'on_publish', body)).reply, { code: Codes.PUBLISH_KEY_MISSING })
  t.same(sim.kicks, [])
  t.equal(sim.owner('live', 'pulled'), a.id)
  // An older ZLMediaKit names no origin: a push (taken over), or RTP by its schema.
  const old = await postHook(zlmHookBase, 'on_publish', { ...body, params: 'key=k1', id: 'x-1', ip: '127.0.0.1', originTypeStr: undefined })
  t.equal(old.reply.code, Codes.PUBLISHER_NOT_VERIFIED, 'a push without originTypeStr goes through the takeover path')
  t.same((await postHook(zlmHookBase, 'on_publish', { ...body, originTypeStr: undefined, schema: 'rtp' })).reply, { code: 0, msg: null })
})

t.test('on_server_started: the secret is never logged; without ZLM_SECRET it is learnt once the API accepts it', async (t) => {
  const { sim, app, logs, zlmHookBase } = await startZlmWorld(t, { ZLM_SECRET: '' }, {}, { discover: false })
  const node = app.zlmServers.nodes[0]!
  t.equal(node.mediaServerId, undefined, 'without a secret the API cannot say who it is')
  const forged = await postHook(zlmHookBase, 'on_server_started', { mediaServerId: 'zlm-test-1', hook_index: 0, 'api.secret': 'guessed-secret-0123456789', 'general.mediaServerId': 'zlm-test-1' })
  t.same(forged.reply, { code: 0, msg: null })
  await logs.wait((l) => /none of ZLM_API_URL answers to with that secret/.test(l.msg ?? ''))
  t.equal(node.learntSecret, undefined, 'a secret the API refuses is not adopted')
  sim.serverStarted()
  await waitFor(() => node.learntSecret === ZLM_TEST_SECRET, 5000, 'the secret learnt')
  t.equal(node.mediaServerId, 'zlm-test-1')
  t.match(await logs.wait((l) => /learnt ZLMediaKit's API secret/.test(l.msg ?? '')), { level: 30, mediaServerId: 'zlm-test-1' })
  t.match(await logs.wait((l) => l.action === 'on_server_started' && l.status === 200 && l.outcome === 'started'), { server: 'zlm-test-1' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([a.ok, b.ok, sim.kicks], [true, true, [a.id]], 'the API works with the learnt secret: a takeover')
  await app.zlm.idle()
  const text = logs.lines.map((l) => JSON.stringify(l)).join('\n')
  t.notOk(text.includes(ZLM_TEST_SECRET), 'the secret never reaches the log')
  t.notOk(text.includes('guessed-secret'), 'nor a forged one')
  t.notOk(text.includes('rtp_proxy.port_range'), 'nor the rest of the configuration')
})

t.test('ZLM_SECRET set but not ZLMediaKit\'s: a warning at on_server_started; the configured secret is kept', async (t) => {
  const { sim, app, logs } = await startZlmWorld(t, { ZLM_SECRET: 'not-the-secret-0123456789' }, {}, { discover: false })
  sim.serverStarted()
  t.match(await logs.wait((l) => /ZLM_SECRET differs from the api.secret/.test(l.msg ?? '')), { level: 40, mediaServerId: 'zlm-test-1' })
  await app.zlm.idle()
  t.equal(app.zlmServers.nodes[0]!.learntSecret, undefined)
  t.notOk(logs.lines.some((l) => JSON.stringify(l).includes(ZLM_TEST_SECRET)))
})

t.test('on_record_mp4: the file is indexed with the recordings, with the server it came from and its start', async (t) => {
  const { sim, url, app } = await startZlmWorld(t)
  t.ok(await sim.recordMp4('live', 'cam1', { startTime: 1_795_000_000, timeLen: 12, fileSize: 4096 }))
  t.ok(await sim.recordMp4('live', 'cam1', { startTime: 1_795_000_000 }), 'the same file again (a retried hook)')
  await app.recordings.idle()
  const res = await fetch(`${url}/admin-api/video/camera/recordings?stream=cam1`)
  const body = await res.json() as { items: Array<Record<string, unknown>> }
  t.equal(body.items.length, 1, 'one recording: the retry is a duplicate')
  t.match(body.items[0], { vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', server_id: 'zlm-test-1', started_at: 1_795_000_000_000, client_id: '', file: /^\/opt\/media\/bin\/www\/record\/live\/cam1\/2026-\d\d-\d\d\/[\d-]+-0\.mp4$/ })
  t.match(sim.calls('on_record_mp4')[1]!.reply, { code: 0 })
})

t.test('on_record_mp4 that cannot be stored is answered 503 (ZLMediaKit retries it)', async (t) => {
  const { sim } = await startZlmWorld(t, {}, { retry: 0 }, {
    deps: {
      recordings: {
        kind: 'test',
        add: async () => { throw new Error('disk full') },
        setFileInfo: async () => {},
        list: async () => ({ items: [], next: null, spooled: 0 }),
        count: async () => 0,
        readiness: async () => ({ ok: true, msg: null }),
        prune: async () => 0,
        spool: () => null,
        close: async () => {}
      }
    }
  })
  t.equal(await sim.recordMp4('live', 'cam1'), false)
  t.match(sim.calls('on_record_mp4')[0], { status: 503, replyBody: /not stored: disk full/ })
})

t.test('sparse bodies: a record without start_time, a notice without vhost, a stranger without credentials', async (t) => {
  const dir = t.testdir({ 'keys.json': JSON.stringify({ 'live/*': 'k1' }) })
  const { zlmHookBase, app, logs } = await startZlmWorld(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: `${dir}/keys.json` })
  const rec = await postHook(zlmHookBase, 'on_record_mp4', { mediaServerId: 'zlm-test-1', vhost: '__defaultVhost__', app: 'live', stream: 'cam9', file_path: '/data/record/live/cam9/a.mp4' })
  t.same(rec.reply, { code: 0, msg: null })
  t.match((await app.recordings.list({ stream: 'cam9', limit: 1 })).items[0], { serverId: 'zlm-test-1', startedAt: null, file: '/data/record/live/cam9/a.mp4' })
  t.same((await postHook(zlmHookBase, 'on_stream_none_reader', { mediaServerId: 'zlm-test-1', app: 'live', stream: 'cam9' })).reply, { code: 0, msg: null, close: false })
  t.match(await logs.wait((l) => l.action === 'on_stream_none_reader'), { stream: '/live/cam9', outcome: 'kept' })
  const stranger = await postHook(zlmHookBase, 'on_publish', { mediaServerId: 'zlm-stranger', vhost: '__defaultVhost__', app: 'live', stream: 'cam9', id: '1-1', ip: '6.6.6.6', originTypeStr: 'rtmp_push' })
  t.match(stranger.reply, { code: Codes.PUBLISH_KEY_MISSING }, 'an unknown server\'s hook still has its credentials checked first')
})

t.test('behind a gateway that strips /admin-api: the hooks at /video/camera/callback/zlm/, the RTP servers at /video/camera/', async (t) => {
  const { sim, url, app } = await startZlmWorld(t)
  sim.setHookBase(`${url}/video/camera/callback/zlm`)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([a.ok, b.ok, sim.kicks], [true, true, [a.id]], 'taken over through the stripped path')
  t.equal(app.publisherStats.takeovers, 1)
  const res = await fetch(`${url}/video/camera/rtp-servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"stream_id":"gb1"}' })
  t.match(await res.json(), { code: 0, outcome: 'opened' })
})
