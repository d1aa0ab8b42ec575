import t from 'tap'
import { PlatformServer } from './fixtures/platform.js'
import { startZlmWorld } from './fixtures/zlm-app.js'

/** ZLMediaKit's hooks forwarded to the platform (FORWARD_ZLM_URL), with ZLMediaKit's reply contract. */

t.test('ZLMediaKit: the platform\'s refusal keeps a stalled holder on air; its allow takes over and passes its options on; notifications arrive in order', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const { sim, logs } = await startZlmWorld(t, { FORWARD_ZLM_URL: platform.url })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(a.ok)
  platform.refused.set('cam1', 401)
  const refused = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(refused.ok, false, 'the newcomer the platform refuses is refused')
  t.same(sim.kicks, [], 'nobody was evicted')
  t.equal(sim.owner('live', 'cam1'), a.id)
  t.match(await logs.wait((l) => l.action === 'on_publish' && l.client === refused.id), { outcome: 'refused-platform', code: 401 })
  platform.refused.clear()
  platform.allowExtra = { enable_mp4: true }
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok)
  t.same(sim.kicks, [a.id])
  t.equal(sim.owner('live', 'cam1'), b.id)
  const call = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.id === b.id)!
  t.match(JSON.parse(call.replyBody), { code: 0, enable_mp4: true }, 'the platform\'s per-stream options reach ZLMediaKit')
  await platform.waitFor((r) => r.some((x) => x.action === 'on_stream_changed' && x.body.regist === true && x.body.originSock?.identifier === b.id))
  const changes = platform.of('on_stream_changed').filter((x) => x.body.stream === 'cam1')
  const lastRegist = changes.findLastIndex((x) => x.body.regist === true)
  t.ok(changes.slice(lastRegist + 1).every((x) => x.body.regist === true), 'the platform ends with the stream registered')
  t.ok(changes.every((x) => typeof x.headers['idempotency-key'] === 'string'))
})

for (const mode of ['closed', 'open'] as const) {
  t.test(`ZLMediaKit, a platform 20 s slow: on_publish answered within FORWARD_TIMEOUT_MS, FORWARD_FAIL_MODE=${mode}; notifications at once`, async (t) => {
    const platform = await PlatformServer.start()
    t.teardown(() => platform.close())
    const { sim, logs } = await startZlmWorld(t, { FORWARD_ZLM_URL: platform.url, FORWARD_TIMEOUT_MS: '400', FORWARD_FAIL_MODE: mode })
    platform.mode = { kind: 'slow', ms: 20_000 }
    const a = await sim.publish({ app: 'live', stream: 'cam1' })
    t.equal(a.ok, mode === 'open', 'the fail mode decides')
    const calls = sim.hookCalls.filter((c) => c.hook === 'on_publish' && c.body.id === a.id)
    t.ok(calls.length >= 1)
    // A behaviour bound, generous: the platform's 20 s never reach ZLMediaKit.
    for (const c of calls) t.ok(c.ms < 400 + 2000, `on_publish answered in ${Math.round(c.ms)} ms`)
    t.match(await logs.wait((l) => l.action === 'on_publish' && l.client === a.id), mode === 'open' ? { platform: 'failed-open' } : { outcome: 'refused-platform', platform: 'failed-closed' })
    if (mode === 'open') {
      // Its on_stream_changed is a notification: acknowledged whatever the platform does.
      await sim.waitForHook((c) => c.hook === 'on_stream_changed' && c.outcome === 'accepted')
      const changed = sim.hookCalls.filter((c) => c.hook === 'on_stream_changed')
      t.ok(changed.every((c) => c.outcome === 'accepted' && c.ms < 2000), 'notifications answered at once')
    }
  })
}
