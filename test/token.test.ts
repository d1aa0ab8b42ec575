import { join } from 'node:path'
import t, { type Test } from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { startWorld, waitFor } from './fixtures/app.js'
import type { HookCall, SimOptions, SrsSimulator } from './fixtures/srs-sim.js'

/**
 * SRS >= 7.0.62 takes a per-stream publish token right after on_connect (docs/srs-protocol.md 4b): the
 * takeover happens inside on_connect for a publisher with valid credentials, and a client refused
 * by the token (on_connect, then on_close, never on_publish) starts a deferred takeover so that
 * its retry gets in. Against the simulator's token habit, over real HTTP.
 */

const SECRET = 'publish-secret-0123456789abcdef'
const exp = () => Math.floor(Date.now() / 1000) + 600
const signed = (stream = 'cam1') => signedQuery(SECRET, `live/${stream}`, exp())

async function world (t: Test, env: Record<string, string> = {}, simOpts: SimOptions = {}) {
  const w = await startWorld(t, env, { version: '7-token', ...simOpts })
  // The strategy follows the version SRS reports: wait until it was read.
  await w.app.srsServers.discover()
  return w
}

const call = (sim: SrsSimulator, hook: string, clientId: string): HookCall | undefined =>
  sim.hookCalls.find((c) => c.hook === hook && c.body.client_id === clientId)

/** When a hook call was answered. */
const endOf = (c: HookCall): number => c.startedAt + c.ms

t.test('SRS 7.0.62 is read from its API: takeovers move to on_connect', async (t) => {
  const { app, sim } = await world(t)
  t.equal(app.srsServers.nodes[0]!.strategy, 'connect')
  t.equal(app.srsServers.nodes[0]!.version?.version, sim.version)
})

for (const auth of ['signed', 'keys'] as const) {
  for (const state of ['stalled', 'live'] as const) {
    t.test(`${auth}: a ${state} holder is taken over inside the newcomer's on_connect, which is answered after the holder's on_close`, async (t) => {
      const dir = t.testdir({ 'keys.json': JSON.stringify({ 'live/cam1': 'k1-secret-key' }) })
      const env: Record<string, string> = auth === 'signed'
        ? { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }
        : { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: join(dir, 'keys.json') }
      const param = () => auth === 'signed' ? signed() : '?key=k1-secret-key'
      const { sim, app, logs } = await world(t, env)
      const a = await sim.publish({ app: 'live', stream: 'cam1', param: param(), stalled: state === 'stalled' })
      t.ok(a.ok)
      const b = await sim.publish({ app: 'live', stream: 'cam1', param: param(), ip: '10.0.0.9' })
      t.same({ ok: b.ok, code: b.code }, { ok: true, code: 0 }, 'the newcomer publishes on its first attempt')
      t.same(sim.kicks, [a.clientId], 'the holder was evicted')
      t.equal(sim.activePublisher('live', 'cam1'), b.clientId)
      const connect = call(sim, 'on_connect', b.clientId)!
      const unpublish = call(sim, 'on_unpublish', a.clientId)!
      const close = call(sim, 'on_close', a.clientId)!
      t.ok(endOf(connect) >= close.startedAt, 'answered only once the holder\'s on_close came (the token is free then)')
      t.ok(endOf(connect) > endOf(unpublish), 'not at the holder\'s on_unpublish: SRS still holds the token then')
      const line = await logs.wait((l) => l.msg?.startsWith('takeover at on_connect') === true)
      t.match(line, { path: 'connect', incumbent: a.clientId, newcomer: b.clientId, via: /hook|api/ })
      t.equal(app.publisherStats.byPath.connect, 1)
      t.match(await app.publishers.store.get(sim.serverId, '/live/cam1'), { clientId: b.clientId, takeovers: 1 })
      t.equal(call(sim, 'on_publish', b.clientId)?.accepted, true)
    })
  }
}

