import t from 'tap'
import { MemorySignals } from '../src/publishers/signals.js'

t.test('a waiter wakes when its topic is emitted, and not for another topic', async (t) => {
  const s = new MemorySignals()
  const ac = new AbortController()
  let woke = false
  const waiting = s.wait('x', ac.signal).then(() => { woke = true })
  t.equal(s.waiting, 1)
  s.emit('other')
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(woke, 'another topic does not wake it')
  s.emit('x')
  await waiting
  t.ok(woke)
  t.equal(s.waiting, 0)
})

t.test('a topic emitted before the wait began counts: the waiter resolves at once', async (t) => {
  const s = new MemorySignals()
  s.emit('x')
  t.ok(s.seen('x'))
  let resolved = false
  const w = s.wait('x', new AbortController().signal).then(() => { resolved = true })
  await Promise.resolve()
  t.ok(resolved, 'resolved in the same turn, without waiting for a new emit')
  await w
  t.equal(s.waiting, 0, 'and nothing was left waiting')
})

t.test('an aborted wait leaves nothing behind and stays pending', async (t) => {
  const s = new MemorySignals()
  const a = new AbortController()
  const b = new AbortController()
  let aDone = false
  void s.wait('x', a.signal).then(() => { aDone = true })
  void s.wait('x', b.signal)
  a.abort()
  t.equal(s.waiting, 1, 'the other waiter remains')
  b.abort()
  t.equal(s.waiting, 0)
  s.emit('x')
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(aDone, 'an aborted waiter is not woken')
})

t.test('a wait already aborted registers nothing', async (t) => {
  const s = new MemorySignals()
  const ac = new AbortController()
  ac.abort()
  void s.wait('x', ac.signal)
  t.equal(s.waiting, 0)
})
