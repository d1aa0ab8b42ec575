import { join } from 'node:path'
import t, { type Test } from 'tap'
import { evict } from '../src/cli/evict.js'
import { Codes } from '../src/errors.js'
import { postHook, startApp, waitFor } from './fixtures/app.js'
import { SrsSimulator, type SimOptions } from './fixtures/srs-sim.js'

/**
 * Several SRS servers behind one srs-hooks (SRS_API_URL lists them): every hook is routed by its
 * server_id to the API of the SRS that sent it; a camera that reconnects to another origin takes
 * its stream over there; one server down never costs another its entries.
 */

const ADMIN = '/admin-api/video/camera'

async function twoServers (t: Test, env: Record<string, string> = {}, simOpts: SimOptions = {}) {
  const a = await SrsSimulator.start({ version: '6', serverId: 'vid-origin-a', ...simOpts })
  const b = await SrsSimulator.start({ version: '6', serverId: 'vid-origin-b', ...simOpts })
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  const h = await startApp(t, { SRS_API_URL: `${a.apiUrl},${b.apiUrl}`, DATA_DIR: join(t.testdir(), 'data'), ...env })
  a.setHookBase(h.hookBase)
  b.setHookBase(h.hookBase)
  await h.app.srsServers.discover()
  const admin = async (method: string, path: string) => {
    const res = await fetch(`${h.url}${ADMIN}${path}`, { method })
    return { status: res.status, body: await res.json() as any }
  }
  return { a, b, ...h, admin }
}

t.test('each server\'s hooks are looked up and kicked on that server only', async (t) => {
  const { a, b, app } = await twoServers(t)
  t.same(app.srsServers.nodes.map((n) => n.server.id), ['vid-origin-a', 'vid-origin-b'], 'ids learnt from each API')
  const onA = await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  const onB = await b.publish({ app: 'live', stream: 'cam2', stalled: true })
  const newA = await a.publish({ app: 'live', stream: 'cam1' })
  const newB = await b.publish({ app: 'live', stream: 'cam2' })
  t.ok(newA.ok && newB.ok)
  t.same(a.kicks, [onA.clientId], 'A\'s takeover kicked on A')
  t.same(b.kicks, [onB.clientId], 'B\'s takeover kicked on B')
  t.match(await app.publishers.store.get('vid-origin-a', '/live/cam1'), { clientId: newA.clientId })
  t.match(await app.publishers.store.get('vid-origin-b', '/live/cam2'), { clientId: newB.clientId })
})

t.test('the same stream name on two servers is two entries; reconciliation of one never drops the other\'s', async (t) => {
  const { a, b, app } = await twoServers(t, { CROSS_SERVER: 'ignore' })
  const pa = await a.publish({ app: 'live', stream: 'cam1' })
  const pb = await b.publish({ app: 'live', stream: 'cam1' })
  t.ok(pa.ok && pb.ok, 'CROSS_SERVER=ignore: both publish')
  t.same([a.kicks, b.kicks], [[], []], 'nobody evicted')
  t.same((await app.publishers.store.holders('/live/cam1')).map((p) => p.server).sort(), ['vid-origin-a', 'vid-origin-b'])
  b.setFault('down')
  await app.reconciler.run()
  t.equal(app.reconciler.failures, 1, 'B failed')
  t.match(await app.publishers.store.get('vid-origin-b', '/live/cam1'), { clientId: pb.clientId }, 'B\'s entries are kept while it is down')
  t.match(await app.publishers.store.get('vid-origin-a', '/live/cam1'), { clientId: pa.clientId, state: 'confirmed' }, 'A was reconciled')
})

t.test('a camera that reconnects to the other origin takes its stream over there; CROSS_SERVER=ignore leaves it', async (t) => {
  const { a, b, app, logs } = await twoServers(t)
  const old = await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  const moved = await b.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
  t.ok(moved.ok, 'allowed on B')
  t.same(a.kicks, [old.clientId], 'the dead connection on A was evicted')
  t.same(b.kicks, [])
  t.equal(a.activePublisher('live', 'cam1'), undefined, 'A released it before B\'s reply')
  const line = await logs.wait((l) => l.type === 'takeover' && l.from === 'vid-origin-a')
  t.match(line, { server: 'vid-origin-b', incumbent: old.clientId, newcomer: moved.clientId, path: 'publish' })
  t.match(await app.publishers.store.get('vid-origin-b', '/live/cam1'), { clientId: moved.clientId, takeovers: 1 })

  const ignore = await twoServers(t, { CROSS_SERVER: 'ignore' })
  await ignore.a.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok((await ignore.b.publish({ app: 'live', stream: 'cam1' })).ok)
  t.same(ignore.a.kicks, [], 'ignored: nobody evicted')
})

