import t, { type Test } from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { postHook, startWorld } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'
import type { SimOptions } from './fixtures/srs-sim.js'

/**
 * srs-hooks in front of the platform's own callback (FORWARD_URL), over real HTTP: the SRS
 * simulator sends its hooks to srs-hooks, which asks or tells the platform server of the test.
 */

async function platformWorld (t: Test, env: Record<string, string> = {}, sim: SimOptions = {}) {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const w = await startWorld(t, { FORWARD_URL: platform.url, FORWARD_HEADERS: 'Authorization: Bearer platform-secret', ...env }, sim)
  return { platform, ...w }
}

const SECRET = 'publish-secret-0123456789abcdef'
const signed = (stream: string) => signedQuery(SECRET, `live/${stream}`, Math.floor(Date.now() / 1000) + 600)

t.test('every hook reaches the platform with SRS\'s body unchanged, {action} replaced and FORWARD_HEADERS sent', async (t) => {
  const { platform, sim, logs } = await platformWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: '?k=v' })
  t.ok(a.ok)
  await sim.stop(a.clientId)
  await platform.waitFor((r) => r.some((x) => x.action === 'on_close'))
  t.same(platform.received.map((r) => r.action), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'], 'in SRS\'s order')
  for (const r of platform.received) {
    const sent = sim.hookCalls.find((c) => c.hook === r.action && c.clientId === a.clientId)!
    t.equal(r.raw, sent.raw, `${r.action}: the body as SRS sent it`)
    t.equal(r.path, `/callback/${r.action}`)
    t.equal(r.headers.authorization, 'Bearer platform-secret')
  }
  const notices = platform.received.filter((r) => r.action === 'on_unpublish' || r.action === 'on_close')
  t.ok(notices.every((r) => typeof r.headers['idempotency-key'] === 'string'), 'notifications carry an Idempotency-Key')
  t.not(notices[0]!.headers['idempotency-key'], notices[1]!.headers['idempotency-key'], 'one per hook')
  t.notOk(logs.raw.some((l) => l.includes('platform-secret')), 'the platform\'s credentials are never logged')
})

t.test('the platform\'s refusal refuses the newcomer and keeps a stalled holder on air', async (t) => {
  const { platform, sim, logs } = await platformWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(a.ok)
  platform.refused.set('cam1', 403)
  const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
  t.equal(b.ok, false, 'the newcomer is refused')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId, 'the holder keeps its stream')
  t.same(sim.kicks, [], 'nobody was evicted')
  // The platform refuses the camera from its on_connect on (its body names the stream).
  const call = sim.hookCalls.find((c) => c.hook === 'on_connect' && c.clientId === b.clientId)!
  t.match(JSON.parse(call.replyBody), { code: 403 })
  const line = await logs.wait((l) => l.action === 'on_connect' && l.client === b.clientId)
  t.match(line, { outcome: 'refused-platform', code: 403, platform: 'refused' })
  t.notOk(line.reason.includes('\n') || line.reason.includes('\u001b'), 'the platform\'s words are sanitised')
  t.match(line.reason, /camera cam1 is not allowed/)
})

t.test('a takeover: the platform ends with the newcomer online (the evicted publisher\'s unpublish and close are not forwarded)', async (t) => {
  const { platform, sim, logs } = await platformWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(a.ok && b.ok)
  t.same(sim.kicks, [a.clientId])
  await sim.waitForHook((c) => c.hook === 'on_close' && c.clientId === a.clientId)
  await logs.wait((l) => l.action === 'on_close' && l.client === a.clientId)
  // A later notification of the stream is delivered after anything queued before it.
  await sim.dvr(b.clientId)
  await platform.waitFor((r) => r.some((x) => x.action === 'on_dvr'))
  const seen = platform.received.map((r) => `${r.action}:${String(r.body.client_id)}`)
  t.same(seen.filter((s) => s.startsWith('on_publish') || s.startsWith('on_unpublish')), [`on_publish:${a.clientId}`, `on_publish:${b.clientId}`],
    'the platform saw both publishes and no unpublish: the camera is online, held by the newcomer')
  t.notOk(seen.includes(`on_close:${a.clientId}`))
  t.ok(logs.find((l) => l.action === 'on_unpublish' && l.client === a.clientId && l.forward === 'not-forwarded-replaced' && l.replacedBy === b.clientId))
})

for (const mode of ['closed', 'open'] as const) {
  t.test(`a platform 20 s slow: decision hooks are answered within FORWARD_TIMEOUT_MS, FORWARD_FAIL_MODE=${mode}`, async (t) => {
    const { platform, sim, logs, hookBase } = await platformWorld(t, { FORWARD_TIMEOUT_MS: '400', FORWARD_FAIL_MODE: mode })
    platform.mode = { kind: 'slow', ms: 20_000 }
    const a = await sim.publish({ app: 'live', stream: 'cam1' })
    t.equal(a.ok, mode === 'open')
    const calls = sim.hookCalls.filter((c) => c.clientId === a.clientId && (c.hook === 'on_connect' || c.hook === 'on_publish'))
    t.ok(calls.length >= 1)
    for (const c of calls) t.ok(c.ms < 400 + 600, `${c.hook} answered in ${Math.round(c.ms)} ms`)
    const line = await logs.wait((l) => l.action === 'on_connect' && l.client === a.clientId)
    t.match(line, mode === 'open' ? { code: 0, platform: 'failed-open' } : { code: Codes.PLATFORM_UNAVAILABLE, outcome: 'refused-platform', platform: 'failed-closed' })
    // A notification is answered at once whatever the platform does.
    const r = await postHook(hookBase, 'on_stop', { action: 'on_stop', client_id: 'p1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' })
    t.equal(r.status, 200)
    t.ok(r.ms < 300, `on_stop answered in ${Math.round(r.ms)} ms`)
  })
}

t.test('the platform answering garbage or HTTP 500: no verdict, FORWARD_FAIL_MODE decides; a plain 0 allows', async (t) => {
  const { platform, sim } = await platformWorld(t, { FORWARD_FAIL_MODE: 'closed' })
  platform.mode = { kind: 'garbage' }
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: false })
  platform.mode = { kind: 'status', status: 500 }
  t.match(await sim.publish({ app: 'live', stream: 'cam2' }), { ok: false })
  platform.mode = { kind: 'ok' }
  platform.plainZero = true
  t.match(await sim.publish({ app: 'live', stream: 'cam3' }), { ok: true })
})

t.test('SRS >= 7.0.62: the platform\'s publish verdict comes before the eviction at on_connect, and is not asked again at on_publish', async (t) => {
  const { platform, sim } = await platformWorld(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }, { version: '7-token' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed('cam1'), stalled: true })
  t.ok(a.ok)
  platform.refused.set('cam1', 401)
  const refused = await sim.publish({ app: 'live', stream: 'cam1', param: signed('cam1') })
  t.equal(refused.ok, false)
  t.same(sim.kicks, [], 'a newcomer the platform refuses evicts nobody')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  platform.refused.clear()
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed('cam1') })
  t.ok(b.ok, 'allowed by the platform, the newcomer takes the stream over')
  t.same(sim.kicks, [a.clientId])
  const asked = platform.received.filter((r) => r.body.client_id === b.clientId).map((r) => r.action)
  t.same(asked, ['on_connect', 'on_publish'], 'asked on_connect, then its publish verdict once: SRS\'s on_publish was not asked again')
  t.ok(sim.hookCalls.some((c) => c.hook === 'on_publish' && c.clientId === b.clientId && c.accepted))
})
