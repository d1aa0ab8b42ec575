import t, { type Test } from 'tap'
import { MemoryPublisherStore, type Publisher, type PublisherStore } from '../src/publishers/store.js'
import type { RedisLink } from '../src/redis/link.js'
import { RedisPublisherStore } from '../src/redis/store.js'
import { BOUND, RedisServer, commandCounter, openLink, restoreAtEnd, timed, waitFor } from './fixtures/redis.js'

const redis = await RedisServer.start(t)

const entry = (server: string, key: string, clientId: string, more: Partial<Publisher> = {}): Publisher => ({
  server, key, vhost: '__defaultVhost__', app: 'live', stream: key.split('/').pop()!, clientId, since: 1, state: 'publishing', takeovers: 0, ...more
})

/** What a store gives back, as plain data (optional fields left undefined are absent). */
const plain = <T>(v: T): T => v === undefined ? v : JSON.parse(JSON.stringify(v))
const keys = (ps: Publisher[]): string[] => ps.map((p) => `${p.server} ${p.key} ${p.clientId}`).sort()

/** A Redis store on a link of its own ("a replica"), and its local twin to look into. */
async function replica (
  t: Test,
  prefix: string,
  opts: { ttlMs?: number, scanCount?: number, timeoutMs?: number } = {}
): Promise<{ store: RedisPublisherStore, local: MemoryPublisherStore, link: RedisLink }> {
  const { link } = await openLink(t, redis, { prefix, timeoutMs: opts.timeoutMs ?? 100 })
  const local = new MemoryPublisherStore(1000)
  return { store: new RedisPublisherStore({ link, local, ...opts }), local, link }
}

/*
 * The behaviour every PublisherStore shares, run against the in-process store and the Redis one
 * alike: the Redis store must be a drop-in replacement.
 */
