import t, { type Test } from 'tap'
import { MemoryEventStore, type EventStore, type StoredEvent } from '../src/operations/events.js'
import { RedisEventStore } from '../src/redis/events.js'
import type { RedisLink } from '../src/redis/link.js'
import { BOUND, RedisServer, commandCounter, openLink, restoreAtEnd, timed, waitFor } from './fixtures/redis.js'

const redis = await RedisServer.start(t)

/** The events log of one replica, on a link of its own. */
async function replica (t: Test, prefix: string, max: number, chunk?: number, timeoutMs = 100): Promise<{ events: RedisEventStore, link: RedisLink }> {
  const { link } = await openLink(t, redis, { prefix, timeoutMs })
  return { events: new RedisEventStore({ link, max, ...(chunk === undefined ? {} : { chunk }) }), link }
}

const ev = (type: string, n: number, more: Record<string, unknown> = {}): StoredEvent => ({ type, at: 1000 + n, n, ...more })

/* What every EventStore does, run against the in-process one and the Redis one alike. */
const scenarios: Record<string, (t: Test, s: EventStore) => Promise<void>> = {
  'events are listed newest first, numbered in the order received': async (t, s) => {
    t.equal(await s.total(), 0)
    t.same(await s.list(10), [])
    for (let i = 1; i <= 3; i++) await s.add(ev('takeover', i))
    t.same(await s.list(10), [
      { type: 'takeover', at: 1003, n: 3, seq: 3 },
      { type: 'takeover', at: 1002, n: 2, seq: 2 },
      { type: 'takeover', at: 1001, n: 1, seq: 1 }
    ])
    t.same((await s.list(2)).map((e) => e.seq), [3, 2], 'at most limit')
    t.same(await s.list(0), [])
    t.equal(await s.total(), 3)
  },
  'the log keeps the newest max entries; the count goes on': async (t, s) => {
    for (let i = 1; i <= 12; i++) await s.add(ev('refusal', i))
    t.same((await s.list(100)).map((e) => e.seq), [12, 11, 10, 9, 8], 'exactly max, the newest')
    t.equal(await s.total(), 12)
  },
  'list can keep only some types, still newest first': async (t, s) => {
    const types = ['takeover', 'refusal', 'eviction', 'refusal', 'takeover', 'refusal']
    for (const [i, type] of types.entries()) await s.add(ev(type, i + 1))
    t.same((await s.list(10, new Set(['refusal']))).map((e) => e.seq), [6, 4, 2])
    t.same((await s.list(2, new Set(['refusal', 'eviction']))).map((e) => e.seq), [6, 4])
    t.same(await s.list(10, new Set(['none'])), [])
  },
  'an event keeps whatever fields its emitter gave it': async (t, s) => {
    const e = { type: 'takeover', at: 5, replica: 'hooks-2', stream: '/live/a:b\ud800', nested: { via: 'hook', ms: 12.5 }, list: [1, 'x'], flag: false, none: null }
    await s.add(e)
    t.same(JSON.parse(JSON.stringify(await s.list(1))), [{ ...JSON.parse(JSON.stringify(e)), seq: 1 }])
  }
}

t.test('the Redis events log behaves as the in-process one', async (t) => {
  for (const [name, run] of Object.entries(scenarios)) {
    await t.test(`memory: ${name}`, async (t) => { await run(t, new MemoryEventStore(5)) })
    // A chunk of 2 makes list() read several pages.
    await t.test(`redis: ${name}`, async (t) => { await run(t, (await replica(t, redis.prefix(), 5, 2)).events) })
  }
})

t.test('every replica lists every replica\'s events, numbered in one sequence', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix, 100)
  const b = await replica(t, prefix, 100)
  await a.events.add(ev('takeover', 1, { replica: 'a' }))
  await b.events.add(ev('refusal', 2, { replica: 'b' }))
  await a.events.add(ev('eviction', 3, { replica: 'a' }))
  const expected = [['eviction', 'a', 3], ['refusal', 'b', 2], ['takeover', 'a', 1]]
  for (const r of [a, b]) {
    t.same((await r.events.list(10)).map((e) => [e.type, e.replica, e.seq]), expected)
    t.equal(await r.events.total(), 3)
  }
  t.equal(a.events.max, 100)
  const count = await commandCounter(t, a.link)
  t.same(await count(() => a.events.add(ev('takeover', 4))), ['evalsha'], 'adding is one round trip')
  t.same(await count(() => a.events.list(10)), ['xrevrange'], 'a short list, one')
  t.same(await count(() => a.events.total()), ['get'])
})

