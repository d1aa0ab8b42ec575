import t from 'tap'
import { Codes } from '../src/errors.js'
import { FlapGuard, MemoryFlapStore } from '../src/publishers/flap.js'
import { startApp } from './fixtures/app.js'
import { SrsSimulator } from './fixtures/srs-sim.js'

t.test('the guard counts takeovers within the window and forgets older ones', async (t) => {
  let now = 1_000_000
  const store = new MemoryFlapStore()
  const g = new FlapGuard({ max: 3, windowMs: 1000, cooldownMs: 5000, now: () => now, store })
  t.same(await g.state('s'), { coolingUntil: 0, recent: 0, max: 3 })
  await g.record('s')
  now += 600
  await g.record('s')
  t.equal((await g.state('s')).recent, 2)
  now += 500
  t.equal((await g.state('s')).recent, 1, 'the first one left the window')
  now += 1000
  t.equal((await g.state('s')).recent, 0)
  t.equal(store.size, 1, 'one stream remembered')
})

t.test('a trip starts a cooldown and clears the episode, so the first takeover after it goes through', async (t) => {
  let now = 0
  const g = new FlapGuard({ max: 2, windowMs: 60_000, cooldownMs: 5000, now: () => now })
  await g.record('s')
  await g.record('s')
  t.equal(await g.trip('s'), 5000)
  t.same(await g.state('s'), { coolingUntil: 5000, recent: 0, max: 2 })
  now = 5000
  t.same(await g.state('s'), { coolingUntil: 0, recent: 0, max: 2 }, 'the cooldown ended')
  t.same(await g.state('other'), { coolingUntil: 0, recent: 0, max: 2 }, 'streams are separate')
})

t.test('memory is bounded by maxStreams', async (t) => {
  const store = new MemoryFlapStore(5)
  const g = new FlapGuard({ max: 2, windowMs: 60_000, cooldownMs: 5000, now: Date.now, store })
  for (let i = 0; i < 50; i++) await g.record(`s${i}`)
  t.equal(store.size, 5)
})

t.test('two live encoders on one stream stop evicting each other within FLAP_MAX rounds; a single reconnect after the cooldown works', async (t) => {
  let skew = 0
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, FLAP_MAX: '3', FLAP_WINDOW_MS: '60000', FLAP_COOLDOWN_MS: '120000' }, { now: () => Date.now() + skew })
  sim.setHookBase(h.hookBase)
  const ips = ['10.0.0.1', '10.0.0.2']
  let holder = await sim.publish({ app: 'live', stream: 'cam1', ip: ips[0] })
  const rounds: string[] = []
  for (let round = 1; round <= 6; round++) {
    // Each encoder retries as soon as it is kicked off: the other one publishes again.
    const r = await sim.publish({ app: 'live', stream: 'cam1', ip: ips[round % 2] })
    rounds.push(r.ok ? 'took over' : String(JSON.parse(sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === r.clientId)!.replyBody).code))
    if (r.ok) holder = r
  }
  t.same(rounds, ['took over', 'took over', 'took over', String(Codes.TAKEOVER_FLAPPING), String(Codes.TAKEOVER_FLAPPING), String(Codes.TAKEOVER_FLAPPING)])
  t.equal(sim.kicks.length, 3, 'three evictions, then none')
  t.equal(sim.activePublisher('live', 'cam1'), holder.clientId, 'the current publisher keeps the stream')
  const warnings = h.logs.lines.filter((l) => /flap guard/.test(l.msg) && l.level === 40)
  t.equal(warnings.length, 1, 'one warning for the episode')
  t.match(warnings[0], { stream: '/live/cam1', incumbentIp: ips[1], newcomerIp: ips[0] })
  const refusal = JSON.parse(sim.hookCalls.filter((c) => c.hook === 'on_publish').at(-1)!.replyBody)
  t.match(refusal.msg, /^stream live\/cam1 is published by 10\.0\.0\.2 since .*paused until .*\(flap guard\)$/)

  skew = 120_001
  const reconnect = await sim.publish({ app: 'live', stream: 'cam1', ip: ips[0] })
  t.ok(reconnect.ok, 'after the cooldown one takeover goes through')
  t.equal(sim.kicks.length, 4)
})

t.test('one genuine reconnect is never blocked, and a free stream never counts', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, FLAP_MAX: '1' })
  sim.setHookBase(h.hookBase)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok((await sim.publish({ app: 'live', stream: 'cam1' })).ok, 'the reconnect evicts its own dead connection')
  t.same(sim.kicks, [a.clientId])
  for (let i = 0; i < 3; i++) {
    const p = await sim.publish({ app: 'live', stream: `free${i}` })
    await sim.stop(p.clientId)
    t.ok((await sim.publish({ app: 'live', stream: `free${i}` })).ok, `free stream ${i}: published again after a clean stop`)
  }
})