const scenarios: Record<string, (t: Test, s: PublisherStore) => Promise<void>> = {
  'an entry reads back as written, and set replaces it': async (t, s) => {
    const p = entry('srs-1', '/live/a', 'c1', { streamId: 'vid-1', ip: '10.0.0.7', since: 42, state: 'confirmed', takeovers: 3 })
    await s.set(p)
    t.same(plain(await s.get('srs-1', '/live/a')), p)
    t.equal(await s.get('srs-1', '/live/none'), undefined)
    t.equal(await s.get('srs-2', '/live/a'), undefined, 'another server has no such entry')
    await s.set(entry('srs-1', '/live/a', 'c2', { takeovers: 4 }))
    t.match(await s.get('srs-1', '/live/a'), { clientId: 'c2', takeovers: 4 })
    t.equal(await s.size(), 1)
  },
  'entries are removed only by their own client': async (t, s) => {
    await s.set(entry('srs-1', '/live/a', 'c1'))
    t.equal(await s.deleteIfClient('srs-1', '/live/a', 'c2'), false, 'another client cannot remove it')
    t.equal(await s.deleteIfClient('srs-2', '/live/a', 'c1'), false, 'nor the same client id on another server')
    t.equal((await s.get('srs-1', '/live/a'))?.clientId, 'c1')
    t.equal(await s.deleteIfClient('srs-1', '/live/a', 'c1'), true)
    t.equal(await s.get('srs-1', '/live/a'), undefined)
    t.equal(await s.deleteIfClient('srs-1', '/live/none', 'c1'), false)
    t.equal(await s.deleteByClient('srs-1', 'c1'), undefined, 'its client index went with it')
    t.same(await s.holders('/live/a'), [])
  },
  'on_close finds the stream by client, and a replaced client no longer maps to it': async (t, s) => {
    await s.set(entry('srs-1', '/live/a', 'c1'))
    await s.set(entry('srs-1', '/live/a', 'c2'))
    t.equal(await s.deleteByClient('srs-1', 'c1'), undefined, 'the old client owns nothing now')
    t.equal(await s.deleteByClient('srs-2', 'c2'), undefined, 'nor does the client id on another server')
    t.same(plain(await s.deleteByClient('srs-1', 'c2')), entry('srs-1', '/live/a', 'c2'))
    t.equal(await s.size(), 0)
    t.same(await s.holders('/live/a'), [])
  },
  'a client that publishes another stream maps to the new one; the old entry stays until removed': async (t, s) => {
    await s.set(entry('srs-1', '/live/a', 'c1'))
    await s.set(entry('srs-1', '/live/b', 'c1'))
    t.equal((await s.deleteByClient('srs-1', 'c1'))?.key, '/live/b')
    t.equal((await s.get('srs-1', '/live/a'))?.clientId, 'c1')
    t.equal(await s.deleteIfClient('srs-1', '/live/a', 'c1'), true)
  },
  'the same stream on two servers is two entries: holders() finds both, list() one server or all': async (t, s) => {
    await s.set(entry('srs-1', '/live/a', 'c1'))
    await s.set(entry('srs-2', '/live/a', 'c9'))
    await s.set(entry('srs-2', '/live/b', 'c8'))
    t.same(keys(await s.holders('/live/a')), ['srs-1 /live/a c1', 'srs-2 /live/a c9'])
    t.same(keys(await s.holders('/live/b')), ['srs-2 /live/b c8'])
    t.same(await s.holders('/live/none'), [])
    t.same(keys(await s.list('srs-2')), ['srs-2 /live/a c9', 'srs-2 /live/b c8'])
    t.same(keys(await s.list()), ['srs-1 /live/a c1', 'srs-2 /live/a c9', 'srs-2 /live/b c8'])
    t.same(await s.list('srs-3'), [])
    t.equal(await s.size(), 3)
    t.equal(await s.delete('srs-2', '/live/a'), true)
    t.equal(await s.delete('srs-2', '/live/a'), false, 'gone already')
    t.same(keys(await s.holders('/live/a')), ['srs-1 /live/a c1'])
    t.equal(await s.deleteByClient('srs-2', 'c9'), undefined, 'delete took its client index too')
    t.equal(await s.size(), 2)
  },
  'names that look alike are different streams, whatever their characters': async (t, s) => {
    const names = ['/live/a:b', '/live/a%3Ab', '/live/a b', '/live/x\ud800', '/live/x\ufffd', '/live/ä', '/live/*']
    for (const [i, key] of names.entries()) await s.set(entry('srs:1', key, `c:${i}\ud800`))
    for (const [i, key] of names.entries()) t.equal((await s.get('srs:1', key))?.clientId, `c:${i}\ud800`, key)
    t.equal(await s.size(), names.length)
    t.equal((await s.holders('/live/x\ud800')).length, 1)
    t.equal((await s.deleteByClient('srs:1', 'c:3\ud800'))?.key, '/live/x\ud800')
    t.equal((await s.get('srs:1', '/live/x\ufffd'))?.clientId, 'c:4\ud800', 'its look-alike stays')
    t.equal((await s.list('srs:1')).length, names.length - 1)
  },
  'setMany writes each as set() would, in order, across several servers': async (t, s) => {
    await s.setMany([
      ...Array.from({ length: 20 }, (_, i) => entry('srs-1', `/live/s${i}`, `c${i}`)),
      ...Array.from({ length: 5 }, (_, i) => entry('srs-2', `/live/s${i}`, `d${i}`)),
      entry('srs-3', '/live/s2', 'e2'),
      entry('srs-1', '/live/s0', 'c20')
    ])
    t.equal(await s.size(), 20 + 5 + 1, 'the later of two for the same server and stream replaces the first')
    t.equal((await s.get('srs-1', '/live/s0'))?.clientId, 'c20')
    t.equal(await s.deleteByClient('srs-1', 'c0'), undefined, 'the replaced client no longer maps to it')
    t.same(keys(await s.holders('/live/s1')), ['srs-1 /live/s1 c1', 'srs-2 /live/s1 d1'], 'two servers hold s1')
    t.equal((await s.deleteByClient('srs-2', 'd1'))?.key, '/live/s1')
    t.same(keys(await s.holders('/live/s1')), ['srs-1 /live/s1 c1'], 'then one')
    t.equal((await s.holders('/live/s2')).length, 3, 'three hold s2')
    t.equal(await s.delete('srs-2', '/live/s2'), true)
    t.same(keys(await s.holders('/live/s2')), ['srs-1 /live/s2 c2', 'srs-3 /live/s2 e2'], 'then two')
    t.equal(keys(await s.list('srs-2')).length, 5 - 2)
  }
}

t.test('the Redis store behaves as the in-process one', async (t) => {
  for (const [name, run] of Object.entries(scenarios)) {
    await t.test(`memory: ${name}`, async (t) => { await run(t, new MemoryPublisherStore(100)) })
    await t.test(`redis: ${name}`, async (t) => { await run(t, (await replica(t, redis.prefix())).store) })
  }
})