t.test('a stream another server no longer has is not taken over there, and its stale entry goes', async (t) => {
  const { a, b, app } = await twoServers(t)
  const old = await a.publish({ app: 'live', stream: 'cam1' })
  await a.stop(old.clientId)
  // The table still names A if its on_unpublish was lost: say so.
  await app.publishers.store.set({ server: 'vid-origin-a', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: old.clientId, since: 1, state: 'confirmed', takeovers: 0 })
  t.ok((await b.publish({ app: 'live', stream: 'cam1' })).ok)
  t.same(a.kicks, [])
  t.equal(await app.publishers.store.get('vid-origin-a', '/live/cam1'), undefined, 'the stale entry was dropped')
})

t.test('the other server down: the newcomer is let in on its own free server, the failure counted', async (t) => {
  const { a, b, app } = await twoServers(t, { SRS_API_RETRIES: '0' })
  await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  a.setFault('down')
  t.ok((await b.publish({ app: 'live', stream: 'cam1' })).ok)
  t.equal(app.publisherStats.apiFailures.unreachable, 1)
})

t.test('a newcomer not verified on its own server evicts nobody on the other', async (t) => {
  const { a, b, hookBase } = await twoServers(t)
  await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  const viewer = await b.play({ app: 'live', stream: 'cam1' })
  const stream = b.hookCalls.find((c) => c.hook === 'on_play')!.body.stream_id
  const r = await postHook(hookBase, 'on_publish', { action: 'on_publish', server_id: 'vid-origin-b', client_id: viewer.clientId, vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', stream_id: stream })
  t.equal(r.reply.code, Codes.PUBLISHER_NOT_VERIFIED)
  t.same(a.kicks, [])
})

t.test('a hook from an SRS none of SRS_API_URL is: one rediscovery, then FAIL_MODE, logged once, counted, nobody evicted', async (t) => {
  const { a, app, hookBase, logs } = await twoServers(t, { SRS_API_RETRIES: '0' })
  await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  const streamId = a.hookCalls.find((c) => c.hook === 'on_publish')!.body.stream_id
  const before = a.apiRequests
  const body = { action: 'on_publish', server_id: 'vid-stranger', client_id: 'x1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', stream_id: streamId }
  const r = await postHook(hookBase, 'on_publish', body)
  t.same(r.reply, { code: 0, msg: null }, 'FAIL_MODE=open allows, without a takeover')
  t.equal(a.apiRequests - before, 1, 'one rediscovery (the version of each server)')
  await postHook(hookBase, 'on_publish', { ...body, client_id: 'x2' })
  t.equal(a.apiRequests - before, 1, 'not again within the rediscovery interval')
  t.same(a.kicks, [])
  t.equal(logs.lines.filter((l) => l.serverId === 'vid-stranger').length, 1, 'logged once per server id')
  t.equal(app.srsServers.unknownHooks, 2)
  const noId = await postHook(hookBase, 'on_publish', { ...body, server_id: undefined })
  t.same(noId.reply, { code: 0, msg: null }, 'no server_id with several servers: unknown too')
  const release = await postHook(hookBase, 'on_unpublish', { ...body, action: 'on_unpublish' })
  t.same(release.reply, { code: 0, msg: null }, 'release hooks of an unknown server are answered')
  const close = await postHook(hookBase, 'on_close', { action: 'on_close', server_id: 'vid-stranger', client_id: 'x1', vhost: '__defaultVhost__', app: 'live' })
  t.same(close.reply, { code: 0, msg: null })

  const closed = await twoServers(t, { FAIL_MODE: 'closed', SRS_API_RETRIES: '0' })
  const c = await postHook(closed.hookBase, 'on_publish', body)
  t.match(c.reply, { code: Codes.SRS_API_UNAVAILABLE, msg: /server_id "vid-stranger" is none of the SRS servers/ })
  const creds = await twoServers(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: 'publish-secret-0123456789abcdef' })
  const refused = await postHook(creds.hookBase, 'on_publish', body)
  t.equal(refused.reply.code, Codes.SIGNATURE_MISSING, 'credentials are still checked first')
})

t.test('GET streams, /readyz and the kick name the server; an ambiguous stream name needs ?server=', async (t) => {
  const { a, b, admin, url } = await twoServers(t, { CROSS_SERVER: 'ignore' }, { releaseDelayMs: 20 })
  const pa = await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  const pb = await b.publish({ app: 'live', stream: 'cam1', stalled: true })
  await b.publish({ app: 'live', stream: 'only-b', stalled: true })
  const streams = await admin('GET', '/streams')
  t.match(streams.body.servers, [{ server: 'vid-origin-a', api: a.apiUrl, ok: true, version: '6.0.184', strategy: 'publish' }, { server: 'vid-origin-b', api: b.apiUrl, ok: true }])
  t.match(streams.body.streams, [
    { server: 'vid-origin-a', stream_url: '/live/cam1', publisher: { client_id: pa.clientId } },
    { server: 'vid-origin-b', stream_url: '/live/cam1', publisher: { client_id: pb.clientId } },
    { server: 'vid-origin-b', stream_url: '/live/only-b' }
  ])
  const ambiguous = await admin('DELETE', '/streams/live/cam1/publisher')
  t.same([ambiguous.status, ambiguous.body.code], [409, Codes.AMBIGUOUS_STREAM])
  t.match(ambiguous.body.msg, /published on several servers \(vid-origin-a, vid-origin-b\); name one with \?server=/)
  const byId = await admin('DELETE', '/streams/live/cam1/publisher?server=vid-origin-b')
  t.match(byId.body, { code: 0, server: 'vid-origin-b', client_id: pb.clientId })
  const byUrl = await admin('DELETE', `/streams/live/cam1/publisher?server=${encodeURIComponent(a.apiUrl + '/')}`)
  t.match(byUrl.body, { code: 0, server: 'vid-origin-a', client_id: pa.clientId })
  const onlyB = await admin('DELETE', '/streams/live/only-b/publisher')
  t.match(onlyB.body, { code: 0, server: 'vid-origin-b' }, 'the one server that publishes it')
  const none = await admin('DELETE', '/streams/live/nobody/publisher')
  t.same([none.status, none.body.code], [404, Codes.NOTHING_TO_EVICT])
  const unknown = await admin('DELETE', '/streams/live/cam1/publisher?server=vid-nope')
  t.same([unknown.status, unknown.body.code], [400, Codes.INVALID_QUERY])
  t.match(unknown.body.msg, /no server "vid-nope": name one by its id or API URL/)

  b.setFault('down')
  const ready = await fetch(`${url}/readyz`)
  t.equal(ready.status, 200, 'one SRS of two down: still ready')
  const body = await ready.json() as any
  t.match(body.servers, [{ server: 'vid-origin-a', ok: true }, { server: 'vid-origin-b', ok: false, msg: /failed/ }])
  a.setFault('down')
  t.equal((await fetch(`${url}/readyz`)).status, 503, 'no SRS answers: not ready')
})

t.test('srs-hooks evict finds the server that publishes the stream, or takes --server', async (t) => {
  const { a, b } = await twoServers(t, { CROSS_SERVER: 'ignore' })
  const env = { SRS_API_URL: `${a.apiUrl},${b.apiUrl}`, SRS_API_RETRIES: '0' }
  const run = async (args: string[]) => {
    const out: string[] = []
    const err: string[] = []
    const code = await evict(args, { out: (l) => out.push(l), err: (l) => err.push(l), env })
    return { code, out: out.join('\n'), err: err.join('\n') }
  }
  const pb = await b.publish({ app: 'live', stream: 'cam1', stalled: true })
  const found = await run(['live/cam1'])
  t.equal(found.code, 0, found.err)
  t.same(b.kicks, [pb.clientId])
  const pa = await a.publish({ app: 'live', stream: 'cam2', stalled: true })
  await b.publish({ app: 'live', stream: 'cam2', stalled: true })
  const ambiguous = await run(['live/cam2'])
  t.equal(ambiguous.code, 2)
  t.match(ambiguous.err, /published on several servers .*name one with --server/)
  const named = await run(['--server', 'vid-origin-a', 'live/cam2'])
  t.equal(named.code, 0, named.err)
  t.same(a.kicks, [pa.clientId])
  const bad = await run(['--server', 'vid-nope', 'live/cam2'])
  t.equal(bad.code, 2)
  t.match(bad.err, /no server "vid-nope" in SRS_API_URL or ZLM_API_URL; name one by its id or API URL: /)
  t.match(bad.err, `vid-origin-a = ${a.apiUrl}, vid-origin-b = ${b.apiUrl}`, 'the known servers, by id and URL')
  const badOption = await run(['--nope', 'live/cam2'])
  t.equal(badOption.code, 2)
  const nothing = await run(['live/nobody'])
  t.equal(nothing.code, 3)
  t.match(nothing.err, /no SRS server lists an active publisher of \/live\/nobody/)
  b.setFault('down')
  const downNamed = await run(['--server', 'vid-nope', 'live/cam2'])
  t.equal(downNamed.code, 2)
  t.match(downNamed.err, `vid-origin-a = ${a.apiUrl}, ${b.apiUrl} (its API did not answer: id unknown)`, 'a server that does not answer is named by its URL')
})

t.test('an SRS upgraded across a restart: its version is read again and takeovers move to on_connect', async (t) => {
  const sim = await SrsSimulator.start({ version: '7' })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, PUBLISH_AUTH: 'signed', PUBLISH_SECRET: 'publish-secret-0123456789abcdef', SRS_API_RETRIES: '0' })
  sim.setHookBase(h.hookBase)
  await h.app.srsServers.discover()
  const node = h.app.srsServers.nodes[0]!
  t.equal(node.strategy, 'publish')
  const service = sim.serviceId
  await sim.restart({ version: '7-token', downMs: 50 })
  t.not(sim.serviceId, service)
  // Any answer naming a new service (SRS restarted) makes srs-hooks read the version again.
  await node.api.streams(0, 10)
  await waitFor(() => node.strategy === 'connect', 5000, 'the connect strategy')
  t.equal(node.version?.revision, 62)
  t.ok(h.logs.find((l) => /takeovers happen at on_connect/.test(l.msg)))
})

