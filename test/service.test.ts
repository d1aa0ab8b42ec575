import t, { type Test } from 'tap'
import { Codes } from '../src/errors.js'
import type { PublisherEvent } from '../src/publishers/events.js'
import type { PublishRequest } from '../src/publishers/service.js'
import { MemoryPublisherStore } from '../src/publishers/store.js'
import { srsTopic } from '../src/srs/adapter.js'
import { SrsApi } from '../src/srs/api.js'
import { waitFor } from './fixtures/app.js'
import { publishOf, serviceOver } from './fixtures/service.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * The takeover service against a scripted SRS API, for the edges the simulator does not reach:
 * answers that change between calls, failures at each step, SRS 4's missing fields.
 */
interface Script {
  stream?: Record<string, unknown> | null
  list?: Array<Record<string, unknown>>
  client?: Record<string, unknown> | null
  kick?: 'release' | 'gone' | 'fail' | 'noop'
  failOn?: RegExp
  /** Stream reads after the kick fail, as if SRS's API went down mid-takeover. */
  failPollsAfterKick?: boolean
}

async function setup (t: Test, script: Script, opts: { failMode?: 'open' | 'closed', timeoutMs?: number, events?: PublisherEvent[] } = {}) {
  const env = { code: 0, server: 'vid-s', service: 'x', pid: '1' }
  let released = false
  const srs = await StubServer.start((req, res) => {
    const url = req.url ?? ''
    if (script.failOn?.test(`${req.method} ${url}`) === true) return json(res, {}, 500)
    if (script.failPollsAfterKick === true && req.method === 'GET' && srs.requests.some((r) => r.method === 'DELETE')) return json(res, {}, 500)
    if (req.method === 'DELETE') {
      if (script.kick === 'gone') {
        script.stream = null // it left on its own between the lookup and the kick
        released = true
        return json(res, { code: 2049 })
      }
      if (script.kick === 'release') {
        // SRS releases the client: the stream goes inactive and the client leaves the API.
        released = true
        if (script.stream != null) script.stream = { ...script.stream, publish: { active: false, cid: 'A' } }
      }
      return json(res, env)
    }
    if (url === '/api/v1/clients/A') return json(res, released ? { code: 2049 } : { ...env, client: { id: 'A', stream: 'vid-1', type: 'fmle-publish', publish: true } })
    if (url.startsWith('/api/v1/streams/?')) return json(res, { ...env, streams: script.list ?? [] })
    if (url.startsWith('/api/v1/vhosts/')) return json(res, { ...env, vhosts: [{ id: 'vid-v', name: '__defaultVhost__' }] })
    if (url.startsWith('/api/v1/streams/')) return json(res, script.stream == null ? { code: 2048 } : { ...env, stream: script.stream })
    if (url.startsWith('/api/v1/clients/')) return json(res, script.client == null ? { code: 2049 } : { ...env, client: script.client })
  })
  const api = new SrsApi({ url: srs.url, timeoutMs: 300, retries: 0, pageSize: 10 })
  // Known as the server its API names (the app learns it from SRS's first answer).
  api.status.server = 'vid-s'
  const s = serviceOver(api, { takeoverTimeoutMs: opts.timeoutMs ?? 1000, failMode: opts.failMode ?? 'open' })
  if (opts.events !== undefined) s.events.push = (...e: PublisherEvent[]) => opts.events!.push(...e)
  t.teardown(async () => { await api.close(); await srs.close() })
  const req = (extra: Parameters<typeof publishOf>[1] = {}): PublishRequest => publishOf(s.server, extra)
  return { srs, service: s.service, store: s.store, logs: s.logs, stats: s.stats, server: s.server, script, req }
}

/** Makes the store's writes hang until the returned function is called. */
function stallWrites (store: MemoryPublisherStore): () => void {
  let unstall!: () => void
  const stalled = new Promise<void>((resolve) => { unstall = resolve })
  const set = store.set.bind(store)
  store.set = async (p) => { await stalled; await set(p) }
  return unstall
}

