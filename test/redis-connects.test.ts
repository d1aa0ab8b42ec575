import t from 'tap'
import { MemoryPendingConnects, type PendingConnect, type PendingConnects } from '../src/publishers/connects.js'
import { RedisPendingConnects } from '../src/redis/connects.js'
import { RedisServer, openLink, restoreAtEnd } from './fixtures/redis.js'

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