t.test('a thousand events past a small cap: the stream is trimmed, the list is exact', async (t) => {
  // A bound for a busy test machine: this test is about trimming, not the bound.
  const { events, link } = await replica(t, redis.prefix(), 50, undefined, 2000)
  for (let i = 0; i < 1000; i += 50) {
    await Promise.all(Array.from({ length: 50 }, async (_, j) => { await events.add(ev('takeover', i + j)) }))
  }
  const listed = await events.list(1000)
  t.same(link.failures, {}, 'all from Redis')
  t.equal(listed.length, 50)
  t.same(listed.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => 1000 - i))
  const len = await link.call('xlen', async (c) => await c.xlen(link.key('events')))
  t.ok(len.ok && len.value < 1000, `the stream was trimmed (${len.ok ? len.value : '?'} entries)`)
})

t.test('an event that cannot be written as JSON is kept locally; nothing throws', async (t) => {
  const { events, link } = await replica(t, redis.prefix(), 10)
  await events.add(ev('takeover', 1, { big: 10n }))
  t.equal(await events.total(), 0, 'not in Redis')
  t.equal(link.failures['events.add'], 1)
  t.equal(link.up, true)
})

t.test('a malformed entry in the stream: the list comes from the local twin', async (t) => {
  const { events, link } = await replica(t, redis.prefix(), 10)
  await events.add(ev('takeover', 1))
  await link.call('xadd', async (c) => await c.xadd(link.key('events'), '*', 'e', 'not json'))
  t.same((await events.list(10)).map((e) => e.seq), [1], 'this replica\'s own event')
  await link.call('xadd', async (c) => await c.xadd(link.key('events'), '*', 'e', '{}', 's', 'x'))
  t.same((await events.list(10)).map((e) => e.seq), [1])
  await link.call('xadd', async (c) => await c.xadd(link.key('events'), '*', 'e', '5', 's', '2'))
  t.same((await events.list(10)).map((e) => e.seq), [1])
  await link.call('xadd', async (c) => await c.xadd(link.key('events'), '*', 's', '3'))
  t.same((await events.list(10)).map((e) => e.seq), [1])
  t.equal(link.failures['events.list'], 4)
})

t.test('Redis stopped or hung: events go to the local log, and are listed from it, within the bound', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await replica(t, prefix, 10)
  const b = await replica(t, prefix, 10)
  await b.events.add(ev('takeover', 1, { replica: 'b' }))
  await a.events.add(ev('takeover', 2, { replica: 'a' }))
  redis.pause()
  const calls: Record<string, () => Promise<unknown>> = {
    add: () => a.events.add(ev('refusal', 3, { replica: 'a' })),
    list: () => a.events.list(10),
    total: () => a.events.total()
  }
  for (const [name, call] of Object.entries(calls)) {
    const [, ms] = await timed(call())
    t.ok(ms < BOUND, `${name} within the bound (${ms.toFixed(0)} ms)`)
  }
  redis.resume()
  await redis.stop()
  t.same((await a.events.list(10)).map((e) => [e.type, e.replica]), [['refusal', 'a'], ['takeover', 'a']], 'A\'s own events')
  t.equal(await a.events.total(), 2)
  t.match(a.link.failures, { 'events.add': 1, 'events.list': 2, 'events.total': 2 })
  // Restarted empty: the shared log and its numbering start over.
  await redis.restart()
  await waitFor(() => a.link.up && b.link.up, 5000, 'both links back')
  t.equal(await a.events.total(), 0)
  await b.events.add(ev('takeover', 4, { replica: 'b' }))
  t.same((await a.events.list(10)).map((e) => [e.type, e.replica, e.seq]), [['takeover', 'b', 1]])
})