const live = (cid = 'A') => ({ id: 'vid-1', name: 'cam1', app: 'live', vhost: 'vid-v', url: '/live/cam1', publish: { active: true, cid } })
const newcomer = { id: 'B', stream: 'vid-1', url: '/live/cam1', type: 'fmle-publish', publish: true }

t.test('a free stream is allowed with one API call and recorded', async (t) => {
  const { service, store, srs, req } = await setup(t, { stream: null })
  const r = await service.publish(req())
  t.equal(r.outcome, 'allowed')
  t.equal(r.allowed, true)
  t.equal(srs.requests.length, 1)
  const stored = await store.get('vid-s', '/live/cam1')
  t.match(stored, { clientId: 'B', state: 'publishing', takeovers: 0, ip: '10.0.0.9' })
  // SRS lists no stream /live/cam1 yet: no stream id it confirmed for this stream is stored.
  t.equal(stored?.streamId, undefined)
})

t.test('a stream already held by the newcomer itself is allowed', async (t) => {
  const { service, req } = await setup(t, { stream: live('B') })
  t.equal((await service.publish(req())).outcome, 'allowed')
})

t.test('when SRS reports the release, the takeover completes without the hook', async (t) => {
  const { service, srs, store, logs, req, stats } = await setup(t, { stream: live(), client: newcomer, kick: 'release' })
  const r = await service.publish(req())
  t.equal(r.outcome, 'took-over')
  t.equal(r.evicted, 'A')
  t.equal(r.release?.via, 'api')
  t.ok(srs.requests.some((x) => x.method === 'DELETE' && x.url === '/api/v1/clients/A'))
  t.equal((await store.get('vid-s', '/live/cam1'))?.takeovers, 1)
  t.equal(stats.takeovers, 1)
  const line = await logs.wait((l) => l.msg?.startsWith('takeover:') === true)
  t.match(line, { level: 30, incumbent: 'A', newcomer: 'B', via: 'api' })
})

t.test('an incumbent already gone at the kick (2049) is a release too', async (t) => {
  const { service, req } = await setup(t, { stream: live(), client: newcomer, kick: 'gone' })
  const r = await service.publish(req())
  t.equal(r.outcome, 'took-over')
  t.equal(r.release?.via, 'api')
})

t.test('a failing poll keeps waiting; the hook signal ends the wait', async (t) => {
  const { service, srs, req } = await setup(t, { stream: live(), client: newcomer, kick: 'noop', failPollsAfterKick: true })
  const done = service.publish(req())
  const kickAt = () => srs.requests.findIndex((x) => x.method === 'DELETE')
  // Wait until at least one poll after the kick has failed; only on_unpublish can end the wait now.
  await waitFor(() => kickAt() !== -1 && srs.requests.length > kickAt() + 1, 2000, 'a failed poll')
  service.released([srsTopic('vid-s', 'unpublish', 'A')])
  const r = await done
  t.equal(r.outcome, 'took-over')
  t.equal(r.release?.via, 'hook')
})

t.test('no release in time: allowed at the bound, counted, logged', async (t) => {
  const { service, logs, req, stats } = await setup(t, { stream: live(), client: newcomer, kick: 'noop' }, { timeoutMs: 200 })
  const started = Date.now()
  const r = await service.publish(req())
  const took = Date.now() - started
  t.equal(r.outcome, 'takeover-timeout')
  t.equal(r.allowed, true)
  t.ok(took >= 190 && took < 600, `replied at the bound (${took} ms)`)
  t.equal(stats.takeoverTimeouts, 1)
  t.ok(logs.find((l) => l.level === 40 && /did not release/.test(l.msg)))
})