t.test('two replicas share one table', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  await a.store.set(entry('srs-1', '/live/a', 'c1'))
  t.equal((await b.store.get('srs-1', '/live/a'))?.clientId, 'c1', 'B reads what A wrote')
  t.equal(await b.local.size(), 0, 'from Redis, not from its own twin')
  t.equal((await b.store.holders('/live/a')).length, 1)
  t.equal(await b.store.size(), 1)
  // The holder's unpublish reaches B; a newer publisher recorded by B is safe from A's stale removal.
  await b.store.set(entry('srs-1', '/live/a', 'c2'))
  t.equal(await a.store.deleteIfClient('srs-1', '/live/a', 'c1'), false, 'A cannot remove B\'s newer publisher')
  t.equal(await a.store.deleteByClient('srs-1', 'c1'), undefined)
  t.equal((await a.store.get('srs-1', '/live/a'))?.clientId, 'c2')
  t.equal((await a.store.deleteByClient('srs-1', 'c2'))?.clientId, 'c2', 'A removes it by client: on_close carries no stream')
  t.equal(await b.store.get('srs-1', '/live/a'), undefined)
  t.same(await b.store.list(), [])
})

t.test('replicas racing on one stream leave a consistent table and indexes', async (t) => {
  const prefix = redis.prefix()
  // A bound for a busy test machine: 400 commands at once, and this test is about atomicity.
  const replicas = [await replica(t, prefix, { timeoutMs: 2000 }), await replica(t, prefix, { timeoutMs: 2000 })]
  const { link } = replicas[0]!
  const ops: Array<Promise<unknown>> = []
  for (let i = 0; i < 400; i++) {
    const s = replicas[i % 2]!.store
    const server = `srs-${i % 3}`
    const key = `/live/s${i % 5}`
    const client = `c${i % 7}`
    switch (i % 4) {
      case 0: ops.push(s.set(entry(server, key, client))); break
      case 1: ops.push(s.deleteIfClient(server, key, client)); break
      case 2: ops.push(s.deleteByClient(server, client)); break
      default: ops.push(s.set(entry(server, key, `c${(i + 3) % 7}`)))
    }
  }
  await Promise.all(ops)
  t.same([replicas[0]!.link.failures, replicas[1]!.link.failures], [{}, {}], 'every operation went to Redis')
  const all = await replicas[1]!.store.list()
  const raw = await link.call('dump', async (c) => {
    const out: Record<string, Record<string, string>> = {}
    for (const k of await c.keys(`${prefix}*`)) if (await c.type(k) === 'hash') out[k.slice(prefix.length)] = await c.hgetall(k)
    return out
  })
  if (!raw.ok) throw raw.error
  for (const p of all) {
    t.ok(raw.value['pub-holders']?.[encodeURIComponent(p.key)]?.split(' ').includes(encodeURIComponent(p.server)), `${p.server} ${p.key} is among its holders`)
  }
  for (const [k, index] of Object.entries(raw.value)) {
    if (!k.startsWith('pub-client:')) continue
    const server = k.slice('pub-client:'.length)
    for (const [client, field] of Object.entries(index)) {
      const p = all.find((e) => encodeURIComponent(e.server) === server && encodeURIComponent(e.key) === field)
      t.equal(p?.clientId, client, `the client index of ${client} points at its own entry`)
    }
  }
  const holders = Object.entries(raw.value['pub-holders'] ?? {})
  for (const [field, servers] of holders) {
    for (const server of servers.split(' ')) {
      t.ok(all.some((e) => encodeURIComponent(e.server) === server && encodeURIComponent(e.key) === field), `holder ${server} of ${field} has an entry`)
    }
  }
  t.equal(await replicas[0]!.store.size(), all.length)
})

t.test('recording a publisher is one command, so one round trip; so is each removal', async (t) => {
  const { store, link } = await replica(t, redis.prefix())
  const count = await commandCounter(t, link)
  t.same(await count(() => store.set(entry('srs-1', '/live/a', 'c1'))), ['evalsha'], 'set')
  t.same(await count(() => store.set(entry('srs-1', '/live/a', 'c2'))), ['evalsha'], 'set again')
  t.same(await count(() => store.get('srs-1', '/live/a')), ['hget'], 'get')
  t.same(await count(() => store.holders('/live/a')), ['evalsha'], 'holders')
  t.same(await count(() => store.deleteIfClient('srs-1', '/live/a', 'c1')), ['evalsha'], 'deleteIfClient')
  t.same(await count(() => store.deleteByClient('srs-1', 'c2')), ['evalsha'], 'deleteByClient')
  t.same(await count(() => store.delete('srs-1', '/live/a')), ['evalsha'], 'delete')
  t.same(await count(() => store.size()), ['evalsha'], 'size')
})

