import t, { type Test } from 'tap'
import { MemorySignals, SIGNAL_MEMORY_MS, type Signals } from '../src/publishers/signals.js'
import type { RedisLink } from '../src/redis/link.js'
import { RedisSignals } from '../src/redis/signals.js'
import { RedisServer, commandCounter, openLink, restoreAtEnd, waitFor } from './fixtures/redis.js'

const redis = await RedisServer.start(t)

/** A RedisSignals on a link of its own: one replica. */
async function replica (t: Test, prefix: string): Promise<{ signals: RedisSignals, link: RedisLink }> {
  const { link } = await openLink(t, redis, { prefix })
  const signals = new RedisSignals({ link })
  await waitFor(() => link.health.subscribed, 2000, 'the subscription')
  return { signals, link }
}

/** Resolves with how long `p` took, or with 'pending' if it had not settled after `ms`. */
async function settles (p: Promise<void>, ms: number): Promise<number | 'pending'> {
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  const r = await Promise.race([
    p.then(() => performance.now() - started),
    new Promise<'pending'>((resolve) => { timer = setTimeout(resolve, ms, 'pending') })
  ])
  clearTimeout(timer)
  return r
}

/* What every Signals does, run against the in-process one and the Redis one alike. */
const scenarios: Record<string, (t: Test, s: Signals) => Promise<void>> = {
  'a waiter wakes when its topic is emitted, not another': async (t, s) => {
    const ac = new AbortController()
    const woke = s.wait('x', ac.signal)
    t.equal(s.waiting, 1)
    s.emit('other')
    t.equal(await settles(woke, 30), 'pending', 'another topic does not wake it')
    s.emit('x')
    t.type(await settles(woke, 1000), 'number')
    t.equal(s.waiting, 0)
  },
  'a topic emitted just before the wait counts': async (t, s) => {
    s.emit('x')
    t.type(await settles(s.wait('x', new AbortController().signal), 1000), 'number', 'resolved at once')
    t.equal(s.waiting, 0)
  },
  'an aborted wait leaves nothing behind': async (t, s) => {
    const a = new AbortController()
    const b = new AbortController()
    void s.wait('x', a.signal)
    const other = s.wait('x', b.signal)
    a.abort()
    t.equal(s.waiting, 1, 'the other waiter remains')
    b.abort()
    t.equal(s.waiting, 0)
    t.equal(await settles(other, 30), 'pending', 'an aborted wait stays pending: the caller races it with its bound')
  }
}

t.test('the Redis signals behave as the in-process ones', async (t) => {
  for (const [name, run] of Object.entries(scenarios)) {
    await t.test(`memory: ${name}`, async (t) => { await run(t, new MemorySignals()) })
    await t.test(`redis: ${name}`, async (t) => { await run(t, (await replica(t, redis.prefix())).signals) })
  }
})

t.test('a topic emitted on one replica wakes the waiter on the other', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const woke = b.signals.wait('client-7', new AbortController().signal)
  const other = b.signals.wait('client-8', new AbortController().signal)
  // Let B's marker reads finish first, so that only the channel can wake it.
  await waitFor(async () => (await b.link.call('ping', async (r) => await r.ping())).ok, 1000)
  a.signals.emit('client-7')
  const ms = await settles(woke, 1000)
  t.type(ms, 'number', 'woken')
  t.ok((ms as number) < 100, `within ${(ms as number).toFixed(0)} ms`)
  t.equal(await settles(other, 30), 'pending', 'the other topic\'s waiter still waits')
  a.signals.emit('client-8')
  t.type(await settles(other, 1000), 'number')
})

t.test('a topic emitted on one replica just before the other waits counts there too', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  a.signals.emit('client-7')
  await waitFor(async () => {
    const r = await a.link.call('pttl', async (c) => await c.pttl(a.link.key('signal', 'client-7')))
    return r.ok && r.value > 0 && r.value <= SIGNAL_MEMORY_MS
  }, 1000, 'the marker, remembered for a minute')
  t.type(await settles(b.signals.wait('client-7', new AbortController().signal), 1000), 'number')
  t.equal(await settles(b.signals.wait('client-9', new AbortController().signal), 50), 'pending', 'not any topic')
})

t.test('emitting is one round trip; waiting reads one marker', async (t) => {
  const { signals, link } = await replica(t, redis.prefix())
  const count = await commandCounter(t, link)
  t.same(await count(async () => {
    signals.emit('x')
    await waitFor(async () => {
      const r = await link.call('exists', async (c) => await c.exists(link.key('signal', 'x')))
      return r.ok && r.value === 1
    }, 1000)
  }), ['evalsha', 'exists'])
  const ac = new AbortController()
  t.same(await count(async () => {
    void signals.wait('y', ac.signal)
    await waitFor(async () => (await link.call('ping', async (r) => await r.ping())).ok, 1000)
  }), ['mget', 'ping'])
  ac.abort()
  const aborted = AbortSignal.abort()
  t.same(await count(async () => { void signals.wait('z', aborted) }), [], 'a wait given up before it starts asks Redis nothing')
})

t.test('messages lost while a replica\'s subscription was down are made up by the markers', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const woke = b.signals.wait('client-7', new AbortController().signal)
  await waitFor(async () => (await b.link.call('ping', async (r) => await r.ping())).ok, 1000)
  // Cut B's subscription, and emit before it is back: B never gets the message.
  const killed = await a.link.call('kill', async (r) => await r.client('KILL', 'TYPE', 'pubsub'))
  t.ok(killed.ok)
  a.signals.emit('client-7')
  const ms = await settles(woke, 5000)
  t.type(ms, 'number', 'woken once B subscribed again')
  await waitFor(() => b.link.health.subscribed, 2000)
})

t.test('junk on the channel is ignored', async (t) => {
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  const woke = b.signals.wait('x', new AbortController().signal)
  await a.link.call('publish', async (r) => await r.publish(a.link.channel('signals'), 'no sender'))
  a.signals.emit('x')
  t.type(await settles(woke, 1000), 'number')
})

t.test('Redis stopped or hung: signals still work within a replica, at once, and nothing throws', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  redis.pause()
  const hung = a.signals.wait('x', new AbortController().signal)
  a.signals.emit('x')
  t.type(await settles(hung, 20), 'number', 'woken at once while Redis hangs')
  await waitFor(() => !a.link.up, 1000, 'A to notice')
  redis.resume()
  await redis.stop()
  await waitFor(() => !b.link.up, 1000, 'B to notice')
  const woke = b.signals.wait('y', new AbortController().signal)
  b.signals.emit('y')
  t.type(await settles(woke, 20), 'number', 'woken at once while Redis is down')
  t.match(b.link.failures, { 'signals.check': 1, 'signals.emit': 1 })
  // Restarted empty: the replicas hear each other again.
  await redis.restart()
  await waitFor(() => a.link.health.subscribed && b.link.health.subscribed && a.link.up && b.link.up, 5000, 'both back')
  const again = b.signals.wait('z', new AbortController().signal)
  a.signals.emit('z')
  t.type(await settles(again, 1000), 'number', 'heard across replicas again')
})
