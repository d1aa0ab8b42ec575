import t from 'tap'
import { Codes } from '../src/errors.js'
import { postHook, startApp, waitFor, startWorld } from './fixtures/app.js'
import { SrsSimulator, type ApiFault, type SrsVersion } from './fixtures/srs-sim.js'

/**
 * StreamBusy takeover end to end: the SRS simulator drives the server through its real hook
 * endpoints, as SRS does, and SRS's own busy check decides whether a publisher got the stream.
 */

const world = startWorld

const onPublishOf = (sim: SrsSimulator, clientId: string) =>
  sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === clientId)

for (const version of ['5-early', '5', '6', '7'] as SrsVersion[]) {
  t.test(`SRS ${version}: a stalled publisher is evicted and the newcomer is allowed on its first attempt`, async (t) => {
    const { sim, app, logs } = await world(t, {}, { version })
    const events: string[] = []
    app.publisherEvents.on((e) => events.push(e.type))
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    t.ok(a.ok, 'the first publisher got the stream')
    const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
    t.same({ ok: b.ok, code: b.code }, { ok: true, code: 0 }, 'the newcomer publishes without StreamBusy')
    t.equal(sim.activePublisher('live', 'cam1'), b.clientId)
    t.same(sim.kicks, [a.clientId], 'the stale publisher was kicked, once')
    const call = onPublishOf(sim, b.clientId)!
    t.ok(call.accepted)
    t.ok(call.ms < 3000, `on_publish answered in ${Math.round(call.ms)} ms`)
    t.match(await app.publishers.store.get(sim.serverId, '/live/cam1'), { clientId: b.clientId, ip: '10.0.0.9', takeovers: 1 })
    const line = await logs.wait((l) => l.msg?.startsWith('takeover:') === true)
    t.match(line, { level: 30, stream: '/live/cam1', incumbent: a.clientId, newcomer: b.clientId })
    t.type(line.waitMs, 'number')
    t.same(events, ['takeover'])
  })
}

t.test('the same stream pushed twice while both are alive: the newcomer wins, the old one is evicted', async (t) => {
  const { sim, app } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(a.ok && b.ok)
  t.equal(sim.activePublisher('live', 'cam1'), b.clientId)
  t.same(sim.kicks, [a.clientId])
  // The evicted publisher's own on_unpublish and on_close come after the release.
  await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === a.clientId)
  t.ok(sim.hookCalls.some((c) => c.hook === 'on_unpublish' && c.body.client_id === a.clientId && c.accepted))
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, b.clientId, 'the late on_unpublish did not remove the newcomer')
})

