import t from 'tap'
import { MemoryPublisherStore, type Publisher } from '../src/publishers/store.js'

const entry = (key: string, clientId: string, server = 's1'): Publisher => ({
  server, key, vhost: '__defaultVhost__', app: 'live', stream: key.split('/').pop()!, clientId, since: 1, state: 'publishing', takeovers: 0
})

t.test('entries are removed only by their own client', async (t) => {
  const s = new MemoryPublisherStore(10)
  await s.set(entry('/live/a', 'c1'))
  t.equal(await s.deleteIfClient('s1', '/live/a', 'c2'), false, 'another client cannot remove it')
  t.equal((await s.get('s1', '/live/a'))?.clientId, 'c1')
  t.equal(await s.deleteIfClient('s2', '/live/a', 'c1'), false, 'nor the same client id on another server')
  t.equal(await s.deleteIfClient('s1', '/live/a', 'c1'), true)
  t.equal(await s.get('s1', '/live/a'), undefined)
  t.equal(await s.deleteIfClient('s1', '/live/none', 'c1'), false)
})

t.test('on_close finds the stream by client, and a replaced client no longer maps to it', async (t) => {
  const s = new MemoryPublisherStore(10)
  await s.set(entry('/live/a', 'c1'))
  await s.set(entry('/live/a', 'c2'))
  t.equal(await s.deleteByClient('s1', 'c1'), undefined, 'the old client owns nothing now')
  t.equal(await s.deleteByClient('s2', 'c2'), undefined, 'client ids are per server')
  t.equal((await s.deleteByClient('s1', 'c2'))?.key, '/live/a')
  t.equal(await s.size(), 0)
})

t.test('the same stream on two servers is two entries; holders() finds both', async (t) => {
  const s = new MemoryPublisherStore(10)
  await s.set(entry('/live/a', 'c1', 's1'))
  await s.set(entry('/live/a', 'c9', 's2'))
  await s.set(entry('/live/b', 'c2', 's1'))
  t.same((await s.holders('/live/a')).map((p) => `${p.server}:${p.clientId}`).sort(), ['s1:c1', 's2:c9'])
  t.same((await s.list('s2')).map((p) => p.key), ['/live/a'])
  t.equal(await s.delete('s1', '/live/a'), true)
  t.same((await s.holders('/live/a')).map((p) => p.server), ['s2'], 'the index follows removals')
  t.same(await s.holders('/live/none'), [])
})

t.test('the table is bounded: the least recently used entry goes, with its indexes', async (t) => {
  const s = new MemoryPublisherStore(2)
  await s.set(entry('/live/a', 'c1'))
  await s.set(entry('/live/b', 'c2'))
  await s.set(entry('/live/c', 'c3'))
  t.equal(await s.size(), 2)
  t.equal(await s.get('s1', '/live/a'), undefined)
  t.equal(await s.deleteByClient('s1', 'c1'), undefined)
  t.same(await s.holders('/live/a'), [])
  t.same((await s.list()).map((p) => p.key).sort(), ['/live/b', '/live/c'])
  t.equal(await s.delete('s1', '/live/b'), true)
})