t.test('without credentials: SRS refuses the first attempt, its close evicts the stalled holder, the retry gets in', async (t) => {
  const { sim, app, logs } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same({ ok: first.ok, code: first.code }, { ok: false, code: 1028 }, 'refused by the token')
  t.notOk(call(sim, 'on_publish', first.clientId), 'never sent on_publish')
  await waitFor(() => sim.activePublisher('live', 'cam1') === undefined, 5000, 'the deferred takeover\'s release')
  t.same(sim.kicks, [a.clientId])
  const line = await logs.wait((l) => l.path === 'deferred' && l.type === 'takeover')
  t.match(line, { incumbent: a.clientId, newcomer: first.clientId })
  const retry = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(retry.ok, 'the retry gets in')
  t.equal(app.publisherStats.byPath.deferred, 1)
  const events = await app.eventLog.list(10, new Set(['takeover']))
  t.match(events, [{ type: 'takeover', path: 'deferred' }])
})

t.test('without credentials under takeover-stale, a live holder is kept through any number of retries', async (t) => {
  const { sim, app, logs } = await world(t, { TAKEOVER_POLICY: 'takeover-stale' }, { statsIntervalMs: 100 })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  for (let i = 0; i < 3; i++) {
    const r = await sim.publish({ app: 'live', stream: 'cam1' })
    t.equal(r.code, 1028, `retry ${i + 1} refused by the token`)
  }
  await waitFor(() => sim.hookCalls.filter((c) => c.hook === 'on_close' && c.body.client_id !== a.clientId).length === 3, 5000, 'the three retries\' on_close')
  // Each deferred probe judges the live holder sending: nobody is kicked.
  await app.publishers.idle()
  // Each retry's deferred takeover ended in a verdict: the holder found sending, or (the probes of
  // one stream run one at a time) its bound used up waiting for the others; neither evicts.
  const verdicts = logs.lines.filter((l) => l.path === 'deferred').map((l) => l.type === 'refusal' ? l.reason : l.type)
  t.equal(verdicts.length, 3, `three deferred verdicts: ${verdicts.join(', ')}`)
  t.ok(verdicts.includes('incumbent-sending'), 'the holder was probed and found sending')
  t.ok(verdicts.every((v) => v === 'incumbent-sending' || v === 'bound-exhausted'), 'nothing else')
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
})

t.test('an RTMP player\'s on_connect on a live stream is answered without any SRS API call and evicts nobody, under every policy and auth mode', async (t) => {
  for (const env of [
    { TAKEOVER_POLICY: 'takeover' } as Record<string, string>,
    { TAKEOVER_POLICY: 'takeover-stale' },
    { TAKEOVER_POLICY: 'reject' },
    { TAKEOVER_POLICY: 'takeover', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET },
    { TAKEOVER_POLICY: 'takeover', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, PLAY_AUTH: 'signed', PLAY_SECRET: 'play-secret-0123456789abcdef' }
  ]) {
    const { sim } = await world(t, env)
    const a = await sim.publish({ app: 'live', stream: 'cam1', param: env.PUBLISH_AUTH === undefined ? '' : signed(), stalled: true })
    const before = sim.apiRequests
    const playParam = env.PLAY_AUTH === undefined ? '' : signedQuery('play-secret-0123456789abcdef', 'live/cam1', exp())
    const p = await sim.play({ app: 'live', stream: 'cam1', param: playParam })
    t.ok(p.ok, `${JSON.stringify(env)}: the player plays`)
    t.equal(sim.apiRequests, before, 'no API call for it')
    await sim.stopPlayer(p.clientId)
    t.same(sim.kicks, [], 'nobody evicted, also after the player left')
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  }
})

t.test('with publish auth on, a refused client with wrong or no credentials evicts nobody', async (t) => {
  const { sim, app } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed(), stalled: true })
  const none = await sim.publish({ app: 'live', stream: 'cam1' })
  const wrong = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery('another-secret-0123456789', 'live/cam1', exp()) })
  t.same([none.code, wrong.code], [1028, 1028], 'both refused by the token')
  await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === wrong.clientId)
  await app.publishers.idle()
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
})