t.test('an on_unpublish from a publisher SRS refused (SRS 4, early 5) does not remove the live one', async (t) => {
  const { sim, app, hookBase } = await world(t, {}, { version: '5-early' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const r = await postHook(hookBase, 'on_unpublish', { action: 'on_unpublish', client_id: 'refused1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' })
  t.same(r.reply, { code: 0, msg: null })
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId)
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
})

t.test('five publishers race for one stream: one ends active, all answered within the bound, nobody evicted twice', async (t) => {
  const { sim, app } = await world(t, { TAKEOVER_TIMEOUT_MS: '3000' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const racers = await Promise.all(Array.from({ length: 5 }, (_, i) => sim.publish({ app: 'live', stream: 'cam1', ip: `10.0.0.${i + 1}` })))
  const ids = racers.map((r) => r.clientId)
  const active = sim.activePublisher('live', 'cam1')
  t.ok(active !== undefined && ids.includes(active), 'one of the racers holds the stream')
  for (const r of racers) {
    const fate = r.clientId === active ? 'active' : sim.kicks.includes(r.clientId) ? 'evicted' : r.ok ? 'unexpected' : 'refused'
    t.not(fate, 'unexpected', `${r.clientId} (${r.ok ? 'published' : r.code}) is active, evicted or refused`)
    const call = onPublishOf(sim, r.clientId)!
    t.ok(call.status === 200 && call.ms < 3500, `${r.clientId}: on_publish answered with 200 in ${Math.round(call.ms)} ms`)
  }
  t.equal(new Set(sim.kicks).size, sim.kicks.length, `no client was kicked twice (${sim.kicks.join(', ')})`)
  t.ok(sim.kicks.includes(a.clientId), 'the original publisher was evicted')
  // Losers' on_close may have emptied the table; reconciliation brings SRS's truth back.
  await app.reconciler.run()
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, active)
})

t.test('a forged on_publish for a live stream evicts nobody', async (t) => {
  const { sim, hookBase, app } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const streamId = onPublishOf(sim, a.clientId)!.body.stream_id
  const forged = { action: 'on_publish', client_id: 'f0rged01', ip: '6.6.6.6', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', stream_id: streamId }
  const r = await postHook(hookBase, 'on_publish', forged)
  t.equal(r.reply.code, Codes.PUBLISHER_NOT_VERIFIED)
  // A real client of SRS that only plays the stream cannot take it over either.
  const viewer = await sim.play({ app: 'live', stream: 'cam1' })
  const r2 = await postHook(hookBase, 'on_publish', { ...forged, client_id: viewer.clientId })
  t.equal(r2.reply.code, Codes.PUBLISHER_NOT_VERIFIED)
  // A real publisher of another stream naming this stream's url with the other stream's id.
  const other = await sim.publish({ app: 'live', stream: 'cam2' })
  const r3 = await postHook(hookBase, 'on_publish', { ...forged, client_id: other.clientId, stream_id: streamId })
  t.equal(r3.reply.code, Codes.PUBLISHER_NOT_VERIFIED)
  const r4 = await postHook(hookBase, 'on_publish', { ...forged, client_id: other.clientId, stream: 'cam2', stream_url: '/live/cam2' })
  // The id of another stream is looked past, to the stream its url names: cam2, which it holds itself.
  t.equal(r4.reply.code, 0, 'with the url of its own stream and the id of this one, it is judged on its own stream')
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam2'))?.streamId, onPublishOf(sim, other.clientId)!.body.stream_id, 'filed under its own stream\'s id')
  t.same(sim.kicks, [], 'nobody was kicked')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  t.equal(sim.activePublisher('live', 'cam2'), other.clientId)
})

t.test('a release slower than TAKEOVER_TIMEOUT_MS: the reply comes at the bound and SRS decides', async (t) => {
  const { sim, logs, app } = await world(t, { TAKEOVER_TIMEOUT_MS: '400' }, { releaseDelayMs: 1500 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  const call = onPublishOf(sim, b.clientId)!
  t.ok(call.accepted, 'allowed at the bound')
  t.ok(call.ms >= 390 && call.ms < 900, `answered at the bound (${Math.round(call.ms)} ms)`)
  t.same({ ok: b.ok, code: b.code }, { ok: false, code: 1028 }, 'SRS still held the stream, so its own check refused')
  t.same(sim.kicks, [a.clientId])
  t.equal(app.publisherStats.takeoverTimeouts, 1)
  t.ok(await logs.wait((l) => l.outcome === 'takeover-timeout'))
  // Once SRS has released the stale publisher, the encoder's retry gets in.
  await sim.waitForHook((c) => c.hook === 'on_unpublish' && c.body.client_id === a.clientId)
  const retry = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(retry.ok)
})

t.test('on_hls and on_unpublish of the stream are answered while its on_publish waits', async (t) => {
  // SRS flushes pending on_hls inside the unpublish and waits for our reply before it releases
  // the stream: a lock held by the waiting on_publish would deadlock until SRS's 30 s timeout.
  const { sim } = await world(t, {}, { hlsOnRelease: true })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok, 'the takeover completed')
  const hls = sim.hookCalls.find((c) => c.hook === 'on_hls' && c.body.client_id === a.clientId)!
  t.ok(hls.accepted && hls.ms < 500, `on_hls answered in ${Math.round(hls.ms)} ms during the release`)
  t.ok(onPublishOf(sim, b.clientId)!.ms < 3000)
})

t.test('while one stream waits for a release, its other hooks and other streams go on', async (t) => {
  const { sim, hookBase } = await world(t, { TAKEOVER_TIMEOUT_MS: '3000' }, { releaseDelayMs: 1000 })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  let settled = false
  const b = sim.publish({ app: 'live', stream: 'cam1' }).finally(() => { settled = true })
  await waitFor(() => sim.kicks.length === 1, 3000, 'the kick')
  const body = { vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' }
  const hls = await postHook(hookBase, 'on_hls', { ...body, action: 'on_hls', client_id: a.clientId, duration: 2, seq_no: 3 })
  const unpub = await postHook(hookBase, 'on_unpublish', { ...body, action: 'on_unpublish', client_id: 'zzzzzzzz' })
  t.ok(hls.reply.code === 0 && hls.ms < 300, `on_hls answered in ${Math.round(hls.ms)} ms`)
  t.ok(unpub.reply.code === 0 && unpub.ms < 300, `on_unpublish answered in ${Math.round(unpub.ms)} ms`)
  const other = await sim.publish({ app: 'live', stream: 'cam2' })
  t.ok(other.ok, 'another stream publishes')
  t.ok(onPublishOf(sim, other.clientId)!.ms < 300, 'without waiting on cam1')
  t.notOk(settled, 'all that while cam1\'s on_publish was still waiting')
  t.ok((await b).ok)
})

const FAULTS: ApiFault[] = ['down', 'slow', 'garbage', 'unauthorized', 'error500']
for (const failMode of ['open', 'closed'] as const) {
  t.test(`SRS API failing, FAIL_MODE=${failMode}: a reply within the bound, nobody evicted`, async (t) => {
    const { sim, app } = await world(t, { FAIL_MODE: failMode, SRS_API_TIMEOUT_MS: '200', TAKEOVER_TIMEOUT_MS: '1000' })
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    for (const fault of FAULTS) {
      sim.setFault(fault, { slowMs: 5000 })
      const b = await sim.publish({ app: 'live', stream: 'cam1' })
      const call = onPublishOf(sim, b.clientId)!
      t.ok(call.status === 200 && call.ms < 1300, `${fault}: answered in ${Math.round(call.ms)} ms`)
      if (failMode === 'open') {
        t.ok(call.accepted, `${fault}: allowed`)
        t.equal(b.code, 1028, `${fault}: SRS's own check refused it, as without srs-hooks`)
      } else {
        t.equal(JSON.parse(call.replyBody).code, Codes.SRS_API_UNAVAILABLE, `${fault}: refused with 1002`)
        t.not(b.code, 0)
      }
    }
    sim.setFault('none')
    t.same(sim.kicks, [])
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
    const kinds = app.publisherStats.apiFailures
    t.ok((kinds.unreachable ?? 0) >= 1 && (kinds.timeout ?? 0) >= 1 && kinds.bad_body === 1 && kinds.unauthorized === 1 && kinds.http_status === 1,
      `each failure counted by kind: ${JSON.stringify(kinds)}`)
    // Once SRS answers again, takeover works again.
    const c = await sim.publish({ app: 'live', stream: 'cam1' })
    t.ok(c.ok)
  })
}

t.test('SRS API Basic auth: right credentials take over, wrong ones are an unauthorized failure', async (t) => {
  const auth = { username: 'admin', password: 's3cret' }
  const { sim } = await world(t, { SRS_API_USERNAME: 'admin', SRS_API_PASSWORD: 's3cret' }, { auth })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok((await sim.publish({ app: 'live', stream: 'cam1' })).ok)
  const wrong = await world(t, { SRS_API_USERNAME: 'admin', SRS_API_PASSWORD: 'nope', FAIL_MODE: 'closed' }, { auth })
  await wrong.sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await wrong.sim.publish({ app: 'live', stream: 'cam1' })
  t.match(JSON.parse(onPublishOf(wrong.sim, b.clientId)!.replyBody), { code: Codes.SRS_API_UNAVAILABLE, msg: /401/ })
})

t.test('SRS 4: a conflict cannot be verified, so it is refused and nobody is evicted', async (t) => {
  const { sim } = await world(t, {}, { version: '4' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(b.ok, false)
  t.equal(JSON.parse(onPublishOf(sim, b.clientId)!.replyBody).code, Codes.PUBLISHER_NOT_VERIFIED)
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  const c = await sim.publish({ app: 'live', stream: 'cam2' })
  t.ok(c.ok, 'a free stream publishes on SRS 4')
})

t.test('SRS >= 7.0.62 refuses the newcomer before on_publish: nothing to take over, nobody evicted', async (t) => {
  const { sim } = await world(t, {}, { version: '7-token' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same({ ok: b.ok, code: b.code }, { ok: false, code: 1028 })
  t.equal(onPublishOf(sim, b.clientId), undefined, 'SRS never asked')
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
})

t.test('restarted while streams are live: reconciliation restores the table and takeover works', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  sim.seedLive(24, { app: 'live', prefix: 'cam-' }) // live before srs-hooks (re)started
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, RECONCILE_INTERVAL_MS: '60000', SRS_API_PAGE_SIZE: '10' })
  sim.setHookBase(h.hookBase)
  await waitFor(() => h.app.reconciler.runs >= 1, 5000, 'the first reconciliation')
  t.equal(await h.app.publishers.store.size(), 24, 'all pages were read')
  const entry = await h.app.publishers.store.get(sim.serverId, '/live/cam-7')
  t.match(entry, { app: 'live', stream: 'cam-7', vhost: '__defaultVhost__', state: 'confirmed' })
  t.equal(entry?.clientId, sim.activePublisher('live', 'cam-7'))
  t.ok(h.logs.find((l) => l.correction === 'added' && l.stream === '/live/cam-7'), 'each correction is logged')
  const b = await sim.publish({ app: 'live', stream: 'cam-7' })
  t.ok(b.ok, 'the reconnecting camera takes its stream over')
  t.equal(sim.activePublisher('live', 'cam-7'), b.clientId)
})

t.test('reconciliation drops what SRS no longer has and replaces what it has changed', async (t) => {
  const { sim, app, logs } = await world(t)
  const reported: string[] = []
  app.publisherEvents.on((c) => { if (c.type === 'correction') reported.push(`${c.kind} ${c.stream}`) })
  const a = await sim.publish({ app: 'live', stream: 'gone' })
  const c = await sim.publish({ app: 'live', stream: 'changed' })
  const store = app.publishers.store
  // SRS loses one publisher without our hearing of it (its hooks went elsewhere)...
  sim.setHookBase('http://127.0.0.1:9/nowhere')
  await sim.stop(a.clientId)
  t.equal((await store.get(sim.serverId, '/live/gone'))?.clientId, a.clientId, 'the table is stale')
  // ...and the table holds the wrong client for another stream.
  await store.set({ ...(await store.get(sim.serverId, '/live/changed'))!, clientId: 'stale001' })
  await app.reconciler.run()
  t.equal(await store.get(sim.serverId, '/live/gone'), undefined)
  t.match(await store.get(sim.serverId, '/live/changed'), { clientId: c.clientId, state: 'confirmed' })
  t.match(logs.find((l) => l.correction === 'dropped'), { stream: '/live/gone', client: a.clientId })
  t.match(logs.find((l) => l.correction === 'replaced'), { stream: '/live/changed', client: c.clientId, previous: 'stale001' })
  t.equal(app.reconciler.corrections, 2)
  t.same(reported.sort(), ['dropped /live/gone', 'replaced /live/changed'], 'and reported as events')
})

t.test('entries written by a hook while a reconciliation lists SRS are left alone', async (t) => {
  const { sim, app } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  await app.reconciler.run()
  const before = await app.publishers.store.get(sim.serverId, '/live/cam1')
  t.match(before, { clientId: a.clientId, state: 'confirmed' }, 'a hook entry is confirmed by SRS')
  // Written "in the future" relative to the next listing: newer than what that listing can see.
  await app.publishers.store.set({ ...before!, clientId: 'newer001', since: Date.now() + 60_000 })
  await app.reconciler.run()
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, 'newer001')
})

t.test('a failed reconciliation is logged and retried on the next period', async (t) => {
  const { sim, app, logs } = await world(t, { RECONCILE_INTERVAL_MS: '50', SRS_API_RETRIES: '0' })
  sim.setFault('error500')
  await waitFor(() => app.reconciler.failures >= 1, 5000, 'a failed run')
  t.ok(logs.find((l) => l.level === 40 && /reconciliation with the server failed/.test(l.msg)))
  sim.setFault('none')
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const runs = app.reconciler.runs
  await waitFor(() => app.reconciler.runs > runs, 5000, 'a later run')
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId)
})