t.test('a newcomer SRS does not list as a publisher of this stream evicts nobody', async (t) => {
  const cases: Array<[string, Record<string, unknown> | null]> = [
    ['unknown client', null],
    ['a player', { ...newcomer, type: 'rtmp-play', publish: false }],
    ['a publisher of another stream', { ...newcomer, stream: 'vid-2', url: '/live/other' }]
  ]
  for (const [name, client] of cases) {
    const { service, srs, req } = await setup(t, { stream: live(), client })
    const r = await service.publish(req())
    t.equal(r.refusal?.code, Codes.PUBLISHER_NOT_VERIFIED, name)
    t.match(r.refusal?.msg, /nobody was evicted/)
    t.notOk(srs.requests.some((x) => x.method === 'DELETE'), `${name}: no kick`)
  }
})

t.test('a publisher of another stream that names this stream url is not verified', async (t) => {
  const { service, srs, req } = await setup(t, { stream: live(), client: { ...newcomer, stream: 'vid-other' }, kick: 'release' })
  t.equal((await service.publish(req())).refusal?.code, Codes.PUBLISHER_NOT_VERIFIED)
  t.notOk(srs.requests.some((x) => x.method === 'DELETE'), 'no kick')
})

t.test('a hook whose stream_id names another stream than its stream_url evicts nobody', async (t) => {
  // SRS lists stream vid-1 as /live/cam2; the hook claims /live/cam1 with vid-1's id.
  // The id is not taken for /live/cam1: the stream is judged by the url it names, which SRS does not list.
  const { service, srs, req } = await setup(t, { stream: { ...live(), url: '/live/cam2' }, client: newcomer, kick: 'release' })
  const r = await service.publish(req())
  t.not(r.outcome, 'took-over')
  t.equal(r.evicted, undefined, 'nobody evicted')
  t.notOk(srs.requests.some((x) => x.method === 'DELETE'), 'no kick')
})

t.test('SRS 4 (no stream_id): the stream is found by app and name in the listing', async (t) => {
  const srs4 = { id: 'vid-1', name: 'cam1', app: 'live', vhost: 'vid-v', publish: { active: true, cid: 'A' } }
  const { service, srs, req } = await setup(t, { list: [{ ...srs4, name: 'cam2', publish: { active: true, cid: 'Z' } }, srs4], client: null })
  const r = await service.publish(req({ streamId: undefined }))
  t.equal(r.refusal?.code, Codes.PUBLISHER_NOT_VERIFIED, 'SRS 4 lists a pending publisher only after acquire, so it cannot be verified')
  t.ok(srs.requests[0]?.url.startsWith('/api/v1/streams/?'))
  const free = await setup(t, { list: [{ ...srs4, publish: { active: false, cid: 'A' } }] })
  t.equal((await free.service.publish(free.req({ streamId: undefined }))).outcome, 'allowed')
})

t.test('without stream_id, a listing with urls is matched by url', async (t) => {
  const { service, req } = await setup(t, { list: [{ ...live(), url: '/live/cam1' }], stream: live(), client: newcomer, kick: 'release' })
  t.equal((await service.publish(req({ streamId: undefined }))).outcome, 'took-over')
})

for (const [stage, failOn] of [
  ['look up the stream', /GET \/api\/v1\/streams\/vid-1/],
  ['verify the newcomer', /GET \/api\/v1\/clients\/B/],
  ['evict the incumbent', /DELETE/]
] as const) {
  t.test(`SRS API failing to ${stage}: FAIL_MODE decides, nobody waits`, async (t) => {
    const open = await setup(t, { stream: live(), client: newcomer, kick: 'release', failOn })
    const r = await open.service.publish(open.req())
    t.equal(r.outcome, 'api-failed-open')
    t.equal(r.allowed, true)
    t.equal(open.stats.apiFailures.http_status, 1)
    t.ok(open.logs.find((l) => l.level === 40 && l.msg === `the media server's API failed while trying to ${stage}`))
    const closed = await setup(t, { stream: live(), client: newcomer, kick: 'release', failOn }, { failMode: 'closed' })
    const c = await closed.service.publish(closed.req())
    t.equal(c.outcome, 'refused-api-failed')
    t.equal(c.refusal?.code, Codes.SRS_API_UNAVAILABLE)
    t.match(c.refusal?.msg, /FAIL_MODE=closed/)
  })
}