t.test('list() copes with 100,000 entries, a chunk at a time', async (t) => {
  // A bound for a busy test machine: this test is about the chunks, not the bound.
  const { store, link } = await replica(t, redis.prefix(), { timeoutMs: 2000 })
  // Written straight in the store's format, to keep the test fast; list() is what is tested.
  const table = link.key('pub', 'srs-big')
  for (let i = 0; i < 100_000; i += 1000) {
    const fields: string[] = []
    for (let j = i; j < i + 1000; j++) fields.push(encodeURIComponent(`/live/s${j}`), `c${j} ${JSON.stringify(entry('srs-big', `/live/s${j}`, `c${j}`))}`)
    const r = await link.call('fill', async (c) => await c.hset(table, ...fields))
    if (!r.ok) throw r.error
  }
  await link.call('fill', async (c) => await c.sadd(link.key('pub-servers'), 'srs-big'))
  await store.set(entry('srs-small', '/live/x', 'cx'))
  const [all, ms] = await timed(store.list())
  t.equal(all.length, 100_001)
  t.equal(new Set(all.map((p) => p.key)).size, 100_001, 'each entry once')
  t.equal((await store.list('srs-big')).length, 100_000)
  t.equal(await store.size(), 100_001)
  t.comment(`listed 100,001 entries in ${ms.toFixed(0)} ms`)
})

t.test('keys expire after the table is left alone for ttlMs; writes and listings keep them', async (t) => {
  const prefix = redis.prefix()
  const { store, link } = await replica(t, prefix, { ttlMs: 60_000 })
  await store.set(entry('srs-1', '/live/a', 'c1'))
  const pttl = async (k: string): Promise<number> => {
    const r = await link.call('pttl', async (c) => await c.pttl(k))
    return r.ok ? r.value : NaN
  }
  const names = [link.key('pub', 'srs-1'), link.key('pub-client', 'srs-1'), link.key('pub-holders'), link.key('pub-servers')]
  for (const k of names) t.ok(await pttl(k) > 59_000 && await pttl(k) <= 60_000, `${k} has the table's TTL`)
  await link.call('shorten', async (c) => await Promise.all(names.map((k) => c.pexpire(k, 5000))))
  await store.list()
  for (const k of names) t.ok(await pttl(k) > 59_000, `${k}: a listing refreshed it`)

  // A server whose table expired: its entries are gone, and holders() forgets it.
  const brief = new RedisPublisherStore({ link, ttlMs: 30 })
  await brief.set(entry('srs-gone', '/live/a', 'c5'))
  await store.set(entry('srs-1', '/live/a', 'c1'))
  await waitFor(async () => await pttl(link.key('pub', 'srs-gone')) === -2, 2000, 'the table to expire')
  t.same(keys(await store.holders('/live/a')), ['srs-1 /live/a c1'])
  const r = await link.call('hget', async (c) => await c.hget(link.key('pub-holders'), encodeURIComponent('/live/a')))
  t.same(r, { ok: true, value: 'srs-1' }, 'the expired server was taken off the stream\'s holders')
})

t.test('Redis stopped: every call returns at once from the local twin, and failures are counted', async (t) => {
  restoreAtEnd(t, redis)
  const { store, local, link } = await replica(t, redis.prefix())
  await store.set(entry('srs-1', '/live/a', 'c1'))
  await store.set(entry('srs-1', '/live/b', 'c2'))
  await redis.stop()
  await waitFor(() => !link.up, 2000, 'the outage')
  const calls: Array<[string, () => Promise<unknown>, unknown]> = [
    ['set', () => store.set(entry('srs-1', '/live/c', 'c3')), undefined],
    ['setMany', () => store.setMany([entry('srs-1', '/live/c', 'c3')]), undefined],
    ['get', async () => (await store.get('srs-1', '/live/c'))?.clientId, 'c3'],
    ['holders', async () => (await store.holders('/live/a')).length, 1],
    ['list', async () => (await store.list()).length, 3],
    ['list(server)', async () => (await store.list('srs-1')).length, 3],
    ['size', () => store.size(), 3],
    ['deleteIfClient', () => store.deleteIfClient('srs-1', '/live/a', 'c1'), true],
    ['deleteByClient', async () => (await store.deleteByClient('srs-1', 'c2'))?.key, '/live/b'],
    ['delete', () => store.delete('srs-1', '/live/c'), true]
  ]
  for (const [name, call, expected] of calls) {
    const [v, ms] = await timed(call())
    t.same(v, expected, name)
    t.ok(ms < 50, `${name} at once (${ms.toFixed(1)} ms)`)
  }
  t.equal(await local.size(), 0)
  t.match(link.failures, { 'store.set': 2, 'store.get': 1, 'store.holders': 1, 'store.list': 2, 'store.size': 1, 'store.deleteIfClient': 1, 'store.deleteByClient': 1, 'store.delete': 1 })
})

