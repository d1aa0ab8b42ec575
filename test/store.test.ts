import t from 'tap'
import { MemoryPublisherStore, type Publisher } from '../src/publishers/store.js'

const entry = (key: string, clientId: string): Publisher => ({
  key, vhost: '__defaultVhost__', app: 'live', stream: key.split('/').pop()!, clientId, since: 1, state: 'publishing', takeovers: 0
})

t.test('entries are removed only by their own client', async (t) => {
  const s = new MemoryPublisherStore(10)
  await s.set(entry('/live/a', 'c1'))
  t.equal(await s.deleteIfClient('/live/a', 'c2'), false, 'another client cannot remove it')
  t.equal((await s.get('/live/a'))?.clientId, 'c1')
  t.equal(await s.deleteIfClient('/live/a', 'c1'), true)
  t.equal(await s.get('/live/a'), undefined)
  t.equal(await s.deleteIfClient('/live/none', 'c1'), false)
})

t.test('on_close finds the stream by client, and a replaced client no longer maps to it', async (t) => {
  const s = new MemoryPublisherStore(10)
  await s.set(entry('/live/a', 'c1'))
  await s.set(entry('/live/a', 'c2'))
  t.equal(await s.deleteByClient('c1'), undefined, 'the old client owns nothing now')
  t.equal((await s.deleteByClient('c2'))?.key, '/live/a')
  t.equal(await s.size(), 0)
})

t.test('the table is bounded: the least recently used entry goes, with its client index', async (t) => {
  const s = new MemoryPublisherStore(2)
  await s.set(entry('/live/a', 'c1'))
  await s.set(entry('/live/b', 'c2'))
  await s.set(entry('/live/c', 'c3'))
  t.equal(await s.size(), 2)
  t.equal(await s.get('/live/a'), undefined)
  t.equal(await s.deleteByClient('c1'), undefined)
  t.same((await s.list()).map((p) => p.key).sort(), ['/live/b', '/live/c'])
  t.equal(await s.delete('/live/b'), true)
})
