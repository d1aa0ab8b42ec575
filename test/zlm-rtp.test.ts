import t, { type Test } from 'tap'
import { pino } from 'pino'
import { Codes } from '../src/errors.js'
import { ZlmMediaServer } from '../src/zlm/adapter.js'
import { ZlmApi } from '../src/zlm/api.js'
import { RtpOpenError, RtpServers, type RtpRequest } from '../src/zlm/rtp.js'
import { MemoryLocks } from '../src/publishers/lock.js'
import { startApp, waitFor } from './fixtures/app.js'
import { startZlmWorld, ZLM_TEST_SECRET } from './fixtures/zlm-app.js'
import { ZlmSimulator } from './fixtures/zlm-sim.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * RTP servers for GB28181 platforms: POST/DELETE/GET rtp-servers against the ZLMediaKit simulator's
 * two registries (the RTP server map that openRtpServer checks, the media source that getRtpInfo
 * looks at), and the ways an RTP server goes: a timeout, a vanishing without any hook.
 */

interface Reply { status: number, body: Record<string, any> }

async function call (url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${url}/admin-api/video/camera${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

const open = async (url: string, body: Record<string, unknown>) => await call(url, 'POST', '/rtp-servers', body)

/** openRtpServer calls the simulator answered with -300. */
const alreadyExists = (sim: ZlmSimulator) => sim.apiCalls.filter((c) => c.name === 'openRtpServer').length

t.test('the seed\'s sequence: open, open again (the same port), open with another port (closed and reopened): never -300', async (t) => {
  const { sim, url } = await startZlmWorld(t)
  const first = await open(url, { stream_id: 'gb1' })
  t.match(first, { status: 200, body: { code: 0, outcome: 'opened', server: 'zlm-test-1', vhost: '__defaultVhost__', app: 'rtp', stream_id: 'gb1', tcp_mode: 0, ssrc: 0, keep: false, replaced: null } })
  const port = first.body.port as number
  t.ok(port >= 30000 && port % 2 === 0, `an even port of the range (${port})`)
  const again = await open(url, { stream_id: 'gb1' })
  t.match(again.body, { code: 0, outcome: 'existing', port }, 'the same INVITE again: the same server, though getRtpInfo says it does not exist')
  t.equal(sim.sendRtp(port + 100), 'no-server')
  const fixed = await open(url, { stream_id: 'gb1', port })
  t.match(fixed.body, { outcome: 'existing', port }, 'asking for the port it has')
  const moved = await open(url, { stream_id: 'gb1', port: port + 10 })
  t.match(moved.body, { code: 0, outcome: 'reopened', port: port + 10, replaced: { port, tcp_mode: 0, ssrc: 0 } }, 'another port: the old one was closed first')
  const ssrc = await open(url, { stream_id: 'gb1', port: port + 10, ssrc: 1234 })
  t.match(ssrc.body, { outcome: 'reopened', port: port + 10, ssrc: 1234, replaced: { port: port + 10, ssrc: 0 } }, 'a new SSRC (a new INVITE): reopened, even on the same port')
  const tcp = await open(url, { stream_id: 'gb1', tcp_mode: 1 })
  t.match(tcp.body, { outcome: 'reopened', tcp_mode: 1 })
  t.same(sim.listRtpServers().map((s) => [s.streamId, s.tcpMode]), [['gb1', 1]], 'one RTP server for the stream')
  // Open first: a free stream costs one call; each -300 is met by reading the map once, never passed on.
  t.equal(alreadyExists(sim), 9, 'opens: 1 + 1 + 1 + 2 + 2 + 2')
  t.equal(sim.apiCalls.filter((c) => c.name === 'listRtpServer').length, 5, 'one reading of the map per -300')
})

t.test('a sender that keeps sending through a close and reopen on the same port: its stream comes back', async (t) => {
  const { sim, url } = await startZlmWorld(t)
  const { body } = await open(url, { stream_id: 'gb1', port: 30020 })
  const sender = sim.startRtpSender(30020, { intervalMs: 20 })
  t.teardown(() => sender.stop())
  await waitFor(() => sim.owner('rtp', 'gb1') === 'gb1', 5000, 'the RTP stream')
  const re = await open(url, { stream_id: 'gb1', port: 30020, ssrc: 0x0bebc201 })
  t.match(re.body, { outcome: 'reopened', port: body.port })
  await waitFor(() => sim.owner('rtp', 'gb1') === 'gb1' && sender.last() === 'live', 5000, 'the stream back')
})

t.test('two concurrent opens of one stream: one server, both get its port', async (t) => {
  const { sim, url } = await startZlmWorld(t)
  const [a, b] = await Promise.all([open(url, { stream_id: 'gb1' }), open(url, { stream_id: 'gb1' })])
  t.same([a!.body.outcome, b!.body.outcome].sort(), ['existing', 'opened'])
  t.equal(a!.body.port, b!.body.port)
  t.equal(sim.listRtpServers().length, 1)
  t.notOk(sim.apiCalls.some((c) => c.name === 'closeRtpServer'), 'the second found the first\'s, and closed nothing')
})

t.test('a port in use is a clear error naming the port and who holds it; nothing is closed', async (t) => {
  const { sim, url } = await startZlmWorld(t)
  await open(url, { stream_id: 'gb1', port: 30010 })
  const busy = await open(url, { stream_id: 'gb2', port: 30010 })
  t.match(busy, { status: 409, body: { code: Codes.RTP_PORT_IN_USE, msg: 'cannot open the RTP server of /rtp/gb2: port 30010 is in use on ZLMediaKit zlm-test-1, by the RTP server of /rtp/gb1 (port 30010); open with another port, or port 0 for any' } })
  const rtcp = await open(url, { stream_id: 'gb3', port: 30009 })
  t.match(rtcp, { status: 409, body: { code: Codes.RTP_PORT_IN_USE, msg: /port 30010 is in use .* by the RTP server of \/rtp\/gb1/ } }, 'RTCP takes the port after: its port is named')
  const onRtcp = await open(url, { stream_id: 'gb4', port: 30011 })
  t.match(onRtcp, { status: 409, body: { msg: /port 30011 is in use .* by the RTP server of \/rtp\/gb1 \(port 30010\)/ } }, 'the port another server\'s RTCP holds')
  t.same(sim.listRtpServers().map((s) => s.streamId), ['gb1'])
})

t.test('a kept RTP server that ZLMediaKit times out is reopened at once, on its port; one not kept is not', async (t) => {
  const { sim, url, app, logs } = await startZlmWorld(t, {}, { rtpTimeoutSec: 0.3, rtpCheckMs: 50 })
  const kept = await open(url, { stream_id: 'gb1', keep: true })
  const dropped = await open(url, { stream_id: 'gb2' })
  t.same([kept.body.keep, dropped.body.keep], [true, false])
  await sim.waitForHook((c) => c.hook === 'on_rtp_server_timeout' && c.body.stream_id === 'gb1')
  await sim.waitForHook((c) => c.hook === 'on_rtp_server_timeout' && c.body.stream_id === 'gb2')
  await waitFor(() => sim.listRtpServers().some((s) => s.streamId === 'gb1'), 5000, 'gb1 reopened')
  t.same(sim.listRtpServers().map((s) => [s.streamId, s.port]), [['gb1', kept.body.port]], 'gb1 is back on its port; gb2 is not')
  t.match(await logs.wait((l) => l.action === 'on_rtp_server_timeout' && l.stream === '/rtp/gb1'), { outcome: 'reopened', port: kept.body.port })
  t.match(await logs.wait((l) => l.action === 'on_rtp_server_timeout' && l.stream === '/rtp/gb2'), { outcome: 'not-kept' })
  const events = await call(url, 'GET', '/events?type=rtp-server')
  t.match(events.body.items[0], { type: 'rtp-server', action: 'reopened', why: 'timeout', stream: '/rtp/gb1', server: 'zlm-test-1', port: kept.body.port })
  t.ok(app.zlm.rtp.counters.restored >= 1)
  // A forged timeout for a server that is there changes nothing.
  const before = sim.apiCalls.length
  const r = await fetch(`${sim.config('hook.on_rtp_server_timeout')}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mediaServerId: 'zlm-test-1', stream_id: 'gb1', local_port: 1 }) })
  t.equal(r.status, 200)
  t.notOk(sim.apiCalls.slice(before).some((c) => c.name === 'closeRtpServer'), 'the server was there: not closed')
  t.same(sim.listRtpServers().map((s) => [s.streamId, s.port]), [['gb1', kept.body.port]], 'and still on its port')
})

t.test('an RTP server that vanished without a hook is found by reconciliation; reopened once its stream is free', async (t) => {
  const { sim, url, app } = await startZlmWorld(t)
  const { body } = await open(url, { stream_id: 'gb1', keep: true })
  const pusher = await sim.publish({ app: 'rtp', stream: 'gb1' })
  t.ok(pusher.ok, 'an RTMP publisher owns rtp/gb1')
  t.equal(sim.sendRtp(body.port), 'pending', 'the RTP process asks on_publish')
  await waitFor(() => sim.sendRtp(body.port) === 'detached' || sim.listRtpServers().length === 0, 5000, 'the RTP process detached')
  t.same(sim.listRtpServers(), [], 'gone from ZLMediaKit\'s map')
  t.notOk(sim.hookCalls.some((c) => c.hook === 'on_rtp_server_timeout'), 'without any hook')
  await app.zlm.reconcileRtp()
  const listed = await call(url, 'GET', '/rtp-servers')
  t.match(listed.body.items, [{ stream_id: 'gb1', keep: true, state: 'blocked', port: body.port, note: new RegExp(`published by rtmp_push session ${pusher.id}`) }])
  t.same(sim.listRtpServers(), [], 'not reopened while another publisher owns the stream')
  const events = await call(url, 'GET', '/events?type=rtp-server')
  t.match(events.body.items, [{ action: 'vanished', stream: '/rtp/gb1' }])
  await app.zlm.reconcileRtp()
  t.equal((await call(url, 'GET', '/events?type=rtp-server')).body.items.length, 1, 'reported once')
  sim.stop(pusher.id)
  await waitFor(() => sim.owner('rtp', 'gb1') === undefined, 5000, 'the publisher gone')
  await app.zlm.reconcileRtp()
  t.same(sim.listRtpServers().map((s) => [s.streamId, s.port]), [['gb1', body.port]], 'reopened on its port')
  t.match((await call(url, 'GET', '/rtp-servers')).body.items, [{ stream_id: 'gb1', state: 'waiting', keep: true }])
  t.match((await call(url, 'GET', '/events?type=rtp-server')).body.items[0], { action: 'reopened', why: 'reconcile' })
})

t.test('a kept server gone from the map while its stream is free is reopened by reconciliation; a ZLMediaKit restart by on_server_started', async (t) => {
  const { sim, url, app } = await startZlmWorld(t)
  const { body } = await open(url, { stream_id: 'gb1', keep: true })
  await app.zlm.reconcileRtp()
  t.same(sim.apiCalls.filter((c) => c.name === 'openRtpServer').length, 1, 'a kept server in the map is left alone')
  await fetch(`${sim.apiUrl}/index/api/closeRtpServer?secret=${ZLM_TEST_SECRET}&stream_id=gb1`)
  t.match((await call(url, 'GET', '/rtp-servers')).body.items, [{ stream_id: 'gb1', state: 'missing', keep: true }])
  await app.zlm.reconcileRtp()
  t.same(sim.listRtpServers().map((s) => s.port), [body.port])
  await fetch(`${sim.apiUrl}/index/api/closeRtpServer?secret=${ZLM_TEST_SECRET}&stream_id=gb1`)
  sim.serverStarted()
  await waitFor(() => sim.listRtpServers().length === 1, 5000, 'reopened after on_server_started')
  await app.zlm.idle()
})

t.test('DELETE closes the RTP server and stops keeping it; GET lists each with its state', async (t) => {
  const { sim, url } = await startZlmWorld(t, {}, { rtpTimeoutSec: 0.3, rtpCheckMs: 50 })
  const a = await open(url, { stream_id: 'gb1', keep: true })
  const b = await open(url, { stream_id: 'gb2', app: 'gb', vhost: '__defaultVhost__', port: 30100, tcp_mode: 2, ssrc: 77 })
  sim.startRtpSender(a.body.port, { intervalMs: 20 })
  await waitFor(() => sim.owner('rtp', 'gb1') === 'gb1', 5000, 'gb1 receives')
  const list = await call(url, 'GET', '/rtp-servers')
  t.match(list, { status: 200, body: { code: 0, servers: [{ server: 'zlm-test-1', api: sim.apiUrl, ok: true, msg: null }] } })
  t.match(list.body.items, [
    { server: 'zlm-test-1', app: 'gb', stream_id: 'gb2', port: 30100, tcp_mode: 2, ssrc: 77, keep: false, state: 'waiting', note: /getRtpInfo/ },
    { app: 'rtp', stream_id: 'gb1', port: a.body.port, keep: true, state: 'receiving', note: null }
  ])
  // A gateway that sends Content-Type: application/json on a bodyless DELETE.
  const del = await call(url, 'DELETE', '/rtp-servers/gb1', undefined, { 'content-type': 'application/json' })
  t.same(del, { status: 200, body: { code: 0, msg: null, server: 'zlm-test-1', vhost: '__defaultVhost__', app: 'rtp', stream_id: 'gb1', hit: true } })
  t.same((await call(url, 'DELETE', '/rtp-servers/gb1')).body.hit, false, 'again: nothing to close')
  t.equal((await call(url, 'DELETE', `/rtp-servers/gb2?app=gb&server=${encodeURIComponent(sim.apiUrl)}`)).body.hit, true, 'the server named by its API URL')
  t.same(sim.listRtpServers(), [])
  t.same((await call(url, 'GET', '/rtp-servers?server=zlm-test-1')).body.items, [], 'gb1 is no longer kept')
  t.equal(b.status, 200)
})

t.test('bad requests are 4xx with a code; the operator API\'s access rules apply', async (t) => {
  const { url, sim } = await startZlmWorld(t, { ADMIN_TOKEN: 'admin-token-0123456789' })
  const auth = { authorization: 'Bearer admin-token-0123456789' }
  t.match(await call(url, 'POST', '/rtp-servers', { stream_id: 'gb1' }), { status: 401, body: { code: Codes.ADMIN_UNAUTHORIZED } })
  t.match(await call(url, 'GET', '/rtp-servers'), { status: 401 })
  t.match(await call(url, 'DELETE', '/rtp-servers/gb1'), { status: 401 })
  const cases: Array<[string, unknown, number]> = [
    ['a stream id with a slash', { stream_id: '../etc' }, Codes.INVALID_BODY],
    ['a port out of range', { stream_id: 'gb1', port: 70000 }, Codes.INVALID_BODY],
    ['a tcp_mode ZLMediaKit lacks', { stream_id: 'gb1', tcp_mode: 3 }, Codes.INVALID_BODY],
    ['an unknown field', { stream_id: 'gb1', reuse: true }, Codes.INVALID_BODY],
    ['no stream id', {}, Codes.INVALID_BODY]
  ]
  for (const [what, body, code] of cases) {
    const r = await call(url, 'POST', '/rtp-servers', body, auth)
    t.same([r.status, r.body.code], [400, code], what)
  }
  t.match(await call(url, 'GET', '/rtp-servers?x=1', undefined, auth), { status: 400, body: { code: Codes.INVALID_QUERY } })
  t.match(await call(url, 'POST', '/rtp-servers', { stream_id: 'gb1', server: 'nosuch' }, auth), { status: 400, body: { code: Codes.ZLM_SERVER_UNKNOWN, msg: /no ZLMediaKit server "nosuch"/ } })
  t.same(sim.apiCalls.filter((c) => c.name === 'openRtpServer'), [], 'nothing reached ZLMediaKit')
  t.match(await call(url, 'POST', '/rtp-servers', { stream_id: 'gb1' }, auth), { status: 200, body: { outcome: 'opened' } })
})

t.test('ZLMediaKit\'s API down or broken: 503 or 502 with a code; GET shows the server failing', async (t) => {
  const { sim, url } = await startZlmWorld(t, { ZLM_API_TIMEOUT_MS: '300', ZLM_API_RETRIES: '0' })
  sim.setFault('down')
  t.match(await open(url, { stream_id: 'gb1' }), { status: 503, body: { code: Codes.SRS_API_UNREACHABLE, msg: /cannot open the RTP server of \/rtp\/gb1: ZLMediaKit's API failed \(unreachable\)/ } })
  t.match(await call(url, 'DELETE', '/rtp-servers/gb1'), { status: 503 })
  t.match(await call(url, 'GET', '/rtp-servers'), { status: 200, body: { items: [], servers: [{ ok: false, msg: /failed \(unreachable\)/ }] } })
  sim.setFault('garbage')
  t.match(await open(url, { stream_id: 'gb1' }), { status: 502, body: { code: Codes.SRS_API_FAILED, msg: /bad_body/ } })
  sim.setFault('slow', { slowMs: 2000 })
  t.match(await open(url, { stream_id: 'gb1' }), { status: 503, body: { msg: /timeout/ } })
  sim.setFault('none')
  sim.setSecret('rotated-secret-0123456789')
  t.match(await open(url, { stream_id: 'gb1' }), { status: 502, body: { code: Codes.SRS_API_FAILED, msg: /unauthorized.*-100/ } })
})

t.test('which ZLMediaKit: none configured, several without one named, one named by its mediaServerId', async (t) => {
  const none = await startApp(t, { SRS_API_URL: 'none' })
  t.match(await call(none.url, 'POST', '/rtp-servers', { stream_id: 'gb1' }), { status: 400, body: { code: Codes.ZLM_SERVER_UNKNOWN, msg: /no ZLMediaKit server is configured/ } })
  const a = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-a' })
  const b = await ZlmSimulator.start({ secret: ZLM_TEST_SECRET, mediaServerId: 'zlm-b' })
  t.teardown(async () => { await a.close(); await b.close() })
  const two = await startApp(t, { SRS_API_URL: 'none', ZLM_API_URL: `${a.apiUrl},${b.apiUrl}`, ZLM_SECRET: ZLM_TEST_SECRET })
  await two.app.zlmServers.discover()
  t.match(await call(two.url, 'POST', '/rtp-servers', { stream_id: 'gb1' }), { status: 400, body: { msg: /several ZLMediaKit servers are configured; name one with server \(zlm-a = .*, zlm-b = / } })
  t.match(await call(two.url, 'POST', '/rtp-servers', { stream_id: 'gb1', server: 'zlm-b' }), { status: 200, body: { server: 'zlm-b' } })
  t.same([a.listRtpServers().length, b.listRtpServers().length], [0, 1])
  const all = await call(two.url, 'GET', '/rtp-servers')
  t.same(all.body.servers.map((s: { server: string }) => s.server), ['zlm-a', 'zlm-b'])
})

t.test('the metrics count opens by outcome', async (t) => {
  const { url } = await startZlmWorld(t)
  await open(url, { stream_id: 'gb1' })
  await open(url, { stream_id: 'gb1' })
  await open(url, { stream_id: 'gb1', port: 30500 })
  await open(url, { stream_id: 'gb2', port: 30500 })
  const text = await (await fetch(`${url}/metrics`)).text()
  for (const [outcome, n] of [['opened', 1], ['existing', 1], ['reopened', 1], ['port_in_use', 1]] as const) {
    t.match(text, new RegExp(`srs_hooks_rtp_server_opens_total\\{outcome="${outcome}"\\} ${n}\\n`), outcome)
  }
})

// ------------------------------------------------------------------ against a scripted ZLMediaKit

/** RtpServers over a programmable ZLMediaKit API: each call's answer comes from `answer`. */
async function scripted (t: Test, answer: (name: string, args: URLSearchParams, n: number) => unknown, openTimeoutMs = 1000, locks?: MemoryLocks) {
  const counts = new Map<string, number>()
  const stub = await StubServer.start((req, res, body) => {
    const name = (req.url ?? '').replace('/index/api/', '')
    const n = (counts.get(name) ?? 0) + 1
    counts.set(name, n)
    const a = answer(name, new URLSearchParams(body), n)
    if (a !== 'hang') json(res, a)
  })
  const api = new ZlmApi({ url: stub.url, secret: () => 's', timeoutMs: 200, retries: 0 })
  t.teardown(async () => { await api.close(); await stub.close() })
  const server = new ZlmMediaServer(api, { id: 'z1', hookBudgetMs: 9000 })
  const events: Array<Record<string, unknown>> = []
  const rtp = new RtpServers({ log: pino({ level: 'silent' }), now: Date.now, openTimeoutMs, event: (e) => events.push(e), random: () => 0, locks })
  return { rtp, server, counts, events }
}

const REQ: RtpRequest = { vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb1', port: 0, tcpMode: 0, ssrc: 0, keep: false }
const entry = (extra: Record<string, unknown> = {}) => ({ vhost: '__defaultVhost__', app: 'rtp', stream_id: 'gb1', port: 30000, ssrc: 0, tcp_mode: 0, ...extra })

t.test('-300 with the same server in the map: it is returned; with none there any more: opened again at once', async (t) => {
  const same = await scripted(t, (name) => {
    if (name === 'listRtpServer') return { code: 0, data: [entry({ stream_id: 'other' }), entry()] }
    if (name === 'openRtpServer') return { code: -300, msg: 'This stream already exists' }
  })
  t.match(await same.rtp.open(same.server, REQ), { outcome: 'existing', port: 30000, attempts: 1 })
  t.same([same.counts.get('listRtpServer'), same.counts.get('openRtpServer'), same.counts.get('closeRtpServer')], [1, 1, undefined])
  const gone = await scripted(t, (name, _args, n) => {
    if (name === 'listRtpServer') return { code: 0 }
    if (name === 'openRtpServer') return n === 1 ? { code: -300, msg: 'This stream already exists' } : { code: 0, port: 30002 }
  })
  t.match(await gone.rtp.open(gone.server, REQ), { outcome: 'opened', port: 30002, attempts: 2 }, 'closed by someone else in between: opened')
})

t.test('an opener elsewhere that keeps re-creating another server: the backoff ends at the bound with a conflict', async (t) => {
  const { rtp, server, counts } = await scripted(t, (name) => {
    if (name === 'listRtpServer') return { code: 0 }
    if (name === 'openRtpServer') return { code: -300, msg: 'This stream already exists' }
  }, 300)
  const started = Date.now()
  const err = await rtp.open(server, REQ).catch((e: unknown) => e)
  t.ok(err instanceof RtpOpenError)
  t.match(err, { kind: 'conflict', message: /kept being re-created by another opener .* for 300 ms/ })
  t.ok(Date.now() - started < 1000, 'bounded')
  t.ok(counts.get('openRtpServer')! >= 2, `it tried again (${counts.get('openRtpServer')!} opens)`)
  t.equal(rtp.counters.conflicts, 1)
})

t.test('an open whose answer was lost is looked for in the map before trying again', async (t) => {
  const { rtp, server } = await scripted(t, (name, _args, n) => {
    if (name === 'listRtpServer') return n === 1 ? { code: 0 } : { code: 0, data: [entry({ port: 30002 })] }
    if (name === 'openRtpServer') return 'hang'
  })
  t.match(await rtp.open(server, REQ), { outcome: 'existing', port: 30002 })
})

t.test('a port held by something other than an RTP server, and a full port range', async (t) => {
  const { rtp, server } = await scripted(t, (name, args) => {
    if (name === 'listRtpServer') return { code: 0 }
    if (args.get('port') === '0') return { code: -400, msg: 'Create RTP port 0.0.0.0:0 failed:no free port in 30000-30010' }
    if (args.get('port') === '555') return { code: -400, msg: 'bind: address already in use' }
    if (args.get('port') === '556') return { code: -400 }
    return { code: -400, msg: 'Create RTP port 0.0.0.0:554 failed:address already in use' }
  })
  t.match(await rtp.open(server, { ...REQ, port: 555 }).catch((e: unknown) => e), { kind: 'port-in-use', port: 555 }, 'words without the port: the port asked for')
  t.match(await rtp.open(server, { ...REQ, port: 556 }).catch((e: unknown) => e), { name: 'ZlmApiError', detail: -400 }, '-400 without words: a failure of the API')
  t.match(await rtp.open(server, { ...REQ, port: 554 }).catch((e: unknown) => e), { kind: 'port-in-use', port: 554, message: /port 554 is in use on ZLMediaKit z1, by another socket on ZLMediaKit's host/ })
  t.match(await rtp.open(server, REQ).catch((e: unknown) => e), { name: 'ZlmApiError', kind: 'api_code', detail: -400, message: /no free port/ })
  t.same([rtp.counters.portInUse, rtp.counters.failed], [2, 2])
})

t.test('the map unreadable while naming a busy port: the words stay general', async (t) => {
  const { rtp, server } = await scripted(t, (name) => {
    if (name === 'listRtpServer') return { code: -1 }
    return { code: -400, msg: 'Create RTP port 0.0.0.0:30000 failed:address already in use' }
  })
  t.match(await rtp.open(server, { ...REQ, port: 30000 }).catch((e: unknown) => e), { kind: 'port-in-use', message: /by another socket/ })
})

t.test('an open of a stream whose lock is held for the whole bound is busy; a timeout of a server not kept changes nothing', async (t) => {
  const locks = new MemoryLocks()
  const { rtp, server, events, counts } = await scripted(t, () => ({ code: 0, port: 30000 }), 150, locks)
  const unlock = await locks.acquire('z1\n/rtp/gb1', 0, 10_000)
  t.teardown(() => unlock?.())
  t.match(await rtp.open(server, REQ).catch((e: unknown) => e), { kind: 'busy', message: /another open of the RTP server of \/rtp\/gb1 held it for the whole 150 ms/ })
  t.equal(counts.size, 0, 'ZLMediaKit was not asked')
  t.equal(await rtp.timedOut(server, { vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb9' }), 'not-kept')
  t.same(events, [])
})

t.test('a kept server whose reopen fails: reported, and tried again by the next reconciliation', async (t) => {
  let broken = false
  const { rtp, server, events } = await scripted(t, (name) => {
    if (broken) return { code: -1, msg: 'broken' }
    if (name === 'listRtpServer' || name === 'getMediaList') return { code: 0 }
    return { code: 0, port: 30000 }
  })
  await rtp.open(server, { ...REQ, keep: true })
  broken = true
  t.equal(await rtp.timedOut(server, REQ), 'reopen-failed')
  t.match(events, [{ type: 'rtp-server', action: 'reopen-failed', why: 'timeout', err: /broken/ }])
  t.match(await rtp.reconcile(server).catch((e: unknown) => e), { kind: 'api_code' }, 'an unreadable map is thrown to the caller')
  broken = false
  t.same(await rtp.reconcile(server), { restored: 1, blocked: 0, left: 0 }, 'the map lacks it: reopened')
  t.same(await rtp.reconcile(new ZlmMediaServer(new ZlmApi({ url: 'http://127.0.0.1:9', secret: () => 's', timeoutMs: 100, retries: 0 }), { id: 'other', hookBudgetMs: 1 })), { restored: 0, blocked: 0, left: 0 }, 'a server with nothing kept is not asked')
})

t.test('an opener elsewhere that keeps the stream for the whole bound: 409 with its code', async (t) => {
  const stub = await StubServer.start((req, res) => {
    const name = (req.url ?? '').replace('/index/api/', '')
    if (name === 'getServerConfig') return json(res, { code: 0, data: [{ 'general.mediaServerId': 'zs' }] })
    if (name === 'listRtpServer') return json(res, { code: 0 })
    json(res, { code: -300, msg: 'This stream already exists' })
  })
  t.teardown(() => stub.close())
  const { url } = await startApp(t, { SRS_API_URL: 'none', ZLM_API_URL: stub.url, ZLM_SECRET: 's', ZLM_RTP_OPEN_TIMEOUT_MS: '200' })
  t.match(await open(url, { stream_id: 'gb1' }), { status: 409, body: { code: Codes.RTP_OPEN_CONFLICT, msg: /kept being re-created by another opener/ } })
})

t.test('a reconciliation is bounded: a ZLMediaKit that stalls leaves the rest of the kept servers for the next one', async (t) => {
  let stalled = false
  const { rtp, server, events } = await scripted(t, (name) => {
    if (name === 'listRtpServer') return { code: 0 }
    if (stalled) return 'hang'
    if (name === 'getMediaList') return { code: 0 }
    return { code: 0, port: 30000 }
  }, 100)
  for (let i = 0; i < 10; i++) await rtp.open(server, { ...REQ, streamId: `gb${i}`, keep: true })
  stalled = true
  const started = Date.now()
  const r = await rtp.reconcile(server)
  t.ok(Date.now() - started < 1500, `bounded (${Date.now() - started} ms for 10 stalled servers)`)
  t.ok(r.left > 0 && r.restored === 0, `some left for the next run (${r.left})`)
  t.match(events[0], { action: 'reopen-failed', why: 'reconcile', err: /no answer|no time left/ }, 'a stream that could not be checked is reported')
})