t.test('a second on_publish waits for the first only until its own bound', async (t) => {
  const { service, store, req, stats } = await setup(t, { stream: null }, { timeoutMs: 150 })
  // The first holder overruns its bound (a stalled shared store, say): the second must not wait on.
  const unstall = stallWrites(store)
  const first = service.publish(req())
  const started = Date.now()
  const second = await service.publish(req({ clientId: 'C' }))
  const took = Date.now() - started
  t.equal(second.outcome, 'bound-exhausted')
  t.equal(second.allowed, true, 'allowed: SRS decides')
  t.ok(took >= 140 && took < 1000, `answered at its bound (${took} ms)`)
  t.equal(stats.boundExhausted, 1)
  unstall()
  t.equal((await first).outcome, 'allowed')
})

t.test('on_unpublish and on_close remove only their own client\'s entry', async (t) => {
  const { service, store, req, server } = await setup(t, { stream: null })
  await service.publish(req())
  t.equal(await service.unpublished('vid-s', '/live/cam1', 'A'), false, 'a late on_unpublish of an evicted client')
  t.same(await service.closed(server, 'A'), { removed: false, deferred: false })
  t.equal((await store.get('vid-s', '/live/cam1'))?.clientId, 'B')
  t.same(await service.closed(server, 'B'), { removed: true, deferred: false })
  t.equal(await store.get('vid-s', '/live/cam1'), undefined)
})

t.test('takeovers, refusals and API failures are reported as events with a time', async (t) => {
  const events: PublisherEvent[] = []
  const ok = await setup(t, { stream: live(), client: newcomer, kick: 'release' }, { events })
  await ok.service.publish(ok.req())
  const forged = await setup(t, { stream: live(), client: null }, { events })
  await forged.service.publish(forged.req())
  const down = await setup(t, { stream: live(), failOn: /GET/ }, { events, failMode: 'closed' })
  await down.service.publish(down.req())
  const slow = await setup(t, { stream: live(), client: newcomer, kick: 'noop' }, { events, timeoutMs: 100 })
  await slow.service.publish(slow.req())
  t.same(events.map((e) => e.type), ['takeover', 'refusal', 'api-failure', 'refusal', 'takeover-timeout'])
  t.match(events[0], { stream: '/live/cam1', incumbent: 'A', newcomer: 'B', ip: '10.0.0.9', via: 'api' })
  t.match(events[1], { client: 'B', code: Codes.PUBLISHER_NOT_VERIFIED })
  t.match(events[2], { kind: 'http_status', stage: 'look up the stream' })
  t.match(events[3], { code: Codes.SRS_API_UNAVAILABLE })
  t.ok(events.every((e) => typeof e.at === 'number'))
})

t.test('evict() kicks the stream\'s publisher and waits for the release', async (t) => {
  const events: PublisherEvent[] = []
  const { service, srs, store, server } = await setup(t, { stream: live(), kick: 'release' }, { events })
  await store.set({ server: 'vid-s', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: 'A', streamId: 'vid-1', since: 1, state: 'confirmed', takeovers: 0 })
  const r = await service.evict(server, '/live/cam1')
  t.match(r, { outcome: 'released', clientId: 'A', release: { via: 'api' } })
  t.ok(srs.requests.some((x) => x.url === '/api/v1/streams/vid-1'), 'found by the stream id the table holds')
  t.match(events, [{ type: 'eviction', stream: '/live/cam1', clientId: 'A' }])
})

t.test('evict() finds a stream the table does not know in SRS\'s listing', async (t) => {
  const { service, server } = await setup(t, { list: [live()], stream: live(), kick: 'release' })
  t.match(await service.evict(server, '/live/cam1'), { outcome: 'released', clientId: 'A' })
  const none = await setup(t, { list: [] })
  t.same(await none.service.evict(none.server, '/live/cam1'), { outcome: 'not-published' })
})

