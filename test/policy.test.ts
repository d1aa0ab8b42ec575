import t from 'tap'
import { decide } from '../src/publishers/policy.js'

t.test('a free stream is allowed', async (t) => {
  t.same(decide({ policy: 'takeover', live: { active: false }, newcomer: 'b' }), { kind: 'allow', reason: 'free' })
  t.same(decide({ policy: 'takeover', live: { active: true }, newcomer: 'b' }), { kind: 'allow', reason: 'free' }, 'active without a cid')
})

t.test('the stream held by the newcomer itself is allowed', async (t) => {
  t.same(decide({ policy: 'takeover', live: { active: true, cid: 'b' }, newcomer: 'b' }), { kind: 'allow', reason: 'own' })
})

t.test('takeover: the newest publisher wins, evicting the incumbent', async (t) => {
  t.same(decide({ policy: 'takeover', live: { id: 's', active: true, cid: 'a' }, newcomer: 'b' }), { kind: 'evict', incumbent: 'a' })
})
