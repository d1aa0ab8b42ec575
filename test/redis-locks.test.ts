import t, { type Test } from 'tap'
import { pino } from 'pino'
import { MemoryLocks, type Locks } from '../src/publishers/lock.js'
import type { RedisLink } from '../src/redis/link.js'
import { RedisLocks, type RedisLocksOptions } from '../src/redis/locks.js'
import { BOUND, LogCapture, RedisServer, commandCounter, openLink, restoreAtEnd, timed, waitFor } from './fixtures/redis.js'

const redis = await RedisServer.start(t)

/** A RedisLocks on a link of its own: one replica. */
async function replica (t: Test, prefix: string, opts: Partial<RedisLocksOptions> = {}): Promise<{ locks: RedisLocks, link: RedisLink }> {
  const { link } = await openLink(t, redis, { prefix })
  const locks = new RedisLocks({ link, ...opts })
  await waitFor(() => link.health.subscribed, 2000, 'the subscription')
  return { locks, link }
}

/* What every Locks does, run against the in-process one and the Redis one alike. */
const scenarios: Record<string, (t: Test, lock: Locks) => Promise<void>> = {
  'one holder per key; the next waiter gets it on release, in order; other keys are never blocked': async (t, lock) => {
    const first = await lock.acquire('a', 1000, 5000)
    t.ok(first)
    const order: string[] = []
    const second = lock.acquire('a', 5000, 5000).then((r) => { order.push('second'); return r })
    const third = lock.acquire('a', 5000, 5000).then((r) => { order.push('third'); return r })
    const other = await lock.acquire('b', 1000, 5000)
    t.ok(other, 'another key is never blocked')
    t.same(order, [], 'nobody else got key a while it is held')
    first!()
    first!() // releasing twice is harmless
    const r2 = await second
    t.same(order, ['second'])
    r2!()
    const r3 = await third
    t.same(order, ['second', 'third'])
    r3!()
    other!()
    const again = await lock.acquire('a', 1000, 5000)
    t.ok(again, 'free again')
    again!()
  },
  'a waiter gives up at its deadline with null, and is not granted later': async (t, lock) => {
    const held = await lock.acquire('k', 1000, 5000)
    const [late, ms] = await timed(lock.acquire('k', 30, 5000))
    t.equal(late, null)
    t.ok(ms >= 25 && ms < 30 + 150, `gave up at its deadline (${ms.toFixed(0)} ms)`)
    held!()
    const next = await lock.acquire('k', 1000, 5000)
    t.ok(next, 'the timed-out waiter left nothing behind')
    next!()
  },
  'a hold lapses after its lease, and the next waiter gets the key': async (t, lock) => {
    const hung = await lock.acquire('k', 1000, 50)
    t.ok(hung)
    const [next, ms] = await timed(lock.acquire('k', 2000, 5000))
    t.ok(next)
    t.ok(ms >= 40 && ms < 50 + 150, `granted once the lease lapsed, not before (${ms.toFixed(0)} ms)`)
    hung!() // long after its lease: harmless, and does not release the new holder
    const third = await lock.acquire('k', 30, 5000)
    t.equal(third, null, 'still held by the waiter that got it')
    next!()
  }
}

// The in-process locks are tested here too, by the same scenarios.
t.test('the Redis locks behave as the in-process ones', async (t) => {
  for (const [name, run] of Object.entries(scenarios)) {
    await t.test(`memory: ${name}`, async (t) => {
      const lock = new MemoryLocks()
      await run(t, lock)
      t.equal(lock.size, 0, 'nothing is left behind')
    })
    await t.test(`redis: ${name}`, async (t) => { await run(t, (await replica(t, redis.prefix())).locks) })
  }
})

