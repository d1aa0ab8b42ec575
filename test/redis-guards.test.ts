import t, { type Test } from 'tap'
import { FailureLimiter, MemoryFailureCounts, type FailureCounts } from '../src/auth/limiter.js'
import { FlapGuard, MemoryFlapStore, type FlapStore } from '../src/publishers/flap.js'
import { RedisFailureCounts } from '../src/redis/failures.js'
import { RedisFlapStore } from '../src/redis/flap.js'
import type { RedisLink } from '../src/redis/link.js'
import { BOUND, RedisServer, commandCounter, openLink, restoreAtEnd, timed, waitFor } from './fixtures/redis.js'

const redis = await RedisServer.start(t)
const MINUTE = 60_000

/** The flap history and failure counts of one replica, on a link of its own. */
async function replica (t: Test, prefix: string): Promise<{ flap: RedisFlapStore, counts: RedisFailureCounts, link: RedisLink }> {
  const { link } = await openLink(t, redis, { prefix })
  return { flap: new RedisFlapStore({ link, now: Date.now }), counts: new RedisFailureCounts({ link }), link }
}

const pttl = async (link: RedisLink, key: string): Promise<number> => {
  const r = await link.call('pttl', async (c) => await c.pttl(key))
  return r.ok ? r.value : NaN
}

/* What every FlapStore does, run against the in-process one and the Redis one alike. */
const flapScenarios: Record<string, (t: Test, s: FlapStore) => Promise<void>> = {
  'read counts the takeovers after `since`; record forgets those older than its window': async (t, s) => {
    const base = Date.now()
    await s.record('k', base, MINUTE)
    await s.record('k', base + 10_000, MINUTE)
    await s.record('k', base + 20_000, MINUTE)
    t.same(await s.read('k', base - 1), { recent: 3, coolingUntil: 0 })
    t.same(await s.read('k', base), { recent: 2, coolingUntil: 0 }, 'strictly after since')
    await s.record('k', base + 75_000, MINUTE)
    t.same(await s.read('k', base), { recent: 2, coolingUntil: 0 }, 'the first two went out of the window')
    t.same(await s.read('other', 0), { recent: 0, coolingUntil: 0 })
  },
  'trip pauses takeovers until its end and forgets the history': async (t, s) => {
    const now = Date.now()
    await s.record('k', now - 2, MINUTE)
    await s.record('k', now - 1, MINUTE)
    await s.trip('k', now + 30_000)
    t.same(await s.read('k', now - MINUTE), { recent: 0, coolingUntil: now + 30_000 })
    await s.record('k', now + 1, MINUTE)
    t.same(await s.read('k', now - MINUTE), { recent: 1, coolingUntil: now + 30_000 }, 'the cooldown stays; a new episode begins')
  },
  'a FlapGuard on the store trips and cools down': async (t, store) => {
    const guard = new FlapGuard({ max: 2, windowMs: MINUTE, cooldownMs: 30_000, now: Date.now, store })
    await guard.record('/live/a')
    await guard.record('/live/a')
    t.match(await guard.state('/live/a'), { recent: 2, max: 2, coolingUntil: 0 })
    const until = await guard.trip('/live/a')
    t.match(await guard.state('/live/a'), { recent: 0, coolingUntil: until })
    t.match(await guard.state('/live/b'), { recent: 0, coolingUntil: 0 }, 'other streams are not affected')
  }
}

