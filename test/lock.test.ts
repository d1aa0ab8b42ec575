import t from 'tap'
import { MemoryLocks } from '../src/publishers/lock.js'
import { waitFor } from './fixtures/app.js'

t.test('one holder per key; the next waiter gets it on release, in order', async (t) => {
  const lock = new MemoryLocks()
  const first = await lock.acquire('a', 1000, 10_000)
  t.ok(first)
  const order: string[] = []
  const second = lock.acquire('a', 5000, 10_000).then((r) => { order.push('second'); return r })
  const third = lock.acquire('a', 5000, 10_000).then((r) => { order.push('third'); return r })
  const other = await lock.acquire('b', 0, 10_000)
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
  const lock = new MemoryLocks()
  const held = await lock.acquire('k', 1000, 10_000)
  const late = await lock.acquire('k', 20, 10_000)
  t.equal(late, null)
  held!()
  t.equal(lock.size, 0, 'the timed-out waiter left the queue')
})

t.test('a hold that is never let go lapses at its lease, and the next waiter gets the key', async (t) => {
  const lock = new MemoryLocks()
  const stuck = await lock.acquire('k', 1000, 50)
  t.ok(stuck)
  const started = Date.now()
  const next = await lock.acquire('k', 5000, 10_000)
  t.ok(next, 'granted once the lease lapsed')
  t.ok(Date.now() - started >= 40, 'not before the lease')
  stuck!() // letting go after the lapse does not release the new holder
  const third = lock.acquire('k', 5000, 10_000)
  let got = false
  void third.then(() => { got = true })
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(got, 'the new holder still holds the key')
  next!()
  const r3 = await third
  t.ok(r3)
  r3!()
  await waitFor(() => lock.size === 0, 1000, 'an empty lock')
})
