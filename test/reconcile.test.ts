import t, { type Test } from 'tap'
import { pino } from 'pino'
import { LOGGED_CORRECTIONS, reconcile, Reconciler } from '../src/publishers/reconcile.js'
import { MemoryPublisherStore, type Publisher } from '../src/publishers/store.js'
import { SrsMediaServer } from '../src/srs/adapter.js'
import { SrsApi } from '../src/srs/api.js'
import { LogCapture } from './fixtures/app.js'
import { json, StubServer } from './fixtures/stub-server.js'

/** reconcile() against a scripted listing, for the races a live SRS rarely shows. */
async function listing (t: Test, streams: Array<Record<string, unknown>>): Promise<SrsMediaServer> {
  const vhosts = [{ id: 'vid-v', name: '__defaultVhost__' }, { id: 'vid-o', name: 'other.example' }]
  const srs = await StubServer.start((req, res) => json(res, req.url?.startsWith('/api/v1/vhosts/') === true
    ? { code: 0, server: 'vid-s', vhosts }
    : { code: 0, server: 'vid-s', streams }))
  const api = new SrsApi({ url: srs.url, timeoutMs: 500, retries: 0, pageSize: 10 })
  t.teardown(async () => { await api.close(); await srs.close() })
  // Learn the server's id, as the app does at start.
  await api.versions().catch(() => {})
  return new SrsMediaServer(api)
}

const entry = (key: string, clientId: string, extra: Partial<Publisher> = {}): Publisher => ({
  server: 'vid-s', key, vhost: '__defaultVhost__', app: 'live', stream: key.split('/').pop()!, clientId, since: 0, state: 'publishing', takeovers: 0, ...extra
})
const stream = (name: string, cid: string, extra: Record<string, unknown> = {}) => ({
  id: `vid-${name}`, name, app: 'live', vhost: 'vid-v', url: `/live/${name}`, publish: { active: true, cid }, ...extra
})

t.test('streams of another vhost and of SRS 4 (no url, vhost by id) get the right keys', async (t) => {
  const api = await listing(t, [stream('a', 'c1', { url: 'example.com/live/a' }), stream('b', 'c2', { url: undefined }), stream('c', 'c4', { url: undefined, vhost: 'vid-o' }), stream('idle', 'c3', { publish: { active: false, cid: 'c3' } })])
  const store = new MemoryPublisherStore(10)
  const corrections = await reconcile(api, store, () => 1)
  t.same(corrections.map((c) => c.key).sort(), ['/live/b', 'example.com/live/a', 'other.example/live/c'])
  t.match(await store.get('vid-s', 'example.com/live/a'), { vhost: 'example.com', app: 'live', stream: 'a', clientId: 'c1', streamId: 'vid-a' })
  t.match(await store.get('vid-s', '/live/b'), { vhost: '__defaultVhost__', clientId: 'c2' })
  t.match(await store.get('vid-s', 'other.example/live/c'), { vhost: 'other.example', clientId: 'c4' }, 'SRS 4\'s vhost id named by /api/v1/vhosts/')
})

t.test('another server\'s entries are never touched', async (t) => {
  const api = await listing(t, [])
  const store = new MemoryPublisherStore(10)
  await store.set(entry('/live/a', 'c1', { server: 'vid-other' }))
  t.same(await reconcile(api, store, () => 1), [])
  t.equal((await store.get('vid-other', '/live/a'))?.clientId, 'c1')
})

t.test('a confirmed entry seen again is no correction', async (t) => {
  const api = await listing(t, [stream('a', 'c1')])
  const store = new MemoryPublisherStore(10)
  await store.set(entry('/live/a', 'c1'))
  t.same(await reconcile(api, store, () => 1), [], 'confirming a hook entry is not a correction')
  t.equal((await store.get('vid-s', '/live/a'))?.state, 'confirmed')
  t.same(await reconcile(api, store, () => 2), [])
})

t.test('an entry changed by a hook between the listing and the removal is not reported as dropped', async (t) => {
  const api = await listing(t, [])
  const store = new MemoryPublisherStore(10)
  await store.set(entry('/live/a', 'c1'))
  store.deleteIfClient = async () => false // a hook replaced it meanwhile
  t.same(await reconcile(api, store, () => 1), [])
})

t.test('a stream a hook added during the listing is not overwritten with the older view', async (t) => {
  const api = await listing(t, [stream('a', 'old')])
  const store = new MemoryPublisherStore(10)
  const fresh = entry('/live/a', 'new', { since: 5 })
  store.list = async () => [] // the snapshot predates the hook...
  await store.set(fresh) // ...which wrote this entry
  t.same(await reconcile(api, store, () => 1), [])
  t.equal((await store.get('vid-s', '/live/a'))?.clientId, 'new')
})

t.test('a run with many corrections logs the first 100 at info, the rest at debug, and a summary', async (t) => {
  const api = await listing(t, Array.from({ length: 130 }, (_, i) => stream(`s${i}`, `c${i}`)))
  const logs = new LogCapture()
  const corrections: string[] = []
  const reconciler = new Reconciler({
    servers: () => [api],
    store: new MemoryPublisherStore(1000),
    log: pino({ level: 'debug' }, logs.stream),
    now: Date.now,
    intervalMs: 0,
    onCorrection: (c) => corrections.push(c.key)
  })
  reconciler.start() // interval 0: never runs by itself
  t.equal(reconciler.runs, 0)
  await reconciler.run()
  const lines = logs.lines.filter((l) => l.correction === 'added')
  t.equal(lines.length, 130, 'every correction is logged')
  t.equal(lines.filter((l) => l.level === 30).length, LOGGED_CORRECTIONS)
  t.equal(lines.filter((l) => l.level === 20).length, 130 - LOGGED_CORRECTIONS)
  t.match(logs.find((l) => l.level === 30 && l.corrections === 130), { size: 130 })
  t.equal(corrections.length, 130, 'and every one is reported as an event')
  await reconciler.stop()
})