/* What every FailureCounts does. */
const countScenarios: Record<string, (t: Test, c: FailureCounts) => Promise<void>> = {
  'remove takes back one count, never below zero, and leaves other IPs alone': async (t, c) => {
    await c.add('10.0.0.7', MINUTE)
    await c.add('10.0.0.7', MINUTE)
    await c.add('10.0.0.8', MINUTE)
    await c.remove('10.0.0.7')
    t.equal(await c.get('10.0.0.7'), 1)
    await c.remove('10.0.0.7')
    await c.remove('10.0.0.7')
    t.equal(await c.get('10.0.0.7'), 0, 'not below zero')
    await c.remove('10.0.0.9')
    t.equal(await c.get('10.0.0.9'), 0, 'an IP never counted stays at zero')
    t.equal(await c.get('10.0.0.8'), 1, 'another IP keeps its count')
  },
  'failures of an IP are counted in a window from its first': async (t, c) => {
    t.equal(await c.add('10.0.0.1', MINUTE), 1)
    t.equal(await c.add('10.0.0.1', MINUTE), 2)
    t.equal(await c.get('10.0.0.1'), 2)
    t.equal(await c.get('10.0.0.2'), 0, 'other IPs are not affected')
  },
  'when its window ends the count starts over': async (t, c) => {
    t.equal(await c.add('10.0.0.3', 50), 1)
    t.equal(await c.add('10.0.0.3', 50), 2)
    await waitFor(async () => await c.get('10.0.0.3') === 0, 2000, 'the window to end')
    t.equal(await c.add('10.0.0.3', 50), 1)
  },
  'a FailureLimiter on the counts blocks an IP past its allowance': async (t, counts) => {
    const limiter = new FailureLimiter({ max: 3, windowMs: MINUTE, now: Date.now, counts })
    t.equal(await limiter.fail('10.0.0.4'), false)
    t.equal(await limiter.fail('10.0.0.4'), false)
    t.equal(await limiter.blocked('10.0.0.4'), false)
    t.equal(await limiter.fail('10.0.0.4'), true, 'this one used up the allowance')
    t.equal(await limiter.blocked('10.0.0.4'), true)
    t.equal(await limiter.fail('10.0.0.4'), false, 'reported once')
    t.equal(await limiter.blocked('10.0.0.5'), false)
  }
}

t.test('the Redis flap history behaves as the in-process one', async (t) => {
  for (const [name, run] of Object.entries(flapScenarios)) {
    await t.test(`memory: ${name}`, async (t) => { await run(t, new MemoryFlapStore()) })
    await t.test(`redis: ${name}`, async (t) => { await run(t, (await replica(t, redis.prefix())).flap) })
  }
})

t.test('the Redis failure counts behave as the in-process ones', async (t) => {
  for (const [name, run] of Object.entries(countScenarios)) {
    await t.test(`memory: ${name}`, async (t) => { await run(t, new MemoryFailureCounts({ now: Date.now })) })
    await t.test(`redis: ${name}`, async (t) => { await run(t, (await replica(t, redis.prefix())).counts) })
  }
})

t.test('two replicas share the flap history: takeovers through either trip the guard, and its cooldown holds on both', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const guardA = new FlapGuard({ max: 2, windowMs: MINUTE, cooldownMs: 30_000, now: Date.now, store: a.flap })
  const guardB = new FlapGuard({ max: 2, windowMs: MINUTE, cooldownMs: 30_000, now: Date.now, store: b.flap })
  await guardA.record('/live/a')
  await guardB.record('/live/a')
  t.match(await guardA.state('/live/a'), { recent: 2 }, 'A sees B\'s takeover')
  const until = await guardB.trip('/live/a')
  t.match(await guardA.state('/live/a'), { recent: 0, coolingUntil: until }, 'B\'s trip holds on A, and A forgets its own takeover too')
  const left = await pttl(a.link, a.link.key('flap-cool', '/live/a'))
  t.ok(left > 29_000 && left <= 30_000, `the cooldown key lives as long as the cooldown (${left} ms)`)
  await guardA.record('/live/b')
  const h = await pttl(a.link, a.link.key('flap', '/live/b'))
  t.ok(h > MINUTE - 1000 && h <= MINUTE, `a history lives a window after its last takeover (${h} ms)`)
  const count = await commandCounter(t, a.link)
  t.same(await count(() => guardA.record('/live/b')), ['evalsha'], 'record: one round trip')
  t.same(await count(() => guardA.trip('/live/b')), ['evalsha'], 'trip: one round trip')
  t.same(await count(() => guardA.state('/live/b')), ['zcount', 'get'], 'read: one pipelined round trip')
})

