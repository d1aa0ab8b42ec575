import t from 'tap'
import { Codes } from '../src/errors.js'
import { decide, type DecisionInput } from '../src/publishers/policy.js'

const NOW = Date.UTC(2026, 0, 2, 12, 5, 0)
const held = { id: 's', active: true, holder: 'a' }
const input = (extra: Partial<DecisionInput> = {}): DecisionInput =>
  ({ policy: 'takeover', stream: 'live/cam1', newcomer: 'b', live: held, now: NOW, ...extra })
const incumbent = { ip: '10.0.0.7', since: Date.UTC(2026, 0, 2, 12, 1, 3) }

t.test('a free stream is allowed', async (t) => {
  t.same(decide(input({ live: { active: false } })), { kind: 'allow', reason: 'free' })
  t.same(decide(input({ live: { active: true } })), { kind: 'allow', reason: 'free' }, 'active without a holder')
})

t.test('the stream held by the newcomer itself is allowed', async (t) => {
  t.same(decide(input({ live: { active: true, holder: 'b' } })), { kind: 'allow', reason: 'own' })
})

t.test('takeover: the newest publisher wins, evicting the incumbent', async (t) => {
  t.same(decide(input()), { kind: 'evict', incumbent: 'a' })
  t.same(decide(input({ credentials: { kind: 'valid' } })), { kind: 'evict', incumbent: 'a' }, 'with valid credentials')
})

t.test('without SRS\'s state the stream must be looked up first', async (t) => {
  t.same(decide(input({ live: undefined, credentials: { kind: 'none' } })), { kind: 'lookup' })
})

t.test('invalid credentials are refused before anything else, with their own code and words', async (t) => {
  const d = decide(input({ live: undefined, credentials: { kind: 'invalid', code: Codes.PUBLISH_KEY_WRONG, msg: 'wrong key' } }))
  t.same(d, { kind: 'refuse', reason: 'credentials', code: Codes.PUBLISH_KEY_WRONG, msg: 'wrong key' })
})

t.test('reject: the incumbent always keeps the stream, and the refusal says who holds it since when', async (t) => {
  t.same(decide(input({ policy: 'reject', incumbent })), {
    kind: 'refuse',
    reason: 'policy-reject',
    code: Codes.INCUMBENT_KEPT,
    msg: 'stream live/cam1 is published by 10.0.0.7 since 12:01:03 UTC; policy reject keeps the incumbent'
  })
  t.match(decide(input({ policy: 'reject' })), { msg: 'stream live/cam1 is published by client a; policy reject keeps the incumbent' },
    'without the incumbent\'s address it is named by client id')
  t.same(decide(input({ policy: 'reject', live: { active: false } })), { kind: 'allow', reason: 'free' }, 'a free stream is still allowed')
})

t.test('on evidence only (connectedAt), a stalled holder is evicted only if the server says it began before that connect', async (t) => {
  const connectedAt = Date.UTC(2026, 0, 2, 12, 2, 0)
  const stalled = { before: 5000, after: 5000, ms: 400 }
  t.same(decide(input({ connectedAt })), { kind: 'probe', incumbent: 'a' }, 'probed whatever the policy')
  t.same(decide(input({ connectedAt, incumbent, sample: stalled })), { kind: 'evict', incumbent: 'a' }, 'began 12:01:03, before the connect')
  t.match(decide(input({ connectedAt, incumbent: { ip: '10.0.0.7', since: connectedAt + 1 }, sample: stalled })),
    { kind: 'refuse', reason: 'incumbent-newer', code: Codes.INCUMBENT_KEPT, msg: /it began after this client connected at 12:02:00 UTC/ })
  t.match(decide(input({ connectedAt, incumbent: { ip: '10.0.0.7' }, sample: stalled })),
    { kind: 'refuse', reason: 'incumbent-newer', code: Codes.INCUMBENT_KEPT, msg: /the server did not say since when/ }, 'no start given: kept')
})

t.test('takeover-stale: asks for a probe, then evicts a silent incumbent and keeps a sending one', async (t) => {
  t.same(decide(input({ policy: 'takeover-stale' })), { kind: 'probe', incumbent: 'a' })
  t.same(decide(input({ policy: 'takeover-stale', sample: { before: 5000, after: 5000, ms: 400 } })), { kind: 'evict', incumbent: 'a' })
  t.same(decide(input({ policy: 'takeover-stale', sample: { gone: true } })), { kind: 'evict', incumbent: 'a' }, 'an incumbent SRS no longer knows')
  t.same(decide(input({ policy: 'takeover-stale', incumbent, sample: { before: 5000, after: 55000, ms: 400 } })), {
    kind: 'refuse',
    reason: 'incumbent-sending',
    code: Codes.INCUMBENT_SENDING,
    msg: 'stream live/cam1 is published by 10.0.0.7 since 12:01:03 UTC and is sending (50000 bytes in 400 ms); policy takeover-stale'
  })
})

t.test('takeover-stale: when SRS does not report bytes, the incumbent keeps the stream', async (t) => {
  for (const sample of [{ before: undefined, after: 10, ms: 400 }, { before: 10, after: undefined, ms: 400 }]) {
    t.match(decide(input({ policy: 'takeover-stale', sample })), { kind: 'refuse', code: Codes.INCUMBENT_SENDING, msg: /may be sending/ })
  }
})

t.test('flap guard: during a cooldown newcomers are refused; at the limit the takeover trips it', async (t) => {
  const cooling = decide(input({ flap: { coolingUntil: NOW + 60_000, recent: 0, max: 3 }, incumbent }))
  t.match(cooling, { kind: 'refuse', reason: 'flapping', code: Codes.TAKEOVER_FLAPPING, msg: /paused until 12:06:00 UTC/ })
  t.notOk((cooling as { trip?: boolean }).trip, 'an ongoing cooldown does not trip again')
  t.same(decide(input({ flap: { coolingUntil: NOW, recent: 2, max: 3 } })), { kind: 'evict', incumbent: 'a' }, 'an ended cooldown, under the limit')
  t.match(decide(input({ flap: { coolingUntil: 0, recent: 3, max: 3 } })), { kind: 'refuse', code: Codes.TAKEOVER_FLAPPING, trip: true, msg: /changed hands 3 times/ })
  t.same(decide(input({ flap: { coolingUntil: NOW + 1, recent: 0, max: 3 }, live: { active: false } })), { kind: 'allow', reason: 'free' },
    'a free stream is allowed even during a cooldown')
  t.same(decide(input({ policy: 'takeover-stale', flap: { coolingUntil: 0, recent: 3, max: 3 } })), { kind: 'probe', incumbent: 'a' },
    'takeover-stale probes first: a sending incumbent is no flap')
  t.match(decide(input({ policy: 'takeover-stale', flap: { coolingUntil: 0, recent: 3, max: 3 }, sample: { before: 1, after: 1, ms: 400 } })),
    { kind: 'refuse', trip: true })
})