t.test('the API answering again after failing makes srs-hooks read the version again', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, SRS_API_RETRIES: '0', RECONCILE_INTERVAL_MS: '0' })
  await h.app.srsServers.discover()
  const node = h.app.srsServers.nodes[0]!
  sim.setFault('down')
  await node.api.streams(0, 10).catch(() => {})
  t.equal(node.api.status.up, false)
  sim.setFault('none')
  const versions = sim.apiRequests
  await node.api.streams(0, 10)
  await waitFor(() => sim.apiRequests >= versions + 2, 5000, 'the version read again')
  t.ok(h.logs.find((l) => l.why === 'recovered'))
})

t.test('with several servers, a hook without server_id is nobody\'s: answered, evicting nothing', async (t) => {
  const { hookBase, a } = await twoServers(t, { FAIL_MODE: 'closed' })
  const play = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'p1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' })
  t.same(play.reply, { code: 0, msg: null })
  const close = await postHook(hookBase, 'on_close', { action: 'on_close', client_id: 'p1', vhost: '__defaultVhost__', app: 'live' })
  t.same(close.reply, { code: 0, msg: null })
  const pub = await postHook(hookBase, 'on_publish', { action: 'on_publish', client_id: 'p1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' })
  t.match(pub.reply, { code: Codes.SRS_API_UNAVAILABLE, msg: /server_id null is none of the SRS servers/ })
  t.same(a.kicks, [])
})