t.test('two replicas: one holder at a time; a release wakes the other replica\'s waiter at once', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  // B polls rarely: only the release notice can wake it quickly.
  const b = await replica(t, prefix, { pollMs: 2000, maxPollMs: 2000 })
  const held = await a.locks.acquire('/live/a', 1000, 5000)
  t.ok(held)
  t.equal(await b.locks.acquire('/live/a', 30, 5000), null, 'B cannot have it while A holds it')
  const other = await b.locks.acquire('/live/b', 1000, 5000)
  t.ok(other, 'another stream is free on B')
  other!()
  let releasedAt = 0
  const waiting = b.locks.acquire('/live/a', 3000, 5000).then((u) => [u, performance.now() - releasedAt] as const)
  await waitFor(() => b.locks.waiting === 1, 2000, 'B to wait')
  releasedAt = performance.now()
  held!()
  const [unlock, after] = await waiting
  t.ok(unlock)
  t.ok(after < 100, `B got it ${after.toFixed(0)} ms after the release, long before its next poll`)
  t.equal(b.locks.waiting, 0)
  t.equal(await a.locks.acquire('/live/a', 30, 5000), null, 'now A waits for B')
  unlock!()
})

t.test('a lock is never released by a replica that does not hold it', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const c = await replica(t, prefix)
  const stale = await a.locks.acquire('k', 1000, 40)
  t.ok(stale)
  const fresh = await b.locks.acquire('k', 2000, 5000)
  t.ok(fresh, 'B has it once A\'s lease lapsed')
  stale!() // A lets go late: it must not release B's hold
  await waitFor(async () => (await a.link.call('get', async (r) => await r.get(a.link.key('lock', 'k')))).ok, 1000, 'A\'s release to be processed')
  t.equal(await c.locks.acquire('k', 50, 5000), null, 'B still holds it')
  fresh!()
  const [mine, ms] = await timed(c.locks.acquire('k', 1000, 5000))
  t.ok(mine, 'free once B let go')
  t.ok(ms < 100, `at once (${ms.toFixed(0)} ms)`)
  mine!()
})

t.test('a lock whose owner replica vanished is taken by the next one when its lease ends', async (t) => {
  const prefix = redis.prefix()
  const doomed = await replica(t, prefix)
  const b = await replica(t, prefix)
  t.ok(await doomed.locks.acquire('/live/a', 1000, 300))
  await doomed.link.close() // killed: it never lets go
  const [unlock, ms] = await timed(b.locks.acquire('/live/a', 2000, 5000))
  t.ok(unlock)
  t.ok(ms > 200 && ms < 300 + 100, `taken as the lease ended (${ms.toFixed(0)} ms)`)
  unlock!()
})

t.test('an uncontended lock is one round trip to take and one to let go', async (t) => {
  const { locks, link } = await replica(t, redis.prefix())
  const count = await commandCounter(t, link)
  let unlock: (() => void) | null = null
  t.same(await count(async () => { unlock = await locks.acquire('k', 1000, 5000) }), ['evalsha'])
  t.same(await count(async () => {
    unlock!()
    // The release is not awaited by unlock(): wait for its reply before counting.
    await waitFor(async () => (await link.call('exists', async (r) => await r.exists(link.key('lock', 'k')))).ok, 1000)
  }), ['evalsha', 'exists'])
})

t.test('Redis stopped: each replica goes on with its local lock at once; within a replica the lock still holds', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const logs = new LogCapture()
  const a = await replica(t, prefix, { log: pino({ level: 'warn' }, logs.stream) })
  const b = await replica(t, prefix)
  await redis.stop()
  await waitFor(() => !a.link.up && !b.link.up, 2000, 'the outage')
  const [ua, ms] = await timed(a.locks.acquire('k', 1000, 5000))
  t.ok(ua)
  t.ok(ms < 50, `at once (${ms.toFixed(1)} ms)`)
  const ub = await b.locks.acquire('k', 1000, 5000)
  t.ok(ub, 'the other replica too: one lock each, as a single process has, and no deadlock')
  t.equal(await a.locks.acquire('k', 30, 5000), null, 'A\'s own waiters still queue behind A\'s holder')
  ua!()
  ub!()
  t.equal(a.link.failures['lock.acquire'], 1, 'counted (the waiter never got past the local lock)')
  t.same(a.link.degraded, { lock: 1 }, 'the degraded mode counted at each use')
  t.equal(logs.lines.filter((l) => /shared locks degrade/.test(l.msg)).length, 1, 'logged once for the outage')
})