t.test('an FMLE republish (on_connect again from the holder itself) is no conflict', async (t) => {
  const { sim, hookBase, app } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
  const body = { ...call(sim, 'on_connect', a.clientId)!.body }
  const { postHook } = await import('./fixtures/app.js')
  const r = await postHook(hookBase, 'on_connect', body)
  t.same(r.reply, { code: 0, msg: null })
  t.same(sim.kicks, [])
  t.equal(app.publisherStats.takeovers, 0)
})

t.test('on_publish on a token SRS resolves nothing: no takeover machinery, no API call', async (t) => {
  const { sim, app } = await world(t)
  const before = sim.apiRequests
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(a.ok)
  t.equal(sim.apiRequests, before, 'not even a lookup')
  t.match(await app.publishers.store.get(sim.serverId, '/live/cam1'), { clientId: a.clientId, state: 'publishing' })
})

t.test('TAKEOVER_AT forces the strategy whatever the version', async (t) => {
  const forcedPublish = await world(t, { TAKEOVER_AT: 'publish', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET })
  t.equal(forcedPublish.app.srsServers.nodes[0]!.strategy, 'publish')
  const a = await forcedPublish.sim.publish({ app: 'live', stream: 'cam1', param: signed(), stalled: true })
  const b = await forcedPublish.sim.publish({ app: 'live', stream: 'cam1', param: signed() })
  t.equal(b.code, 1028, 'on a token SRS the on_publish takeover comes too late')
  t.same(forcedPublish.sim.kicks, [], 'and on_connect did nothing')
  t.ok(a.ok)

  const forcedConnect = await startWorld(t, { TAKEOVER_AT: 'connect', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }, { version: '6' })
  await forcedConnect.app.srsServers.discover()
  t.equal(forcedConnect.app.srsServers.nodes[0]!.strategy, 'connect')
  const c = await forcedConnect.sim.publish({ app: 'live', stream: 'cam1', param: signed(), stalled: true })
  const d = await forcedConnect.sim.publish({ app: 'live', stream: 'cam1', param: signed() })
  t.ok(d.ok, 'on an SRS without a token the on_connect takeover works too')
  t.same(forcedConnect.sim.kicks, [c.clientId])
})

t.test('before the version is known, both hooks are handled safely', async (t) => {
  const { sim, app } = await startWorld(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, SRS_API_RETRIES: '0' }, { version: '7-token' })
  // No discovery yet (as if SRS's API had not answered at start).
  app.srsServers.nodes[0]!.strategy = 'both'
  app.srsServers.nodes[0]!.version = undefined
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed(), stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
  t.ok(a.ok && b.ok, 'the takeover happened at on_connect')
  t.same(sim.kicks, [a.clientId])
  t.equal(call(sim, 'on_publish', b.clientId)?.accepted, true, 'and on_publish found nothing left to take over')
})

t.test('a refused publisher with credentials, refused by our policy at on_connect, defers nothing at its close', async (t) => {
  const { sim, app } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, TAKEOVER_POLICY: 'reject' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed(), stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
  t.equal(b.ok, false)
  t.match(JSON.parse(call(sim, 'on_connect', b.clientId)!.replyBody), { code: Codes.INCUMBENT_KEPT })
  await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === b.clientId)
  await app.publishers.idle()
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
})

t.test('at on_connect a stream id the table holds from before an SRS restart is looked past, to the stream by its url', async (t) => {
  const { sim, app } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed(), stalled: true })
  const entry = await app.publishers.store.get(sim.serverId, '/live/cam1')
  await app.publishers.store.set({ ...entry!, streamId: 'vid-beforerestart' })
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
  t.ok(b.ok, 'taken over on the first attempt')
  t.same(sim.kicks, [a.clientId])
})
