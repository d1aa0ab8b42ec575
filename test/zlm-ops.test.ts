import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Codes } from '../src/errors.js'
import { doctor } from '../src/cli/doctor.js'
import { evict } from '../src/cli/evict.js'
import { startApp, waitFor } from './fixtures/app.js'
import { startZlmWorld, ZLM_TEST_SECRET } from './fixtures/zlm-app.js'
import { SrsSimulator } from './fixtures/srs-sim.js'
import { ZlmSimulator, type ZlmSimOptions } from './fixtures/zlm-sim.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * What operators see of ZLMediaKit servers: GET streams, the eviction, events, /readyz, /metrics,
 * `doctor` and `evict`; and SRS and ZLMediaKit served by one process at once.
 */

interface Reply { status: number, body: Record<string, any> }

async function get (url: string, path: string): Promise<Reply> {
  const res = await fetch(url + path)
  return { status: res.status, body: await res.json() as Record<string, any> }
}

async function del (url: string, path: string): Promise<Reply> {
  const res = await fetch(url + path, { method: 'DELETE' })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

function metrics (text: string): Map<string, number> {
  const m = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    m.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return m
}

const ADMIN = '/admin-api/video/camera'

t.test('SRS and ZLMediaKit served by one process at once: each takes over its own, a camera moving between them is taken over too', async (t) => {
  const srs = await SrsSimulator.start({ version: '6' })
  t.teardown(() => srs.close())
  const zlm = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-both' })
  t.teardown(() => zlm.close())
  const { app, url, hookBase } = await startApp(t, { SRS_API_URL: srs.apiUrl, ZLM_API_URL: zlm.apiUrl, ZLM_SECRET: ZLM_TEST_SECRET })
  srs.setHookBase(hookBase)
  zlm.setHookBase(hookBase + '/zlm')
  await Promise.all([app.srsServers.discover(), app.zlmServers.discover()])
  t.equal(app.mediaServers.size, 2)

  const s1 = await srs.publish({ app: 'live', stream: 'srs-cam', stalled: true })
  const s2 = await srs.publish({ app: 'live', stream: 'srs-cam' })
  t.same([s1.ok, s2.ok, srs.kicks], [true, true, [s1.clientId]], 'SRS: taken over')
  const z1 = await zlm.publish({ app: 'live', stream: 'zlm-cam', stalled: true })
  const z2 = await zlm.publish({ app: 'live', stream: 'zlm-cam' })
  t.same([z1.ok, z2.ok, zlm.kicks], [true, true, [z1.id]], 'ZLMediaKit: taken over')

  // A camera that pushed to SRS reconnects to ZLMediaKit (a failover): its dead SRS session goes.
  const old = await srs.publish({ app: 'live', stream: 'moving', stalled: true })
  const moved = await zlm.publish({ app: 'live', stream: 'moving' })
  t.ok(moved.ok)
  t.ok(srs.kicks.includes(old.clientId), 'the stale SRS publisher of the same stream was evicted')
  const takeover = (await get(url, `${ADMIN}/events?type=takeover`)).body.items.find((e: { stream: string }) => e.stream === '/live/moving')
  t.match(takeover, { server: 'zlm-both', from: srs.serverId, incumbent: old.clientId, newcomer: moved.id })

  const streams = await get(url, `${ADMIN}/streams`)
  t.match(streams.body.servers, [
    { server: srs.serverId, kind: 'srs', api: srs.apiUrl, ok: true, strategy: 'publish' },
    { server: 'zlm-both', kind: 'zlm', api: zlm.apiUrl, ok: true, msg: null, version: null, strategy: 'publish' }
  ])
  const zlmStream = streams.body.streams.find((s: { server: string, stream_url: string }) => s.server === 'zlm-both' && s.stream_url === '/live/zlm-cam')
  t.match(zlmStream, { vhost: '__defaultVhost__', app: 'live', stream: 'zlm-cam', stream_id: null, active: true, publisher: { client_id: z2.id, ip: '127.0.0.1' }, in_table: true, in_srs: true, takeovers: 1 })
  t.ok(streams.body.streams.some((s: { server: string, stream_url: string }) => s.server === srs.serverId && s.stream_url === '/live/srs-cam'))

  const m = metrics(await (await fetch(`${url}/metrics`)).text())
  t.equal(m.get('srs_hooks_hooks_total{action="zlm/on_publish",outcome="took-over"}'), 2, 'ZLMediaKit\'s hooks are counted as zlm/on_*')
  t.equal(m.get('srs_hooks_hooks_total{action="on_publish",outcome="took-over"}'), 1, 'SRS\'s as before')
  t.equal(m.get('srs_hooks_takeovers_total{outcome="released",path="publish",server="zlm-both"}'), 2)
  t.ok((m.get('srs_hooks_hooks_total{action="zlm/on_stream_changed",outcome="unregistered"}') ?? 0) >= 1)

  const ready = await get(url, '/readyz')
  t.match(ready, { status: 200, body: { ready: true, checks: { srs: { ok: true }, zlm: { ok: true, msg: `ZLMediaKit zlm-both at ${zlm.apiUrl}` } } } })
  t.equal(ready.body.servers.length, 2)

  // And back: the camera reconnects to SRS while its dead ZLMediaKit session holds the stream.
  const back = await srs.publish({ app: 'live', stream: 'moving' })
  t.ok(back.ok)
  t.ok(zlm.kicks.includes(moved.id), 'the stale ZLMediaKit publisher was evicted from SRS\'s on_publish')
})

t.test('the operator\'s eviction with servers of both kinds: by the table\'s holder, ambiguous, or unknown', async (t) => {
  const srs = await SrsSimulator.start({ version: '6' })
  t.teardown(() => srs.close())
  const zlm = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-both' })
  t.teardown(() => zlm.close())
  const { app, url, hookBase } = await startApp(t, { SRS_API_URL: srs.apiUrl, ZLM_API_URL: zlm.apiUrl, ZLM_SECRET: ZLM_TEST_SECRET, CROSS_SERVER: 'ignore' })
  srs.setHookBase(hookBase)
  zlm.setHookBase(hookBase + '/zlm')
  await Promise.all([app.srsServers.discover(), app.zlmServers.discover()])
  const z = await zlm.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.match(await del(url, `${ADMIN}/streams/live/cam1/publisher`), { status: 200, body: { server: 'zlm-both', client_id: z.id } }, 'the table says ZLMediaKit holds it')
  await srs.publish({ app: 'live', stream: 'both' })
  await zlm.publish({ app: 'live', stream: 'both' })
  t.match(await del(url, `${ADMIN}/streams/live/both/publisher`), { status: 409, body: { code: Codes.AMBIGUOUS_STREAM, msg: /published on several servers .*zlm-both/ } })
  t.match(await del(url, `${ADMIN}/streams/live/nobody/publisher`), { status: 404, body: { code: Codes.NOTHING_TO_EVICT, msg: /zlm-both = / } })
  t.match(await del(url, `${ADMIN}/streams/live/both/publisher?server=${encodeURIComponent(zlm.apiUrl)}`), { status: 200, body: { server: 'zlm-both' } }, 'named by its API URL')
  t.match(await del(url, `${ADMIN}/streams/live/both/publisher?server=nosuch`), { status: 400, body: { code: Codes.INVALID_QUERY } })
})

t.test('GET streams with ZLMediaKit down: its streams from the table alone, and why', async (t) => {
  const { sim, url } = await startZlmWorld(t, { ZLM_API_RETRIES: '0' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  sim.setFault('down')
  const r = await get(url, `${ADMIN}/streams`)
  t.match(r.body, { srs: { ok: false, msg: /ZLMediaKit's API at .* failed \(unreachable\)/ }, servers: [{ kind: 'zlm', ok: false }], streams: [{ stream_url: '/live/cam1', active: null, publisher: { client_id: a.id }, in_table: true, in_srs: false }] })
})

t.test('kept RTP servers are checked every RECONCILE_INTERVAL_MS; a ZLMediaKit that does not answer is tried again', async (t) => {
  const { sim, url, logs } = await startZlmWorld(t, { RECONCILE_INTERVAL_MS: '100', TAKEOVER_TIMEOUT_MS: '9500', ZLM_API_RETRIES: '0' })
  t.match(logs.find((l) => /TAKEOVER_TIMEOUT_MS is longer than ZLMediaKit waits for on_publish/.test(l.msg ?? '')), { level: 40, hookBudgetMs: 9000 })
  const opened = await fetch(`${url}${ADMIN}/rtp-servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"stream_id":"gb1","keep":true}' })
  const { port } = await opened.json() as { port: number }
  sim.setFault('down')
  await logs.wait((l) => /could not check the kept RTP servers/.test(l.msg ?? ''))
  sim.setFault('none')
  await fetch(`${sim.apiUrl}/index/api/closeRtpServer?secret=${ZLM_TEST_SECRET}&stream_id=gb1`)
  await waitFor(() => sim.listRtpServers().some((s) => s.port === port), 5000, 'reopened by the periodic check')
})

t.test('learning secrets with several ZLMediaKit servers: each adopts its own, a restart is recognised', async (t) => {
  const a = await ZlmSimulator.start({ secret: 'secret-a-0123456789', mediaServerId: 'zlm-a' })
  const b = await ZlmSimulator.start({ secret: 'secret-b-0123456789', mediaServerId: 'zlm-b' })
  t.teardown(async () => { await a.close(); await b.close() })
  const { app, hookBase, logs } = await startApp(t, { SRS_API_URL: 'none', ZLM_API_URL: `${a.apiUrl},${b.apiUrl}` })
  a.setHookBase(hookBase + '/zlm')
  b.setHookBase(hookBase + '/zlm')
  const [na, nb] = app.zlmServers.nodes as [typeof app.zlmServers.nodes[0], typeof app.zlmServers.nodes[0]]
  a.serverStarted()
  await waitFor(() => na.learntSecret === 'secret-a-0123456789', 5000, 'a learnt')
  b.serverStarted()
  await waitFor(() => nb.learntSecret === 'secret-b-0123456789', 5000, 'b learnt')
  t.same([na.mediaServerId, nb.mediaServerId], ['zlm-a', 'zlm-b'])
  a.setSecret('secret-a-rotated-0123')
  a.serverStarted()
  await waitFor(() => na.learntSecret === 'secret-a-rotated-0123', 5000, 'a restarted with a new secret')
  await app.zlm.idle()
  t.notOk(logs.lines.some((l) => /secret-a|secret-b/.test(JSON.stringify(l))))
})

t.test('/readyz names an SRS that never answered by its URL alone', async (t) => {
  const { url } = await startApp(t, { SRS_API_URL: 'http://127.0.0.1:9', READY_TIMEOUT_MS: '300', SRS_API_RETRIES: '0' })
  t.match(await get(url, '/readyz'), { status: 503, body: { failed: ['srs'], servers: [{ api: 'http://127.0.0.1:9', server: null, ok: false }] } })
})

t.test('/readyz: ZLMediaKit only (SRS_API_URL=none); 503 naming zlm when it does not answer', async (t) => {
  const { sim, url } = await startZlmWorld(t, { READY_TIMEOUT_MS: '300' })
  t.match(await get(url, '/readyz'), { status: 200, body: { ready: true, failed: [], checks: { srs: { ok: true, msg: 'no SRS (SRS_API_URL=none)' }, zlm: { ok: true } } } })
  sim.setFault('down')
  t.match(await get(url, '/readyz'), { status: 503, body: { code: Codes.NOT_READY, failed: ['zlm'], checks: { zlm: { ok: false, msg: /ZLMediaKit's API at .* failed/ } }, servers: [{ ok: false, server: 'zlm-test-1' }] } })
  const none = await startApp(t, { DATA_DIR: join(t.testdir(), 'x'), SRS_API_URL: 'none' })
  t.match(await get(none.url, '/readyz'), { status: 200, body: { checks: { zlm: { ok: true, msg: 'no ZLMediaKit (ZLM_API_URL is unset)' } } } })
})

t.test('the operator\'s eviction on ZLMediaKit: kicked and released; an RTP server\'s stream is not evicted (409)', async (t) => {
  const { sim, url } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const r = await del(url, `${ADMIN}/streams/live/cam1/publisher`)
  t.match(r, { status: 200, body: { code: 0, outcome: 'released', server: 'zlm-test-1', stream_url: '/live/cam1', client_id: a.id } })
  t.same(sim.kicks, [a.id])
  t.equal(sim.owner('live', 'cam1'), undefined)
  t.match(await del(url, `${ADMIN}/streams/live/cam1/publisher`), { status: 404, body: { code: Codes.NOTHING_TO_EVICT } })
  const open = await fetch(`${url}${ADMIN}/rtp-servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"stream_id":"gb1"}' })
  const { port } = await open.json() as { port: number }
  sim.sendRtp(port)
  await waitFor(() => sim.owner('rtp', 'gb1'), 5000, 'the RTP stream')
  t.match(await del(url, `${ADMIN}/streams/rtp/gb1/publisher?server=zlm-test-1`), { status: 409, body: { code: Codes.INCUMBENT_NOT_EVICTABLE, msg: /\/rtp\/gb1 is not evicted: it is fed by an RTP server/ } })
  t.same(sim.kicks, [a.id])
  sim.setFault('down')
  t.match(await del(url, `${ADMIN}/streams/live/cam2/publisher`), { status: 503, body: { msg: /ZLMediaKit's API failed \(unreachable\)/ } })
})

t.test('reconciliation brings ZLMediaKit\'s publishers into the table and drops those it no longer has', async (t) => {
  const { sim, app } = await startZlmWorld(t, {}, {}, { })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  await app.publishers.store.delete('zlm-test-1', '/live/cam1')
  await app.publishers.store.set({ server: 'zlm-test-1', key: '/live/ghost', vhost: '__defaultVhost__', app: 'live', stream: 'ghost', clientId: 'g-1', since: 0, state: 'confirmed', takeovers: 0 })
  await app.reconciler.run()
  t.match(await app.publishers.store.get('zlm-test-1', '/live/cam1'), { clientId: a.id, state: 'confirmed' })
  t.equal(await app.publishers.store.get('zlm-test-1', '/live/ghost'), undefined)
  t.equal(app.reconciler.failures, 0)
})

// ------------------------------------------------------------------ the CLI

async function cliWorld (t: Test, simOpts: ZlmSimOptions = {}, env: Record<string, string> = {}) {
  const w = await startZlmWorld(t, env, simOpts)
  const io = (base: Record<string, string>) => {
    const out: string[] = []
    const err: string[] = []
    return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), env: { SRS_API_URL: 'none', ZLM_API_URL: w.sim.apiUrl, ZLM_SECRET: ZLM_TEST_SECRET, ZLM_API_RETRIES: '0', PORT: new URL(w.url).port, ...base } } }
  }
  const run = async (cmd: typeof doctor, args: string[], base: Record<string, string> = {}) => {
    const x = io(base)
    const code = await cmd(args, x.io)
    return { code, out: x.out.join('\n'), err: x.err.join('\n') }
  }
  return { ...w, run }
}

t.test('doctor checks each ZLMediaKit: its API with the secret, its [hook] section, srs-hooks at its hook URL', async (t) => {
  const { run, sim } = await cliWorld(t)
  const ok = await run(doctor, [])
  t.equal(ok.code, 0, ok.out)
  t.match(ok.out, /OK {4}ZLMediaKit's API answers at http:\/\/127\.0\.0\.1:\d+ \(mediaServerId zlm-test-1\)/)
  t.match(ok.out, /OK {4}ZLMediaKit zlm-test-1 calls on_publish/)
  t.match(ok.out, /OK {4}ZLMediaKit zlm-test-1 waits 10 s for a hook, enough for a takeover \(3000 ms\)/)
  t.match(ok.out, /OK {4}srs-hooks answers at http:\/\/127\.0\.0\.1:\d+\/admin-api\/video\/camera\/callback\/zlm\/on_server_keepalive/)
  t.notMatch(ok.out, /SRS/, 'no SRS check with SRS_API_URL=none')
  t.notOk(ok.out.includes(ZLM_TEST_SECRET))

  const wrong = await run(doctor, [], { ZLM_SECRET: 'wrong-secret-0123456789' })
  t.equal(wrong.code, 1)
  t.match(wrong.out, /FAIL {2}ZLMediaKit's API at .*refused the API secret.*\n {6}fix: set ZLM_SECRET to ZLMediaKit's api.secret/)
  t.notOk(wrong.out.includes('wrong-secret-0123456789'))
  const unset = await run(doctor, [], { ZLM_SECRET: '' })
  t.match(unset, { code: 0, out: /WARN {2}ZLMediaKit at .*: ZLM_SECRET is unset/ })
  const slow = await run(doctor, [], { TAKEOVER_TIMEOUT_MS: '12000' })
  t.match(slow.out, /WARN {2}ZLMediaKit zlm-test-1 waits 10 s for a hook \(hook.timeoutSec\) but a takeover may take 12000 ms.*\n {6}fix: raise hook.timeoutSec to 13/)

  await fetch(`${sim.apiUrl}/index/api/setServerConfig?secret=${ZLM_TEST_SECRET}&hook.on_stream_changed=&hook.on_rtp_server_timeout=&protocol.enable_mp4=1&hook.on_record_mp4=&hook.on_play=http://elsewhere:8080/index/hook/on_play&hook.on_flow_report=not%20a%20url`)
  const partial = await run(doctor, [])
  t.equal(partial.code, 1)
  t.match(partial.out, /WARN {2}ZLMediaKit zlm-test-1 has no on_stream_changed hook/)
  t.match(partial.out, /WARN {2}ZLMediaKit zlm-test-1 records MP4 .* but has no on_record_mp4 hook/)
  t.match(partial.out, /WARN {2}ZLMediaKit zlm-test-1 has no on_rtp_server_timeout hook/)
  t.match(partial.out, /FAIL {2}ZLMediaKit zlm-test-1: hook.on_play points at http:\/\/elsewhere:8080\/index\/hook\/on_play, not at srs-hooks's on_play/)
  t.match(partial.out, /FAIL {2}ZLMediaKit zlm-test-1: hook.on_flow_report not a url is not a valid URL/)

  await fetch(`${sim.apiUrl}/index/api/setServerConfig?secret=${ZLM_TEST_SECRET}&hook.on_publish=`)
  t.match((await run(doctor, [])).out, /FAIL {2}ZLMediaKit zlm-test-1 has no on_publish hook/)
  await fetch(`${sim.apiUrl}/index/api/setServerConfig?secret=${ZLM_TEST_SECRET}&hook.on_publish=http://127.0.0.1:1/admin-api/video/camera/callback/zlm/on_publish`)
  t.match((await run(doctor, [])).out, /FAIL {2}cannot reach http:\/\/127\.0\.0\.1:1\/admin-api\/video\/camera\/callback\/zlm\/on_server_keepalive from here: connect ECONNREFUSED/)
  await fetch(`${sim.apiUrl}/index/api/setServerConfig?secret=${ZLM_TEST_SECRET}&hook.enable=0`)
  t.match((await run(doctor, [])).out, /FAIL {2}ZLMediaKit zlm-test-1 calls no hook \(\[hook\] enable=0\)/)
  sim.setFault('down')
  t.match((await run(doctor, [])).out, /FAIL {2}ZLMediaKit's API at .*unreachable.*\n {6}fix: start ZLMediaKit/)
})

t.test('doctor: a hook URL srs-hooks refuses (HOOK_TOKEN) fails with the fix', async (t) => {
  const w = await startZlmWorld(t, { HOOK_TOKEN: 'hook-token-0123456789' }, {}, { hookQuery: '?token=nope-nope-nope' })
  const out: string[] = []
  const code = await doctor([], { out: (l) => out.push(l), err: (l) => out.push(l), env: { SRS_API_URL: 'none', ZLM_API_URL: w.sim.apiUrl, ZLM_SECRET: ZLM_TEST_SECRET } })
  t.equal(code, 1)
  t.match(out.join('\n'), /FAIL {2}a test hook to .*on_server_keepalive\?token=\*\*\* got HTTP 403.*\n {6}fix: the hook URLs need the right \?token=/)
})

t.test('evict finds the publisher in ZLMediaKit, kicks it and waits for the release; an RTP server\'s stream is not evicted', async (t) => {
  const { run, sim } = await cliWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const r = await run(evict, ['live/cam1'])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^looking for the publisher of \/live\/cam1 in ZLMediaKit at http/)
  t.match(r.out, new RegExp(`found publisher ${a.id}; kicking it and waiting up to 3000 ms for ZLMediaKit to release /live/cam1`))
  t.match(r.out, new RegExp(`evicted ${a.id}: ZLMediaKit released /live/cam1 after \\d+ ms \\(seen via api\\); the stream is free`))
  t.same(sim.kicks, [a.id])
  t.match(await run(evict, ['live/cam1']), { code: 3, err: /^nothing to evict: ZLMediaKit lists no active publisher of \/live\/cam1$/ })
  await fetch(`${sim.apiUrl}/index/api/openRtpServer?secret=${ZLM_TEST_SECRET}&port=30040&stream_id=gb1`)
  sim.sendRtp(30040)
  await waitFor(() => sim.owner('rtp', 'gb1'), 5000, 'the RTP stream')
  t.match(await run(evict, ['--server', 'zlm-test-1', 'rtp/gb1']), { code: 1, err: /^\/rtp\/gb1 is not evicted: it is fed by an RTP server/ })
  t.match(await run(evict, ['--server', 'nosuch', 'rtp/gb1']), { code: 2, err: /no server "nosuch" in SRS_API_URL or ZLM_API_URL; name one by its id or API URL: zlm-test-1 = http/ })
  t.match(await run(evict, ['live/cam1'], { ZLM_SECRET: 'wrong-secret-0123456789' }), { code: 1, err: /cannot evict the publisher of \/live\/cam1: ZLMediaKit's API failed \(unauthorized\)/ })
})

t.test('evict with a ZLMediaKit that does not release within the bound, and with servers of both kinds', async (t) => {
  const { run, sim } = await cliWorld(t, { closeDelayMs: 2000 })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.match(await run(evict, ['live/cam1'], { TAKEOVER_TIMEOUT_MS: '300' }), { code: 1, err: /kicked [\w-]+ but ZLMediaKit did not release \/live\/cam1 within 300 ms; ZLMediaKit may still be tearing it down/ })
  const srs = await SrsSimulator.start({ version: '6' })
  t.teardown(() => srs.close())
  t.match(await run(evict, ['live/nobody'], { SRS_API_URL: srs.apiUrl }), { code: 3, err: /^nothing to evict: no server lists an active publisher of \/live\/nobody$/ })
  await srs.publish({ app: 'live', stream: 'both' })
  await sim.publish({ app: 'live', stream: 'both' })
  t.match(await run(evict, ['live/both'], { SRS_API_URL: srs.apiUrl }), { code: 2, err: /^\/live\/both is published on several servers \(vid-\w+ = http.*, zlm-test-1 = http.*\); name one with --server$/ })
  t.match(await run(evict, ['--bogus', 'live/both']), { code: 2, err: /^srs-hooks evict: Unknown option '--bogus'/ })
})

t.test('doctor with a ZLMediaKit whose configuration is sparse and whose hook URL answers something else', async (t) => {
  const hooks = await StubServer.start((_req, res) => { res.writeHead(500); res.end('<html>oops</html>') })
  const zlm = await StubServer.start((_req, res) => json(res, { code: 0, data: [{ 'hook.enable': '1', 'hook.on_publish': `${hooks.url}/admin-api/video/camera/callback/zlm/on_publish` }] }))
  t.teardown(async () => { await hooks.close(); await zlm.close() })
  const out: string[] = []
  const code = await doctor([], { out: (l) => out.push(l), err: (l) => out.push(l), env: { SRS_API_URL: 'none', ZLM_API_URL: zlm.url, ZLM_SECRET: 's', TAKEOVER_POLICY: 'takeover-stale' } })
  const text = out.join('\n')
  t.equal(code, 1)
  t.match(text, /OK {4}ZLMediaKit's API answers at .* \(mediaServerId \?\)/)
  t.match(text, /ZLMediaKit \? waits 10 s for a hook, enough for a takeover \(5334 ms\)/, 'hook.timeoutSec absent: ZLMediaKit\'s default; takeover-stale adds its probe')
  t.match(text, /FAIL {2}a test hook to .*on_server_keepalive got HTTP 500: <html>oops<\/html>\n {6}fix: the hook URLs must point at srs-hooks's \/callback\/zlm\/ routes/)
})

t.test('a camera moving between servers when the other one cannot say, or no longer has the stream, or is not known', async (t) => {
  const srs = await SrsSimulator.start({ version: '6' })
  t.teardown(() => srs.close())
  const zlm = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-both' })
  t.teardown(() => zlm.close())
  const { app, hookBase } = await startApp(t, { SRS_API_URL: srs.apiUrl, ZLM_API_URL: zlm.apiUrl, ZLM_SECRET: ZLM_TEST_SECRET, ZLM_API_RETRIES: '0' })
  srs.setHookBase(hookBase)
  zlm.setHookBase(hookBase + '/zlm')
  await Promise.all([app.srsServers.discover(), app.zlmServers.discover()])
  const kinds: string[] = []
  app.publisherEvents.on((e) => kinds.push(e.type))

  const z = await zlm.publish({ app: 'live', stream: 'cam1', stalled: true })
  zlm.setFault('down')
  t.ok((await srs.publish({ app: 'live', stream: 'cam1' })).ok, 'ZLMediaKit cannot say: the newcomer\'s own server is free, so it is let in')
  t.ok(kinds.includes('api-failure'))
  t.equal(zlm.owner('live', 'cam1'), z.id, 'nobody kicked on ZLMediaKit')
  zlm.setFault('none')

  await app.publishers.store.set({ server: 'zlm-both', key: '/live/gone', vhost: '__defaultVhost__', app: 'live', stream: 'gone', clientId: 'old-1', since: 0, state: 'confirmed', takeovers: 0 })
  await app.publishers.store.set({ server: 'zlm-removed', key: '/live/gone', vhost: '__defaultVhost__', app: 'live', stream: 'gone', clientId: 'old-2', since: 0, state: 'confirmed', takeovers: 0 })
  t.ok((await srs.publish({ app: 'live', stream: 'gone' })).ok)
  t.equal(await app.publishers.store.get('zlm-both', '/live/gone'), undefined, 'ZLMediaKit no longer lists it: its entry goes')
  t.ok(await app.publishers.store.get('zlm-removed', '/live/gone'), 'a server no longer configured is left alone')
})

t.test('GET streams: an SRS that never answered has no version; a source a crashed publisher left is not active', async (t) => {
  const { sim, url } = await startZlmWorld(t, { SRS_API_URL: 'http://127.0.0.1:9', SRS_API_RETRIES: '0' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  sim.crash(a.id)
  const r = await get(url, `${ADMIN}/streams`)
  t.match(r.body.servers, [{ kind: 'srs', ok: false, version: null }, { kind: 'zlm', ok: true }])
  t.notOk(r.body.streams.some((s: { active: boolean | null, stream_url: string, server: string }) => s.server === 'zlm-test-1' && s.active === true), 'nothing actively published')
})

t.test('/readyz with an SRS whose answers name no server (before 4.0.151)', async (t) => {
  const stub = await StubServer.start((_req, res) => json(res, { code: 0, data: { major: 4, minor: 0, revision: 100, version: '4.0.100' } }))
  t.teardown(() => stub.close())
  const { url } = await startApp(t, { SRS_API_URL: stub.url })
  t.match(await get(url, '/readyz'), { status: 200, body: { servers: [{ api: stub.url, server: null, ok: true, msg: `SRS 4.0.100 at ${stub.url}` }] } })
})

t.test('takeover-stale with a hook timeout shorter than the probe: the bound runs out, the newcomer is let in and ZLMediaKit decides', async (t) => {
  const { sim, url, app } = await startZlmWorld(t, { TAKEOVER_POLICY: 'takeover-stale' }, { hookTimeoutSec: 1 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: false, reason: /Already publishing/ })
  t.equal(sim.owner('live', 'cam1'), a.id, 'nobody kicked: the probe could not tell in time')
  t.equal(app.publisherStats.boundExhausted, 1)
  const m = metrics(await (await fetch(`${url}/metrics`)).text())
  t.equal(m.get('srs_hooks_bound_exhausted_total'), 1)
})

t.test('evict with several ZLMediaKit servers and nothing to evict', async (t) => {
  const a = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-a' })
  const b = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-b' })
  t.teardown(async () => { await a.close(); await b.close() })
  const err: string[] = []
  const code = await evict(['live/nobody'], { out: () => {}, err: (l) => err.push(l), env: { SRS_API_URL: 'none', ZLM_API_URL: `${a.apiUrl},${b.apiUrl}`, ZLM_SECRET: ZLM_TEST_SECRET } })
  t.same([code, err], [3, ['nothing to evict: no ZLMediaKit server lists an active publisher of /live/nobody']])
})