t.test('Redis stops while a replica waits for another\'s lock: the waiter goes on with its local lock', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix, { pollMs: 20, maxPollMs: 20 })
  const held = await a.locks.acquire('k', 1000, 5000)
  t.ok(held)
  const waiting = timed(b.locks.acquire('k', 3000, 5000))
  await waitFor(() => b.locks.waiting === 1, 2000, 'B to wait')
  await redis.stop()
  const [unlock, ms] = await waiting
  t.ok(unlock, 'B goes on alone')
  t.ok(ms < 1000, `well within its wait (${ms.toFixed(0)} ms)`)
  unlock!()
  held!()
})

t.test('Redis hung: a lock try that times out does not hold the lock (null within the bound); the Redis lock it may have taken is released when Redis returns', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const logs = new LogCapture()
  const a = await replica(t, prefix, { log: pino({ level: 'warn' }, logs.stream) })
  const b = await replica(t, prefix)
  redis.pause()
  const [ua, ms] = await timed(a.locks.acquire('k', 1000, 10_000))
  t.equal(ua, null, 'not held: nothing is done under it')
  t.ok(ms < BOUND, `within the bound (${ms.toFixed(0)} ms)`)
  t.ok(logs.find('a shared lock could not be taken').length >= 1, 'logged')
  await waitFor(() => !a.link.up, BOUND, 'the link down (its PING unanswered)')
  const [again, ms2] = await timed(a.locks.acquire('other', 1000, 10_000))
  t.equal(again, null, 'a hung Redis is no degraded mode: still not held')
  t.ok(ms2 < 20, `at once while Redis is down (${ms2.toFixed(1)} ms)`)
  t.same(a.link.degraded, {}, 'no degraded use counted')
  redis.resume()
  // Resumed, Redis runs A's SET (A holds the Redis lock, though it gave up), then A's release.
  await waitFor(() => a.link.up, 5000, 'A to see Redis back')
  const [ub, ms3] = await timed(b.locks.acquire('k', 5000, 5000))
  t.ok(ub)
  t.ok(ms3 < 1000, `B did not wait out A's 10 s lease (${ms3.toFixed(0)} ms)`)
  ub!()
})

t.test('a wait shorter than a reply: null within the wait, and the Redis lock that try may have taken is let go', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  redis.pause()
  const [u, ms] = await timed(a.locks.acquire('k', 30, 10_000))
  t.equal(u, null)
  t.ok(ms < 30 + 150, `within its wait (${ms.toFixed(0)} ms)`)
  redis.resume()
  await waitFor(() => a.link.up, 5000, 'A to see Redis back')
  const [ub, ms2] = await timed(b.locks.acquire('k', 5000, 5000))
  t.ok(ub, 'nothing left held')
  t.ok(ms2 < 1000, `B did not wait out A's 10 s lease (${ms2.toFixed(0)} ms)`)
  ub!()
  const ua = await a.locks.acquire('k', 1000, 5000)
  t.ok(ua, 'A can take it again')
  ua!()
})

t.test('Redis restarted empty while a replica holds a lock: the other takes it, the holder\'s release is harmless', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const ua = await a.locks.acquire('k', 1000, 10_000)
  t.ok(ua)
  await redis.restart()
  await waitFor(() => a.link.up && b.link.up, 5000, 'both links back')
  const ub = await b.locks.acquire('k', 1000, 10_000)
  t.ok(ub, 'Redis forgot A\'s lock')
  ua!()
  t.equal(await a.locks.acquire('k', 50, 5000), null, 'A\'s release did not free B\'s lock')
  ub!()
})