t.test('a stale table entry naming a server that is no longer configured is skipped', async (t) => {
  const { b, app } = await twoServers(t)
  await app.publishers.store.set({ server: 'vid-removed', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: 'gone', since: 1, state: 'confirmed', takeovers: 0 })
  t.ok((await b.publish({ app: 'live', stream: 'cam1' })).ok)
})

t.test('an SRS whose API was down at start: its id is learnt later, and a hook from another SRS is then told apart', async (t) => {
  const sim = await SrsSimulator.start({ version: '6', serverId: 'vid-late' })
  t.teardown(() => sim.close())
  sim.setFault('down')
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, SRS_API_RETRIES: '0' })
  sim.setHookBase(h.hookBase)
  await h.app.srsServers.discover()
  const node = h.app.srsServers.nodes[0]!
  t.equal(node.api.status.server, undefined, 'not known yet')
  const streams = await fetch(`${h.url}${ADMIN}/streams`).then(async (r) => await r.json() as any)
  t.match(streams.servers, [{ server: sim.apiUrl, ok: false, version: null, strategy: 'both' }], 'shown by its API URL until it answers')
  const ready = await fetch(`${h.url}/readyz`).then(async (r) => await r.json() as any)
  t.match(ready.servers, [{ server: null, ok: false }])
  // Before its API answers, a hook naming any server id is taken for the only server's.
  const early = await postHook(h.hookBase, 'on_publish', { action: 'on_publish', server_id: 'vid-stranger', client_id: 'x1', vhost: '__defaultVhost__', app: 'live', stream: 'cam9', stream_url: '/live/cam9' })
  t.same(early.reply, { code: 0, msg: null })
  t.equal(h.app.publisherStats.apiFailures.unreachable, 1, 'and its lookup fails as SRS\'s API does')
  sim.setFault('none')
  const stranger = await postHook(h.hookBase, 'on_publish', { action: 'on_publish', server_id: 'vid-stranger2', client_id: 'x2', vhost: '__defaultVhost__', app: 'live', stream: 'cam9', stream_url: '/live/cam9' })
  t.same(stranger.reply, { code: 0, msg: null })
  t.equal(node.api.status.server, 'vid-late', 'the hook made srs-hooks ask SRS who it is')
  t.ok(h.logs.find((l) => l.serverId === 'vid-stranger2' && l.level === 40), 'and told the stranger apart')
})

