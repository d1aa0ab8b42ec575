import t from 'tap'
import { pino } from 'pino'
import { MemoryPublisherStore, type Publisher } from '../src/publishers/store.js'
import type { LiveStream } from '../src/publishers/policy.js'
import { zlmReleaseTopic, type ZlmMediaServer } from '../src/zlm/adapter.js'
import { StreamReleases } from '../src/zlm/releases.js'
import { waitFor, LogCapture } from './fixtures/app.js'
import { onPublishOf, startZlmWorld } from './fixtures/zlm-app.js'

/**
 * ZLMediaKit's release hook names no session and comes once per schema, out of order: it only
 * prompts a check that ZLMediaKit's API confirms. A late one cannot end a later wait.
 */

t.test('a late regist:false of an earlier unpublish does not end a later takeover\'s wait early', async (t) => {
  let delayUnregist = false
  const { sim, app } = await startZlmWorld(t, { TAKEOVER_TIMEOUT_MS: '4000' }, {
    // The regist:false of p1's clean stop arrive 800 ms late, in the middle of n's takeover.
    hookDelayMs: (hook, body) => hook === 'on_stream_changed' && body.regist === false && delayUnregist ? 800 : 0
  })
  const p1 = await sim.publish({ app: 'live', stream: 'cam1' })
  delayUnregist = true
  sim.stop(p1.id)
  delayUnregist = false
  const h = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(h.ok)
  await waitFor(async () => (await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.state === 'confirmed', 5000, 'h confirmed by its regist:true')
  sim.setCloseDelay(1500)
  const n = await sim.publish({ app: 'live', stream: 'cam1' })
  const late = sim.calls('on_stream_changed').filter((c) => c.body.regist === false && c.startedAt < onPublishOf(sim, n.id)!.startedAt + onPublishOf(sim, n.id)!.ms)
  t.ok(late.length >= 1, `p1's regist:false arrived while n waited (${late.length})`)
  t.same([n.ok, n.reason], [true, ''], 'n was answered only once h had really gone: ZLMediaKit let it in')
  t.ok(onPublishOf(sim, n.id)!.ms >= 1400, `n waited for h's close (${onPublishOf(sim, n.id)!.ms} ms)`)
  t.same(sim.kicks, [h.id])
})

t.test('the regist:false of every schema are collapsed into one check of ZLMediaKit\'s API', async (t) => {
  const { sim, app } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  await waitFor(async () => (await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.state === 'confirmed', 5000, 'confirmed')
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok)
  await waitFor(() => sim.calls('on_stream_changed').filter((c) => c.body.regist === false).length === 4, 5000, 'the four regist:false')
  await app.zlm.idle()
  t.equal(app.zlm.releases.checks, 1, 'four regist:false, one check')
  t.not(a.id, b.id)
})

t.test('a clean stop removes the publisher from the table once ZLMediaKit confirms it; a newcomer\'s entry is kept', async (t) => {
  const { sim, app } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(async () => (await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.state === 'confirmed', 5000, 'confirmed')
  sim.stop(a.id)
  await waitFor(async () => (await app.publishers.store.get('zlm-test-1', '/live/cam1')) === undefined, 5000, 'the entry removed')
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  await app.zlm.idle()
  t.equal((await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.clientId, b.id)
})

t.test('a crashed publisher\'s session end (on_flow_report) is checked too: its lingering source is free', async (t) => {
  const { sim, app } = await startZlmWorld(t, {}, { flowThresholdKB: 0 })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(async () => (await app.publishers.store.get('zlm-test-1', '/live/cam1'))?.state === 'confirmed', 5000, 'confirmed')
  sim.crash(a.id)
  await sim.waitForHook((c) => c.hook === 'on_flow_report' && c.body.id === a.id)
  await waitFor(async () => (await app.publishers.store.get('zlm-test-1', '/live/cam1')) === undefined, 5000, 'the entry removed')
  t.same(sim.schemas('live', 'cam1').length > 0, true, 'the source lingers (continue_push_ms)')
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: true, continued: true }, 'a reconnect continues it, nobody kicked')
  t.same(sim.kicks, [])
})

// ------------------------------------------------------------------ StreamReleases on its own

function fakeServer (live: () => Promise<LiveStream>, awaited: string[] = []): ZlmMediaServer & { forgotten: string[] } {
  const forgotten: string[] = []
  return {
    id: 'z1',
    live,
    awaited: () => awaited,
    forget: (_key: string, holders: string[]) => { forgotten.push(...holders) },
    forgotten
  } as unknown as ZlmMediaServer & { forgotten: string[] }
}

const entry = (clientId: string, state: Publisher['state']): Publisher =>
  ({ server: 'z1', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId, since: 1, state, takeovers: 0 })

t.test('StreamReleases: an unconfirmed entry is neither signalled nor removed when the stream is gone', async (t) => {
  const store = new MemoryPublisherStore(10)
  const emitted: string[] = []
  const r = new StreamReleases({ store, emit: (topics) => emitted.push(...topics), log: pino({ level: 'silent' }), now: Date.now, timeoutMs: 100 })
  await store.set(entry('n1', 'publishing'))
  await r.changed(fakeServer(async () => ({ active: false })), '/live/cam1')
  t.same(emitted, [], 'it may not have registered yet')
  t.equal(r.checks, 0, 'nobody to signal: ZLMediaKit is not even asked')
  t.ok(await store.get('z1', '/live/cam1'))
})

t.test('StreamReleases: awaited holders are signalled when another holds the stream; the table is left to the newcomer', async (t) => {
  const store = new MemoryPublisherStore(10)
  const emitted: string[] = []
  const r = new StreamReleases({ store, emit: (topics) => emitted.push(...topics), log: pino({ level: 'silent' }), now: Date.now, timeoutMs: 100 })
  await store.set(entry('h1', 'confirmed'))
  const server = fakeServer(async () => ({ active: true, holder: 'c9' }), ['h0'])
  await r.changed(server, '/live/cam1')
  t.same(emitted.sort(), [zlmReleaseTopic('z1', '/live/cam1', 'h0'), zlmReleaseTopic('z1', '/live/cam1', 'h1')].sort())
  t.same(server.forgotten.sort(), ['h0', 'h1'])
  t.equal((await store.get('z1', '/live/cam1'))?.clientId, 'h1', 'not removed while someone publishes')
  emitted.length = 0
  await r.changed(fakeServer(async () => ({ active: true, holder: 'h1' })), '/live/cam1')
  t.same(emitted, [], 'the holder itself is not signalled')
})

t.test('StreamReleases: an API failure signals nothing; a table failure is logged; checks of one stream run one at a time', async (t) => {
  const logs = new LogCapture()
  const store = new MemoryPublisherStore(10)
  const emitted: string[] = []
  const r = new StreamReleases({ store, emit: (topics) => emitted.push(...topics), log: pino({ level: 'debug' }, logs.stream), now: Date.now, timeoutMs: 100 })
  await store.set(entry('h1', 'confirmed'))
  await r.changed(fakeServer(async () => { throw new Error('ZLMediaKit down') }), '/live/cam1')
  t.same(emitted, [])
  t.match(await logs.wait((l) => /could not check who holds the stream/.test(l.msg)), { level: 20, err: 'ZLMediaKit down' })
  let calls = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const slow = fakeServer(async () => { calls++; await gate; return { active: false } }, ['h1'])
  const first = r.changed(slow, '/live/cam1')
  const second = r.changed(slow, '/live/cam1')
  const third = r.changed(slow, '/live/cam1')
  let idle = false
  const waiting = r.idle().then(() => { idle = true })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(idle, false, 'not idle while a check runs')
  release()
  await Promise.all([first, second, third, waiting])
  t.equal(calls, 2, 'three prompts while one ran: that one and one more')
  await r.idle()
  const broken = new StreamReleases({
    store: { ...store, get: async () => { throw new Error('redis gone') } } as unknown as MemoryPublisherStore,
    emit: () => {},
    log: pino({ level: 'debug' }, logs.stream),
    now: Date.now,
    timeoutMs: 100
  })
  await broken.changed(slow, '/live/cam1')
  t.match(await logs.wait((l) => /the release check failed/.test(l.msg)), { level: 40, err: 'redis gone' })
})

t.test('StreamReleases: regist:true confirms only the entry of its own session', async (t) => {
  const store = new MemoryPublisherStore(10)
  const r = new StreamReleases({ store, emit: () => {}, log: pino({ level: 'silent' }), now: Date.now, timeoutMs: 100 })
  const server = fakeServer(async () => ({ active: false }))
  t.equal(await r.registered(server, '/live/cam1', 'x'), false, 'no entry')
  await store.set(entry('n1', 'publishing'))
  t.equal(await r.registered(server, '/live/cam1', 'old'), false, 'a late regist:true of an older holder')
  t.equal(await r.registered(server, '/live/cam1', 'n1'), true)
  t.equal((await store.get('z1', '/live/cam1'))?.state, 'confirmed')
  t.equal(await r.registered(server, '/live/cam1', 'n1'), false, 'already confirmed')
  // Replaced between the two reads.
  let reads = 0
  const racing = { ...store, get: async (s: string, k: string) => ++reads === 1 ? entry('n2', 'publishing') : await store.get(s, k), set: store.set.bind(store) } as unknown as MemoryPublisherStore
  const r2 = new StreamReleases({ store: racing, emit: () => {}, log: pino({ level: 'silent' }), now: Date.now, timeoutMs: 100 })
  t.equal(await r2.registered(server, '/live/cam1', 'n2'), false, 'the entry changed meanwhile: left alone')
})
