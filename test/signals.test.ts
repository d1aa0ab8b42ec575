import t from 'tap'
import { ReleaseSignals } from '../src/publishers/signals.js'

t.test('a waiter wakes when its client is released', async (t) => {
  const s = new ReleaseSignals()
  const ac = new AbortController()
  const woke = s.wait('x', ac.signal)
  t.equal(s.waiting, 1)
  s.released('other')
  s.released('x')
  await woke
  t.equal(s.waiting, 0)
})

t.test('a release just before the wait counts', async (t) => {
  const s = new ReleaseSignals()
  s.released('x')
  await s.wait('x', new AbortController().signal)
  t.pass('resolved at once')
})

t.test('an aborted wait leaves nothing behind', async (t) => {
  const s = new ReleaseSignals()
  const a = new AbortController()
  const b = new AbortController()
  void s.wait('x', a.signal)
  void s.wait('x', b.signal)
  a.abort()
  t.equal(s.waiting, 1, 'the other waiter remains')
  b.abort()
  t.equal(s.waiting, 0)
})
