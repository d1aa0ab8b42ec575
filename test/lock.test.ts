import t from 'tap'
import { KeyedLock } from '../src/publishers/lock.js'

t.test('one holder per key; the next waiter gets it on release, in order', async (t) => {
  const lock = new KeyedLock()
  const first = await lock.acquire('a', 1000)
  t.ok(first)
  const order: string[] = []
  const second = lock.acquire('a', 5000).then((r) => { order.push('second'); return r })
  const third = lock.acquire('a', 5000).then((r) => { order.push('third'); return r })
  const other = await lock.acquire('b', 0)
  t.ok(other, 'another key is never blocked')
  t.same(order, [], 'nobody else got key a while it is held')
  first!()
  first!() // releasing twice is harmless
  const r2 = await second
  t.same(order, ['second'])
  r2!()
  const r3 = await third
  r3!()
  other!()
  t.equal(lock.size, 0, 'nothing is left behind')
})

t.test('a waiter gives up at its deadline with null, and is not granted later', async (t) => {
  const lock = new KeyedLock()
  const held = await lock.acquire('k', 1000)
  const late = await lock.acquire('k', 20)
  t.equal(late, null)
  held!()
  t.equal(lock.size, 0, 'the timed-out waiter left the queue')
})