t.test('evict() looks past a stream id SRS no longer knows (it restarted) to the listing', async (t) => {
  const { service, store, server } = await setup(t, { stream: null, list: [live()], kick: 'release' })
  await store.set({ server: 'vid-s', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: 'A', streamId: 'vid-before-restart', since: 1, state: 'confirmed', takeovers: 0 })
  t.match(await service.evict(server, '/live/cam1'), { outcome: 'released', clientId: 'A' })
  const gone = await setup(t, { stream: null, list: [] })
  await gone.store.set({ server: 'vid-s', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: 'A', streamId: 'vid-old', since: 1, state: 'confirmed', takeovers: 0 })
  t.same(await gone.service.evict(gone.server, '/live/cam1'), { outcome: 'not-published' }, 'and is not published when the listing agrees')
})

t.test('evict() reports a release not seen in time, and SRS failures as errors', async (t) => {
  const slow = await setup(t, { list: [live()], stream: live(), kick: 'noop' }, { timeoutMs: 100 })
  t.match(await slow.service.evict(slow.server, '/live/cam1'), { outcome: 'timeout', clientId: 'A', release: { via: 'timeout' } })
  const down = await setup(t, { failOn: /GET/ })
  await t.rejects(down.service.evict(down.server, '/live/cam1'), { name: 'SrsApiError', kind: 'http_status' })
})

t.test('evict() gives up when an on_publish of the stream holds it for the whole bound', async (t) => {
  const { service, store, req, server } = await setup(t, { stream: null }, { timeoutMs: 100 })
  const unstall = stallWrites(store)
  const publishing = service.publish(req())
  t.same(await service.evict(server, '/live/cam1'), { outcome: 'busy' })
  unstall()
  await publishing
})

t.test('a conflict waits for the stream\'s shared lock only within the bound; so does an eviction', async (t) => {
  const { MemoryLocks } = await import('../src/publishers/lock.js')
  const shared = new MemoryLocks()
  const env = { code: 0, server: 'vid-s', service: 'x', pid: '1' }
  const srs = await StubServer.start((req, res) => {
    const url = req.url ?? ''
    if (url.startsWith('/api/v1/streams/?')) return json(res, { ...env, streams: [live()] })
    if (url.startsWith('/api/v1/streams/')) return json(res, { ...env, stream: live() })
    json(res, { ...env, client: newcomer })
  })
  const api = new SrsApi({ url: srs.url, timeoutMs: 300, retries: 0, pageSize: 10 })
  api.status.server = 'vid-s'
  t.teardown(async () => { await api.close(); await srs.close() })
  const s = serviceOver(api, { takeoverTimeoutMs: 150, sharedLocks: shared })
  // Another replica holds the stream's lock past this one's bound.
  const other = await shared.acquire('/live/cam1', 0, 10_000)
  const r = await s.service.publish(publishOf(s.server))
  t.equal(r.outcome, 'bound-exhausted')
  t.match(s.events, [{ type: 'bound-exhausted', stage: /held by another replica/ }])
  t.same(await s.service.evict(s.server, '/live/cam1'), { outcome: 'busy' })
  other!()
  t.equal((await s.service.evict(s.server, '/live/cam1')).outcome, 'timeout', 'once let go, the eviction goes ahead (its release never comes here)')
})

