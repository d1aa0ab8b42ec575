import t from 'tap'
import { MemoryPendingConnects, type PendingConnect, type PendingConnects } from '../src/publishers/connects.js'
import { RedisPendingConnects } from '../src/redis/connects.js'
import { RedisServer, openLink, restoreAtEnd, waitFor } from './fixtures/redis.js'

/**
 * Clients between on_connect and on_close, shared: SRS's on_connect of a client may reach one
 * replica and its on_close another, which must still know what the on_connect said.
 */

const redis = await RedisServer.start(t)

const pending = (clientId: string): PendingConnect => ({
  server: 'vid-s', clientId, ref: { key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }, ip: '10.0.0.9', credentials: { kind: 'none' }, policy: 'takeover', at: 1
})

for (const kind of ['memory', 'redis'] as const) {
  t.test(`${kind}: a client is remembered, marked decided, and taken once`, async (t) => {
    const s: PendingConnects = kind === 'memory' ? new MemoryPendingConnects() : new RedisPendingConnects({ link: (await openLink(t, redis, { prefix: redis.prefix() })).link })
    await s.add(pending('c1'))
    await s.decide('vid-s', 'c1')
    t.match(await s.take('vid-s', 'c1'), { clientId: 'c1', decided: true, ref: { key: '/live/cam1' } })
    t.equal(await s.take('vid-s', 'c1'), undefined, 'taken once')
    await s.decide('vid-s', 'nobody')
    t.equal(await s.take('vid-s', 'nobody'), undefined)
  })
}

t.test('what one replica\'s on_connect remembered, another replica\'s on_close takes', async (t) => {
  const prefix = redis.prefix()
  const one = new RedisPendingConnects({ link: (await openLink(t, redis, { prefix })).link })
  const two = new RedisPendingConnects({ link: (await openLink(t, redis, { prefix })).link })
  await one.add(pending('c2'))
  t.match(await two.take('vid-s', 'c2'), { clientId: 'c2', decided: undefined })
  t.equal(await one.take('vid-s', 'c2'), undefined, 'and it is gone for the first replica too')
})

t.test('with Redis down, a close is judged on nothing; a broken entry falls back to the local twin', async (t) => {
  restoreAtEnd(t, redis)
  const { link } = await openLink(t, redis, { prefix: redis.prefix() })
  const s = new RedisPendingConnects({ link })
  await s.add(pending('c3'))
  await link.client.set(link.key('pending', 'vid-s', 'c3'), 'not json')
  t.match(await s.take('vid-s', 'c3'), { clientId: 'c3' }, 'unreadable in Redis: the local twin\'s')
  await redis.stop()
  await s.add(pending('c4'))
  await s.decide('vid-s', 'c4')
  // Another replica may have seen it play: a close judged while Redis is down takes nothing.
  t.equal(await s.take('vid-s', 'c4'), undefined, 'cannot tell: nothing, so nobody is evicted')
})

t.test('a player seen while Redis failed is never taken for a refused publisher after Redis returns, on either replica', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await openLink(t, redis, { prefix })
  const b = await openLink(t, redis, { prefix })
  const one = new RedisPendingConnects({ link: a.link })
  const two = new RedisPendingConnects({ link: b.link })
  await one.add(pending('p1'))
  await one.add(pending('p2'))
  await one.add(pending('p4'))
  t.match(await one.progressed('vid-s', 'p2'), { clientId: 'p2' }, 'what its connect said')
  t.equal(await one.progressed('vid-s', 'nobody'), undefined)
  await a.link.client.set(a.link.key('pending', 'vid-s', 'p3'), 'not json')
  t.equal(await one.progressed('vid-s', 'p3'), undefined, 'an unreadable record: the local twin\'s (none)')
  // Hung (its data kept): the on_play's delete gets no answer.
  redis.pause()
  t.match(await one.progressed('vid-s', 'p1'), { clientId: 'p1' }, 'its on_play while Redis hangs: the local twin\'s')
  await waitFor(() => !a.link.up, 5000, 'the outage')
  // Its delete not even sent: the record stays in Redis.
  t.match(await one.progressed('vid-s', 'p4'), { clientId: 'p4' })
  redis.resume()
  await waitFor(() => a.link.up && b.link.up, 10_000, 'Redis back')
  // The record left in Redis is deleted on the return.
  await waitFor(async () => await b.link.client.exists(b.link.key('pending', 'vid-s', 'p4')) === 0, 5000, 'the stale record deleted')
  for (const id of ['p1', 'p4']) {
    t.equal(await two.take('vid-s', id), undefined, `${id}: the other replica finds nothing`)
    t.equal(await one.take('vid-s', id), undefined, `${id}: nor this one`)
  }
})

t.test('players forgotten at the memory\'s bound while Redis failed: on the return, no replica takes any record for the records\' lifetime, so nobody is evicted', async (t) => {
  restoreAtEnd(t, redis)
  const prefix = redis.prefix()
  const a = await openLink(t, redis, { prefix })
  const b = await openLink(t, redis, { prefix })
  // Room for about two players' keys.
  const one = new RedisPendingConnects({ link: a.link, playedMaxBytes: 400 })
  const two = new RedisPendingConnects({ link: b.link })
  const ids = ['q1', 'q2', 'q3', 'q4', 'q5']
  for (const id of ids) await one.add(pending(id))
  await one.add(pending('late'))
  redis.pause()
  await waitFor(async () => { await one.progressed('vid-s', 'q1'); return !a.link.up }, 5000, 'the outage')
  for (const id of ids.slice(1)) await one.progressed('vid-s', id)
  t.ok(one.dropped >= 2, `players forgotten at the bound: ${one.dropped}`)
  redis.resume()
  await waitFor(() => a.link.up && b.link.up, 10_000, 'Redis back')
  await waitFor(async () => await b.link.client.exists(b.link.key('pending', 'blind')) === 1, 5000, 'the records marked untrusted')
  t.ok(await b.link.client.pttl(b.link.key('pending', 'blind')) > 50_000, 'for the records\' lifetime')
  for (const id of ids) {
    t.equal(await two.take('vid-s', id), undefined, `${id}: the other replica takes nothing`)
    t.equal(await one.take('vid-s', id), undefined, `${id}: nor this one`)
  }
  t.equal(await two.take('vid-s', 'late'), undefined, 'nor a client that never played, while the mark lasts')
  await b.link.client.del(b.link.key('pending', 'blind'))
  await one.add(pending('after'))
  t.match(await two.take('vid-s', 'after'), { clientId: 'after' }, 'once it is gone, records are taken again')
})
