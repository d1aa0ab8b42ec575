import t, { type Test } from 'tap'
import { Codes } from '../src/errors.js'
import { SrsApi } from '../src/srs/api.js'
import { startApp, startWorld } from './fixtures/app.js'
import { publishOf, serviceOver } from './fixtures/service.js'
import { SrsSimulator } from './fixtures/srs-sim.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * Takeover policies against a stalled and a live incumbent, driven through the SRS simulator
 * (whose recv_bytes grow for a live publisher and freeze for a stalled one), and the service's
 * edges against a scripted SRS API.
 */

const world = startWorld

const replyOf = (sim: SrsSimulator, clientId: string) =>
  JSON.parse(sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === clientId)!.replyBody) as { code: number, msg: string | null }

const expected = {
  takeover: { stalled: 'evicted', live: 'evicted' },
  'takeover-stale': { stalled: 'evicted', live: Codes.INCUMBENT_SENDING },
  reject: { stalled: Codes.INCUMBENT_KEPT, live: Codes.INCUMBENT_KEPT }
} as const

for (const [policy, outcomes] of Object.entries(expected)) {
  for (const [state, outcome] of Object.entries(outcomes)) {
    const words = outcome === 'evicted' ? 'is evicted and the newcomer publishes' : `keeps the stream and the newcomer is refused with ${outcome}`
    t.test(`${policy}: a ${state} incumbent ${words}`, async (t) => {
      const { sim, app } = await world(t, { TAKEOVER_POLICY: policy })
      const a = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.7', stalled: state === 'stalled' })
      const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
      if (outcome === 'evicted') {
        t.ok(b.ok, 'the newcomer publishes')
        t.same(sim.kicks, [a.clientId])
        t.equal(sim.activePublisher('live', 'cam1'), b.clientId)
      } else {
        t.equal(b.ok, false)
        const reply = replyOf(sim, b.clientId)
        t.equal(reply.code, outcome)
        t.match(reply.msg, /^stream live\/cam1 is published by 10\.0\.0\.7 since \d\d:\d\d:\d\d UTC/, 'the refusal names the incumbent and since when')
        t.same(sim.kicks, [], 'nobody was kicked')
        t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
        t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId, 'the table keeps the incumbent')
      }
    })
  }
}

/** A simulator refreshing its counters every 100 ms, and the app told so: probes take ~0.2 s, not ~6 s. */
const FAST = { simOpts: { statsIntervalMs: 100 }, deps: { srsStatsIntervalMs: 100 } }

t.test('takeover-stale explains a refusal in words an operator understands', async (t) => {
  const { sim, logs } = await world(t, { TAKEOVER_POLICY: 'takeover-stale' }, FAST.simOpts, { deps: FAST.deps })
  await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.7' })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(replyOf(sim, b.clientId).msg, /^stream live\/cam1 is published by 10\.0\.0\.7 since \d\d:\d\d:\d\d UTC and is sending \(\d+ bytes in \d+ ms\); policy takeover-stale$/)
  const call = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === b.clientId)!
  t.ok(call.ms >= 100 && call.ms < 2000, `the probe took one to two refreshes (${Math.round(call.ms)} ms)`)
  t.match(await logs.wait((l) => l.action === 'on_publish' && l.code === Codes.INCUMBENT_SENDING), { outcome: 'refused-incumbent-sending' })
})

t.test('TAKEOVER_POLICY_BY_APP overrides the policy per app', async (t) => {
  const { sim } = await world(t, { TAKEOVER_POLICY: 'takeover', TAKEOVER_POLICY_BY_APP: 'studio=reject, live=takeover' })
  const a = await sim.publish({ app: 'studio', stream: 'desk', stalled: true })
  const b = await sim.publish({ app: 'studio', stream: 'desk' })
  t.equal(replyOf(sim, b.clientId).code, Codes.INCUMBENT_KEPT)
  t.equal(sim.activePublisher('studio', 'desk'), a.clientId)
  const c = await sim.publish({ app: 'other', stream: 'cam', stalled: true })
  t.ok((await sim.publish({ app: 'other', stream: 'cam' })).ok, 'an app without an entry follows TAKEOVER_POLICY')
  t.same(sim.kicks, [c.clientId])
})

t.test('takeover-stale: the probe has its own time, on top of TAKEOVER_TIMEOUT_MS for the release', async (t) => {
  const { sim } = await world(t, { TAKEOVER_POLICY: 'takeover-stale', STALE_PROBE_MS: '300', TAKEOVER_TIMEOUT_MS: '400' }, { statsIntervalMs: 100, releaseDelayMs: 5000 }, { deps: FAST.deps })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  const call = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === b.clientId)!
  t.same(sim.kicks, [a.clientId], 'the stalled incumbent was evicted after the probe')
  t.ok(call.accepted, 'allowed at the bound: SRS decides')
  t.ok(call.ms >= 690 && call.ms < 1500, `bounded by STALE_PROBE_MS + TAKEOVER_TIMEOUT_MS (${Math.round(call.ms)} ms)`)
})