t.test('with the shared lock had, the stream is looked up again: another replica may have resolved it meanwhile', async (t) => {
  const { MemoryLocks } = await import('../src/publishers/lock.js')
  const env = { code: 0, server: 'vid-s', service: 'x', pid: '1' }
  // What SRS reports at each stream lookup, in turn.
  const answers: Array<Record<string, unknown> | 'fail'> = []
  let kicked = false
  const srs = await StubServer.start((req, res) => {
    const url = req.url ?? ''
    if (req.method === 'DELETE') { kicked = true; return json(res, env) }
    if (url === '/api/v1/clients/A') return json(res, kicked ? { code: 2049 } : { ...env, client: { id: 'A', stream: 'vid-1', publish: true } })
    if (url.startsWith('/api/v1/streams/vid-1')) {
      const next = answers.shift() ?? live()
      return next === 'fail' ? json(res, {}, 500) : json(res, { ...env, stream: next })
    }
    json(res, { ...env, client: newcomer })
  })
  const api = new SrsApi({ url: srs.url, timeoutMs: 300, retries: 0, pageSize: 10 })
  api.status.server = 'vid-s'
  t.teardown(async () => { await api.close(); await srs.close() })
  const s = serviceOver(api, { takeoverTimeoutMs: 1000, sharedLocks: new MemoryLocks() })
  answers.push(live(), { ...live(), publish: { active: false, cid: 'A' } })
  t.equal((await s.service.publish(publishOf(s.server))).outcome, 'allowed', 'released meanwhile: nothing left to take over')
  answers.push(live(), 'fail')
  t.equal((await s.service.publish(publishOf(s.server))).outcome, 'api-failed-open', 'the second lookup failing follows FAIL_MODE')
  answers.push(live(), live())
  t.equal((await s.service.publish(publishOf(s.server))).outcome, 'took-over', 'still held: taken over')
})

t.test('connect(): without credentials it only remembers the client; with them a lookup failure follows FAIL_MODE; the shared lock makes it look again', async (t) => {
  const { MemoryLocks } = await import('../src/publishers/lock.js')
  const env = { code: 0, server: 'vid-s', service: 'x', pid: '1' }
  let down = false
  let kicked = false
  const srs = await StubServer.start((req, res) => {
    const url = req.url ?? ''
    if (down) return json(res, {}, 500)
    if (req.method === 'DELETE') { kicked = true; return json(res, env) }
    if (url === '/api/v1/clients/A') return json(res, kicked ? { code: 2049 } : { ...env, client: { id: 'A', stream: 'vid-1', publish: true } })
    if (url.startsWith('/api/v1/streams/vid-1')) return json(res, { ...env, stream: live() })
  })
  const api = new SrsApi({ url: srs.url, timeoutMs: 300, retries: 0, pageSize: 10 })
  api.status.server = 'vid-s'
  t.teardown(async () => { await api.close(); await srs.close() })
  const s = serviceOver(api, { failMode: 'closed', sharedLocks: new MemoryLocks() })
  const plain = publishOf(s.server, { clientId: 'P' })
  t.same(await s.service.connect(plain), { allowed: true, outcome: 'allowed' }, 'no credentials: answered at once')
  t.match(await s.service.pending.take('vid-s', 'P'), { clientId: 'P', policy: 'takeover', credentials: { kind: 'none' } }, 'remembered with the service\'s policy')
  await s.store.set({ server: 'vid-s', key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', clientId: 'A', streamId: 'vid-1', since: 1, state: 'confirmed', takeovers: 0 })
  down = true
  const failed = await s.service.connect(publishOf(s.server, { credentials: { kind: 'valid' } }))
  t.match(failed, { outcome: 'refused-api-failed', refusal: { code: Codes.SRS_API_UNAVAILABLE } })
  down = false
  const took = await s.service.connect(publishOf(s.server, { credentials: { kind: 'valid' } }))
  t.equal(took.outcome, 'took-over', 'looked up again under the shared lock, still held: taken over')
})

t.test('a deferred takeover gives up when the stream\'s lock is held for its whole bound', async (t) => {
  const { MemoryLocks } = await import('../src/publishers/lock.js')
  const shared = new MemoryLocks()
  const { service, server, srs } = await setup(t, { stream: live(), client: newcomer, kick: 'release' }, { timeoutMs: 100 })
  const s = serviceOver(server.api, { takeoverTimeoutMs: 100, sharedLocks: shared })
  void service
  const held = await shared.acquire('/live/cam1', 0, 10_000)
  await s.service.connect(publishOf(s.server, { clientId: 'R' }))
  t.same(await s.service.closed(s.server, 'R'), { removed: false, deferred: true })
  await s.service.idle()
  t.notOk(srs.requests.some((x) => x.method === 'DELETE'), 'nobody kicked')
  held!()
})