t.test('Redis hung: each call returns within its bound from the local twin; restarted empty, the store works again', async (t) => {
  restoreAtEnd(t, redis)
  const { store, link } = await replica(t, redis.prefix())
  await store.set(entry('srs-1', '/live/a', 'c1'))
  redis.pause()
  const calls: Record<string, () => Promise<unknown>> = {
    get: () => store.get('srs-1', '/live/a'),
    set: () => store.set(entry('srs-1', '/live/b', 'c2')),
    holders: () => store.holders('/live/a'),
    list: () => store.list('srs-1'),
    deleteIfClient: () => store.deleteIfClient('srs-1', '/live/a', 'cX')
  }
  for (const [name, call] of Object.entries(calls)) {
    const [, ms] = await timed(call())
    t.ok(ms < BOUND, `${name} within the bound (${ms.toFixed(0)} ms)`)
  }
  t.equal((await store.get('srs-1', '/live/b'))?.clientId, 'c2', 'answered by the twin')
  t.equal(link.up, false)
  // Restarted empty (and without the scripts): reads say what Redis has, until a write or a reconciliation.
  redis.resume()
  await redis.restart()
  await waitFor(() => link.up, 5000, 'the return')
  t.equal(await store.get('srs-1', '/live/a'), undefined, 'Redis lost the table')
  await store.set(entry('srs-1', '/live/a', 'c3'))
  t.equal((await store.get('srs-1', '/live/a'))?.clientId, 'c3', 'the script is sent again after the restart')
  t.equal(await store.size(), 1)
})

t.test('a malformed value under the prefix is a failure of that read, answered by the twin', async (t) => {
  const { store, link } = await replica(t, redis.prefix(), { scanCount: 1 })
  await store.set(entry('srs-1', '/live/a', 'c1'))
  await store.set(entry('srs-1', '/live/b', 'c2'))
  await link.call('corrupt', async (c) => await c.hset(link.key('pub', 'srs-1'), encodeURIComponent('/live/a'), 'c1 {not json'))
  t.equal((await store.get('srs-1', '/live/a'))?.clientId, 'c1', 'from the twin')
  t.equal((await store.list('srs-1')).length, 2, 'from the twin')
  await link.call('corrupt', async (c) => await c.hset(link.key('pub', 'srs-1'), encodeURIComponent('/live/a'), 'c1 42'))
  t.equal((await store.get('srs-1', '/live/a'))?.clientId, 'c1', 'a value that is not an object: from the twin')
  await link.call('corrupt', async (c) => await c.set(link.key('pub-servers'), 'x'))
  t.equal((await store.list()).length, 2, 'from the twin')
  t.equal(link.up, true, 'Redis itself is fine')
  t.match(link.failures, { 'store.get': 2, 'store.list': 2 })
})

t.test('setMany writes the twin, in order, and Redis in pipelines', async (t) => {
  const { link } = await openLink(t, redis, { prefix: redis.prefix(), timeoutMs: 1000 })
  const twin = new MemoryPublisherStore(100)
  const store = new RedisPublisherStore({ link, local: twin, scanCount: 4 })
  // The set script is loaded once per connection: warm it up, so that what is counted is its SHA.
  await store.set(entry('srs-1', '/live/warm', 'w'))
  await store.delete('srs-1', '/live/warm')
  const count = await commandCounter(t, link)
  const sent = await count(() => store.setMany(Array.from({ length: 10 }, (_, i) => entry('srs-1', `/live/p${i}`, `c${i}`))))
  // The twin (an LRU) lists the most recently written first: the reverse of the order written.
  t.same((await twin.list('srs-1')).map((p) => p.key).reverse(), Array.from({ length: 10 }, (_, i) => `/live/p${i}`), 'the twin has each, in order')
  t.same(sent, Array(10).fill('evalsha'), 'one set script per publisher, as set() sends')
  t.equal(await twin.size(), 10)
  t.equal(await store.size(), 10, 'and Redis has them')
  t.same((await store.list('srs-1')).map((p) => p.key).sort(), Array.from({ length: 10 }, (_, i) => `/live/p${i}`).sort())
})