t.test('an unknown server reported while another server has not answered yet lists it by its API URL', async (t) => {
  const a = await SrsSimulator.start({ version: '6', serverId: 'vid-a' })
  const b = await SrsSimulator.start({ version: '6', serverId: 'vid-b' })
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  b.setFault('down')
  const h = await startApp(t, { SRS_API_URL: `${a.apiUrl},${b.apiUrl}`, SRS_API_RETRIES: '0' })
  await h.app.srsServers.discover()
  await postHook(h.hookBase, 'on_play', { action: 'on_play', server_id: 'vid-c', client_id: 'p', vhost: '__defaultVhost__', app: 'live', stream: 's' })
  const line = await h.logs.wait((l) => l.serverId === 'vid-c')
  t.match(line.known, [{ srsApi: a.apiUrl, server: 'vid-a' }, { srsApi: b.apiUrl, server: null }])
})

t.test('two replicas sharing their locks: a takeover and an eviction of one stream take turns', async (t) => {
  const { MemoryLocks } = await import('../src/publishers/lock.js')
  const { MemorySignals } = await import('../src/publishers/signals.js')
  const { MemoryPublisherStore } = await import('../src/publishers/store.js')
  const shared = { locks: new MemoryLocks(), signals: new MemorySignals(), store: new MemoryPublisherStore(100) }
  const sim = await SrsSimulator.start({ version: '6', releaseDelayMs: 100 })
  t.teardown(() => sim.close())
  const r1 = await startApp(t, { SRS_API_URL: sim.apiUrl }, { state: shared })
  const r2 = await startApp(t, { SRS_API_URL: sim.apiUrl }, { state: shared })
  sim.setHookBase(r1.hookBase)
  await r1.app.srsServers.discover()
  await r2.app.srsServers.discover()
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  // An operator's kick through replica 2 while a newcomer's takeover runs through replica 1.
  const [b, kick] = await Promise.all([
    sim.publish({ app: 'live', stream: 'cam1' }),
    fetch(`${r2.url}${ADMIN}/streams/live/cam1/publisher`, { method: 'DELETE' }).then(async (r) => ({ status: r.status, body: await r.json() as any }))
  ])
  t.ok(sim.kicks.includes(a.clientId))
  t.equal(new Set(sim.kicks).size, sim.kicks.length, 'nobody kicked twice')
  t.ok(b.ok || kick.status === 200, 'one of them freed the stream')
  t.ok([200, 404, 409, 504].includes(kick.status), `the kick answered ${kick.status}`)
})

t.test('the stream held on another server is found past the newcomer\'s own stale entry and past a stale stream id', async (t) => {
  const { a, b, app } = await twoServers(t)
  const old = await a.publish({ app: 'live', stream: 'cam1', stalled: true })
  // B's table still has an old entry of its own for the stream, and A's entry an outdated stream id.
  await app.publishers.store.set({ server: 'vid-origin-b', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: 'gone', since: 1, state: 'confirmed', takeovers: 0 })
  const entry = await app.publishers.store.get('vid-origin-a', '/live/cam1')
  await app.publishers.store.set({ ...entry!, streamId: 'vid-outdated' })
  t.ok((await b.publish({ app: 'live', stream: 'cam1' })).ok)
  t.same(a.kicks, [old.clientId])
})