t.test('a probe bound shorter than two of SRS\'s 3 s counter refreshes is warned about at start', async (t) => {
  const short = await startApp(t, { STALE_PROBE_MS: '3500' })
  t.ok(short.logs.find((l) => l.level === 40 && /STALE_PROBE_MS is shorter/.test(l.msg)))
  const fine = await startApp(t, {})
  t.notOk(fine.logs.find((l) => /STALE_PROBE_MS is shorter/.test(l.msg ?? '')), 'unset, it is two refreshes and a margin')
})

/** The service against a scripted API whose client answers change from call to call. */
async function scripted (t: Test, clients: Array<Record<string, unknown> | null | 'fail'>, opts: { policy?: 'reject' | 'takeover-stale', failMode?: 'open' | 'closed' } = {}) {
  const env = { code: 0, server: 'vid-s', service: 'x', pid: '1' }
  const stream = { id: 'vid-1', name: 'cam1', app: 'live', vhost: 'vid-v', url: '/live/cam1', publish: { active: true, cid: 'A' } }
  const newcomer = { id: 'B', stream: 'vid-1', url: '/live/cam1', type: 'fmle-publish', publish: true }
  let released = false
  const srs = await StubServer.start((req, res) => {
    const url = req.url ?? ''
    if (req.method === 'DELETE') {
      stream.publish = { active: false, cid: 'A' }
      released = true
      return json(res, env)
    }
    if (url.startsWith('/api/v1/streams/')) return json(res, { ...env, stream })
    if (url === '/api/v1/clients/B') return json(res, { ...env, client: newcomer })
    // After the kick the incumbent is gone (its release, as SRS's API shows it).
    if (released) return json(res, { code: 2049 })
    const next = clients.shift()
    if (next === 'fail') return json(res, {}, 500)
    return json(res, next == null ? { code: 2049 } : { ...env, client: next })
  })
  const api = new SrsApi({ url: srs.url, timeoutMs: 300, retries: 0, pageSize: 10 })
  // A counter refresh every 20 ms, so the probe reads a few times in well under a second.
  const s = serviceOver(api, { takeoverTimeoutMs: 2000, failMode: opts.failMode ?? 'open', policy: opts.policy })
  Object.defineProperty(s.server, 'statsIntervalMs', { value: 20 })
  t.teardown(async () => { await api.close(); await srs.close() })
  return { service: s.service, srs, req: publishOf(s.server) }
}

const incumbent = (recv?: number, alive?: number) => ({ id: 'A', stream: 'vid-1', type: 'fmle-publish', publish: true, ip: '10.0.0.7', recv_bytes: recv, alive })

t.test('takeover-stale: an incumbent the server forgets during the probe counts as gone and is replaced', async (t) => {
  const first = await scripted(t, [null], { policy: 'takeover-stale' })
  t.equal((await first.service.publish(first.req)).outcome, 'took-over', 'gone at the first read')
  const second = await scripted(t, [incumbent(100, 5), null], { policy: 'takeover-stale' })
  t.equal((await second.service.publish(second.req)).outcome, 'took-over', 'gone at a later read')
  const third = await scripted(t, [incumbent(100, 5), incumbent(200, 5), null], { policy: 'takeover-stale' })
  t.equal((await third.service.publish(third.req)).outcome, 'took-over', 'gone at the read after its counter moved')
})

t.test('takeover-stale: an incumbent without recv_bytes keeps the stream; one without alive is described without a time', async (t) => {
  for (const reads of [[incumbent(undefined)], [incumbent(100), incumbent(undefined)]]) {
    const { service, req } = await scripted(t, reads, { policy: 'takeover-stale' })
    const r = await service.publish(req)
    t.equal(r.outcome, 'refused-incumbent-sending')
    t.equal(r.refusal?.msg, 'stream live/cam1 is published by 10.0.0.7 and may be sending (the server did not report its bytes); policy takeover-stale')
  }
})

t.test('takeover-stale: the server failing during the probe follows FAIL_MODE', async (t) => {
  const { service, srs, req } = await scripted(t, [incumbent(100), 'fail'], { policy: 'takeover-stale', failMode: 'closed' })
  const r = await service.publish(req)
  t.match(r, { outcome: 'refused-api-failed', refusal: { code: Codes.SRS_API_UNAVAILABLE, msg: /probe the incumbent/ } })
  t.notOk(srs.requests.some((x) => x.method === 'DELETE'))
})

t.test('reject: when the server cannot describe the incumbent, the refusal names its client id', async (t) => {
  for (const answer of ['fail', null] as const) {
    const { service, req } = await scripted(t, [answer], { policy: 'reject' })
    const r = await service.publish(req)
    t.same(r.refusal, { code: Codes.INCUMBENT_KEPT, msg: 'stream live/cam1 is published by client A; policy reject keeps the incumbent' }, String(answer))
  }
})

t.test('a request\'s own policy wins over the service\'s', async (t) => {
  const { service, req } = await scripted(t, [incumbent(1, 2)], { policy: 'reject' })
  t.equal((await service.publish({ ...req, policy: 'takeover' })).outcome, 'took-over')
})
