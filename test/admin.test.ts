import { join } from 'node:path'
import { request } from 'node:http'
import { networkInterfaces } from 'node:os'
import t, { type Test } from 'tap'
import { startApp, waitFor } from './fixtures/app.js'
import { SrsSimulator, type SimOptions } from './fixtures/srs-sim.js'
import { checkAccess, isLoopback } from '../src/operations/access.js'
import { MemoryEventStore } from '../src/operations/events.js'
import { mergeStreams, parseTime } from '../src/operations/streams.js'

const ADMIN = '/admin-api/video/camera'
const TOKEN = 'a-long-random-operator-token-0123456789'
/** This machine's non-loopback address (the first external IPv4 one). */
const LAN = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address

async function world (t: Test, env: Record<string, string> = {}, simOpts: SimOptions = {}) {
  const sim = await SrsSimulator.start({ version: '6', ...simOpts })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, DATA_DIR: join(t.testdir(), 'data'), ...env })
  sim.setHookBase(h.hookBase)
  const call = async (method: string, path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${h.url}${ADMIN}${path}`, { method, headers })
    return { status: res.status, headers: res.headers, body: await res.json() as any }
  }
  return { sim, ...h, call }
}

/** Calls from this machine's non-loopback address, so the server sees a remote caller. */
async function fromLan (port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: LAN, localAddress: LAN, port, path, headers }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('who may call: loopback only without ADMIN_TOKEN, the bearer token with it, never a forged X-Forwarded-For', { skip: LAN === undefined && 'no non-loopback address on this machine' }, async (t) => {
  t.ok(isLoopback('127.0.0.1') && isLoopback('127.10.0.3') && isLoopback('::1') && isLoopback('::ffff:127.0.0.1'))
  t.notOk(isLoopback('192.0.2.2') || isLoopback('::ffff:10.0.0.1') || isLoopback(undefined) || isLoopback('1270.0.0.1'))
  t.same(checkAccess(undefined, undefined, '10.0.0.1'), { ok: false, reason: 'not-loopback' })
  t.same(checkAccess('tok', undefined, '127.0.0.1'), { ok: false, reason: 'no-token' }, 'with a token set, loopback alone is not enough')
  t.same(checkAccess('tok', 'Basic dG9rOg==', '127.0.0.1'), { ok: false, reason: 'no-token' })
  t.same(checkAccess('tok', 'Bearer tok2', '127.0.0.1'), { ok: false, reason: 'wrong-token' })
  t.same(checkAccess('tok', 'bearer tok', '10.0.0.1'), { ok: true })

  const open = await world(t)
  t.equal((await open.call('GET', '/events', { 'x-forwarded-for': '10.1.1.1' })).status, 200, 'loopback caller, no token configured')

  // The same app, reached from this machine's non-loopback address: a remote caller.
  const { buildApp } = await import('../src/app.js')
  const { loadConfig } = await import('../src/config.js')
  const lan = await buildApp(loadConfig({ SRS_API_URL: open.sim.apiUrl, DATA_DIR: join(t.testdir(), 'lan'), LOG_LEVEL: 'silent', RECONCILE_INTERVAL_MS: '0' }))
  t.teardown(() => lan.close())
  await lan.listen({ host: LAN, port: 0 })
  const lanPort = (lan.server.address() as { port: number }).port
  const r = await fromLan(lanPort, `${ADMIN}/events`, { 'x-forwarded-for': '127.0.0.1' })
  t.equal(r.status, 403, 'refused, whatever X-Forwarded-For says')
  t.equal(r.body.code, 4102)
  t.match(r.body.msg, /loopback callers only while ADMIN_TOKEN is unset/)
  t.equal((await fromLan(lanPort, '/healthz')).status, 200, 'health stays open')

  const locked = await world(t, { ADMIN_TOKEN: TOKEN })
  const none = await locked.call('GET', '/streams')
  t.equal(none.status, 401)
  t.equal(none.body.code, 4101)
  t.match(none.headers.get('www-authenticate'), /^Bearer/)
  const wrong = await locked.call('GET', '/recordings', { authorization: `Bearer ${TOKEN}x` })
  t.same([wrong.status, wrong.body.code, wrong.body.msg], [401, 4101, 'wrong bearer token'])
  t.equal((await locked.call('GET', '/recordings', { authorization: `Bearer ${TOKEN}` })).status, 200)
  const gw = await fetch(`${locked.url}/video/camera/events`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(gw.status, 200, 'behind a gateway that strips /admin-api too')
})

t.test('GET streams merges the publisher table with SRS\'s live view', async (t) => {
  const { sim, call } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.7' })
  const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.8' })
  t.ok(b.ok)
  sim.seedLive(1, { prefix: 'legacy-' })
  const r = await call('GET', '/streams')
  t.equal(r.status, 200)
  t.same(r.body.srs, { ok: true, msg: null })
  t.match(r.body.servers, [{ server: sim.serverId, api: sim.apiUrl, ok: true, msg: null, version: '6.0.184', strategy: 'publish' }])
  t.match(r.body.streams, [
    { stream_url: '/live/cam1', app: 'live', stream: 'cam1', active: true, in_table: true, in_srs: true, takeovers: 1, publisher: { client_id: b.clientId, ip: '10.0.0.8', since: Number, state: 'publishing' }, recv_bytes: Number, clients: Number },
    { stream_url: '/live/legacy-0', in_table: false, in_srs: true, takeovers: 0, publisher: { state: 'srs', ip: '127.0.0.1', since: Number } }
  ])
  t.not(r.body.streams[0].publisher.client_id, a.clientId)
  sim.setFault('down')
  const down = await call('GET', '/streams')
  t.equal(down.status, 200)
  t.match(down.body.srs, { ok: false, msg: /unreachable.*publisher table alone/ })
  t.match(down.body.streams, [{ stream_url: '/live/cam1', active: null, in_srs: false, recv_bytes: null, publisher: { client_id: b.clientId, ip: '10.0.0.8' } }])
})

t.test('DELETE streams/{app}/{stream}/publisher kicks the stalled publisher and answers once SRS released it', async (t) => {
  const { sim, call, app } = await world(t, {}, { releaseDelayMs: 150 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const r = await call('DELETE', '/streams/live/cam1/publisher')
  t.equal(r.status, 200)
  t.match(r.body, { code: 0, msg: null, outcome: 'released', server: sim.serverId, stream_url: '/live/cam1', client_id: a.clientId, via: /hook|api/ })
  t.ok(r.body.wait_ms >= 100, `waited ${r.body.wait_ms} ms for the release`)
  t.equal(sim.activePublisher('live', 'cam1'), undefined, 'SRS released the stream before the answer')
  t.same(sim.kicks, [a.clientId])
  const ev = await call('GET', '/events')
  t.match(ev.body.items, [{ type: 'eviction', stream: '/live/cam1', clientId: a.clientId, seq: 1, at: Number }])
  t.equal(await app.eventLog.total(), 1)

  const again = await call('DELETE', '/streams/live/cam1/publisher')
  t.same([again.status, again.body.code], [404, 4104])
  t.match(again.body.msg, /nothing to evict/)
  const other = await call('DELETE', '/streams/live/cam1/publisher?vhost=other.example')
  t.same([other.status, other.body.code], [404, 4104], 'another vhost is another stream')
})

t.test('the kick: a release that never comes is 504, SRS down is 503, SRS answering wrongly is 502', async (t) => {
  const { sim, call } = await world(t, { TAKEOVER_TIMEOUT_MS: '300', SRS_API_RETRIES: '0' }, { releaseDelayMs: 5000 })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const slow = await call('DELETE', '/streams/live/cam1/publisher')
  t.same([slow.status, slow.body.code], [504, 4106])
  t.match(slow.body.msg, /did not release \/live\/cam1 within 300 ms/)
  sim.setFault('down')
  const down = await call('DELETE', '/streams/live/cam2/publisher')
  t.same([down.status, down.body.code], [503, 4110])
  t.match(down.body.msg, /SRS's API failed \(unreachable\)/)
  sim.setFault('garbage')
  const bad = await call('DELETE', '/streams/live/cam2/publisher')
  t.same([bad.status, bad.body.code], [502, 4111])
})

t.test('the kick is refused with 409 while an on_publish of the stream holds it', async (t) => {
  const { app, call } = await world(t, { TAKEOVER_TIMEOUT_MS: '200' })
  const orig = app.publishers.evict.bind(app.publishers)
  app.publishers.evict = async () => ({ outcome: 'busy' })
  t.teardown(() => { app.publishers.evict = orig })
  const r = await call('DELETE', '/streams/live/cam1/publisher')
  t.same([r.status, r.body.code], [409, 4105])
})

t.test('GET events lists takeovers, refusals and corrections, newest first, bounded', async (t) => {
  const { sim, call, app } = await world(t, { EVENTS_MAX: '3' })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  await sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(async () => await app.eventLog.total() >= 1, 5000, 'the takeover event')
  sim.seedLive(2, { prefix: 'seen-by-reconcile-' })
  await app.reconciler.run()
  const r = await call('GET', '/events')
  t.equal(r.body.total, 3)
  t.equal(r.body.max, 3)
  t.match(r.body.items.map((e: any) => e.type), ['correction', 'correction', 'takeover'])
  t.ok(r.body.items[0].seq > r.body.items[1].seq, 'newest first')
  t.match((await call('GET', '/events?type=takeover')).body.items, [{ type: 'takeover', stream: '/live/cam1', waitMs: Number }])
  t.equal((await call('GET', '/events?limit=1')).body.items.length, 1)
  await sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(async () => await app.eventLog.total() >= 4, 5000, 'a second takeover')
  const after = await call('GET', '/events')
  t.equal(after.body.items.length, 3, 'the oldest went')
  t.equal(after.body.items[0].type, 'takeover')
  for (const q of ['?type=reboot', '?limit=0', '?limit=1001', '?since=1']) {
    const bad = await call('GET', `/events${q}`)
    t.same([bad.status, bad.body.code], [400, 4100], q)
  }
})

t.test('the pieces: the ring buffer, the merge without SRS, time parsing', async (t) => {
  const log = new MemoryEventStore(2)
  await log.add({ type: 'refusal', at: 5, stream: '/a/b', client: 'c', code: 1001, msg: 'm' })
  t.match(await log.list(10), [{ at: 5, seq: 1 }])
  const view = (streams: any[]) => [{ server: 's1', ok: true, msg: null, streams, clients: [] }]
  t.same(mergeStreams([], [], 0), [])
  t.match(mergeStreams([{ server: 's1', key: 'v.example/a/b', vhost: 'v.example', app: 'a', stream: 'b', clientId: 'c', since: 1, state: 'confirmed', takeovers: 2 }], [{ server: 's1', ok: false, msg: 'down', streams: [], clients: [] }], 0),
    [{ server: 's1', stream_url: 'v.example/a/b', vhost: 'v.example', publisher: { client_id: 'c', ip: null, since: 1, state: 'confirmed' }, stream_id: null, active: null }])
  t.match(mergeStreams([], view([{ id: 'vid-1', name: 's', app: 'a', vhost: 'vid-x', url: 'other.example/a/s', publish: { active: true, cid: 'p' } }]), 0),
    [{ vhost: 'other.example', publisher: { client_id: 'p', ip: null, since: null, state: 'srs' } }])
  t.match(mergeStreams([], view([{ id: 'vid-2', name: 's', app: 'a', vhost: 'vid-x', publish: { active: true } }]), 0),
    [{ stream_url: '/a/s', vhost: '__defaultVhost__', publisher: null }], 'SRS 4: no url; a publisher without cid')
  t.match(mergeStreams([{ server: 's2', key: '/a/b', vhost: '__defaultVhost__', app: 'a', stream: 'b', clientId: 'c', since: 1, state: 'publishing', takeovers: 0 }], view([]), 0),
    [{ server: 's2', stream_url: '/a/b', active: null }], 'a server no view was asked of shows its table entries')
  t.equal(parseTime('1700000000000'), 1700000000000)
  t.equal(parseTime('2024-01-02'), Date.UTC(2024, 0, 2))
  t.equal(parseTime('2024-02-31x'), null)
  t.equal(parseTime('soon'), null)
})

t.test('an operator request whose JSON body does not parse is refused with 400 and code 4001', async (t) => {
  const h = await startApp(t, { DATA_DIR: join(t.testdir(), 'data') })
  const res = await fetch(`${h.url}${ADMIN}/rtp-servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"stream_id":' })
  t.equal(res.status, 400)
  t.match(await res.json(), { code: 4001, msg: /not valid JSON.*; send the body as a JSON object$/ })
})