t.test('two replicas share the failure counts: the limit counts attempts seen by both', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const limA = new FailureLimiter({ max: 3, windowMs: MINUTE, now: Date.now, counts: a.counts })
  const limB = new FailureLimiter({ max: 3, windowMs: MINUTE, now: Date.now, counts: b.counts })
  t.equal(await limA.fail('10.9.9.9'), false)
  const first = await pttl(a.link, a.link.key('authfail', '10.9.9.9'))
  t.ok(first > 0 && first <= MINUTE, 'the window starts with the first failure')
  t.equal(await limB.fail('10.9.9.9'), false)
  t.equal(await limA.fail('10.9.9.9'), true, 'the third failure, across replicas, uses up the allowance')
  t.equal(await limB.blocked('10.9.9.9'), true)
  t.ok(await pttl(a.link, a.link.key('authfail', '10.9.9.9')) <= first, 'later failures do not extend the window')
  // A count left without a TTL (written by hand) gets one on the next failure.
  await a.link.call('set', async (c) => await c.set(a.link.key('authfail', '10.8.8.8'), '7'))
  t.equal(await a.counts.add('10.8.8.8', MINUTE), 8)
  t.ok(await pttl(a.link, a.link.key('authfail', '10.8.8.8')) > 0)
  const count = await commandCounter(t, a.link)
  t.same(await count(() => a.counts.add('10.9.9.9', MINUTE)), ['evalsha'])
  t.same(await count(() => a.counts.get('10.9.9.9')), ['get'])
})

t.test('Redis stopped or hung: the guards answer from this replica\'s own history and counts, within the bound', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  await b.flap.record('k', Date.now(), MINUTE)
  await b.counts.add('10.1.1.1', MINUTE)
  await a.flap.record('k', Date.now(), MINUTE)
  await a.counts.add('10.1.1.1', MINUTE)
  t.match(await a.flap.read('k', Date.now() - MINUTE), { recent: 2 })
  redis.pause()
  const calls: Record<string, () => Promise<unknown>> = {
    'flap.read': () => a.flap.read('k', Date.now() - MINUTE),
    'flap.record': () => a.flap.record('k', Date.now(), MINUTE),
    'flap.trip': () => a.flap.trip('j', Date.now() + 1000),
    'failures.get': () => a.counts.get('10.1.1.1'),
    'failures.add': () => a.counts.add('10.1.1.1', MINUTE)
  }
  for (const [name, call] of Object.entries(calls)) {
    const [, ms] = await timed(call())
    t.ok(ms < BOUND, `${name} within the bound (${ms.toFixed(0)} ms)`)
  }
  redis.resume()
  await redis.stop()
  t.match(await a.flap.read('k', Date.now() - MINUTE), { recent: 2 }, 'A\'s own two takeovers, not B\'s')
  const j = await a.flap.read('j', Date.now() - MINUTE)
  t.ok(j.recent === 0 && j.coolingUntil > Date.now(), 'A\'s own trip')
  t.equal(await a.counts.get('10.1.1.1'), 2, 'A\'s own two failures')
  t.equal(await a.counts.add('10.1.1.1', MINUTE), 3)
  t.match(a.link.failures, { 'flap.read': 3, 'flap.record': 1, 'flap.trip': 1, 'failures.get': 2, 'failures.add': 2 })
  // Restarted empty: every history and count starts over, shared again.
  await redis.restart()
  await waitFor(() => a.link.up && b.link.up, 5000, 'both links back')
  t.match(await a.flap.read('k', Date.now() - MINUTE), { recent: 0, coolingUntil: 0 })
  await b.flap.record('k', Date.now(), MINUTE)
  t.match(await a.flap.read('k', Date.now() - MINUTE), { recent: 1 })
  t.equal(await b.counts.add('10.1.1.1', MINUTE), 1)
  t.equal(await a.counts.get('10.1.1.1'), 1)
})
