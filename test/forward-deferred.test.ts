import t from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { startWorld, waitFor } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'

/**
 * SRS >= 7.0.62 with forwarding on: a newcomer without credentials is refused by SRS's publish
 * token (on_connect, then on_close, never on_publish) and its close starts a deferred takeover of
 * the stalled holder. The platform is asked for the publish verdict (an on_publish made of the
 * on_connect's fields) before the eviction: its refusal keeps the holder on air, its allow lets
 * the camera's retry in, and the evicted holder's unpublish and close are not forwarded. With
 * credentials the takeover is at on_connect, where a publish the platform refuses keeps the holder.
 */

const SECRET = 'publish-secret-0123456789abcdef'
const signed = (stream: string) => signedQuery(SECRET, `live/${stream}`, Math.floor(Date.now() / 1000) + 600)

t.test('a deferred takeover asks the platform\'s publish verdict before the eviction: a refusal keeps the holder, an allow evicts it', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const { sim, app, logs } = await startWorld(t, { FORWARD_URL: platform.url }, { version: '7-token' })
  await app.srsServers.discover()
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(a.ok)

  // The platform lets the camera connect but refuses its publish.
  platform.modes.set('on_publish', { kind: 'body', status: 200, body: '{"code":451,"msg":"camera suspended"}' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same({ ok: first.ok, code: first.code }, { ok: false, code: 1028 }, 'refused by SRS\'s token')
  const refusal = await logs.wait((l) => l.path === 'deferred' && l.type === 'refusal', 10_000)
  t.match(refusal, { client: first.clientId, reason: 'platform', code: 451, msg: /refused by the platform \(code 451: camera suspended\)/ })
  t.same(sim.kicks, [], 'the holder is not evicted')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  const asked = platform.of('on_publish').filter((x) => x.body.client_id === first.clientId)
  t.equal(asked.length, 1, 'the platform was asked the publish once')
  t.match(asked[0]!.body, { action: 'on_publish', client_id: first.clientId, vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '', stream_url: '/live/cam1' })
  t.equal(asked[0]!.body.server_id, sim.serverId)
  t.notOk(sim.hookCalls.some((c) => c.hook === 'on_publish' && c.clientId === first.clientId), 'SRS never sent it an on_publish')

  // Allowed now: the next attempt's close evicts the holder, and the retry after it gets in.
  platform.modes.delete('on_publish')
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(second.ok, false, 'still refused by the token while the holder is there')
  await waitFor(() => sim.activePublisher('live', 'cam1') === undefined, 10_000, 'the deferred takeover\'s release')
  t.same(sim.kicks, [a.clientId])
  t.match(await logs.wait((l) => l.path === 'deferred' && l.type === 'takeover'), { incumbent: a.clientId, newcomer: second.clientId })
  const publishAsk = platform.of('on_publish').find((x) => x.body.client_id === second.clientId)!
  const retry = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(retry.ok, 'the retry gets in')
  await sim.waitForHook((c) => c.hook === 'on_close' && c.clientId === a.clientId)
  await logs.wait((l) => l.action === 'on_close' && l.client === a.clientId)
  t.ok(publishAsk.at <= platform.of('on_publish').find((x) => x.body.client_id === retry.clientId)!.at)
  const about = (id: string) => platform.received.filter((x) => x.body.client_id === id).map((x) => x.action)
  t.same(about(a.clientId).filter((x) => x === 'on_unpublish' || x === 'on_close'), [], 'the evicted holder\'s unpublish and close are not forwarded')
  t.ok(logs.find((l) => l.action === 'on_unpublish' && l.client === a.clientId && l.forward === 'not-forwarded-replaced' && l.replacedBy === second.clientId))
})

t.test('SRS >= 7.0.62 with credentials: the platform allows the on_connect but refuses the publish: the holder is kept and the refusal answers the on_connect', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const { sim, app, logs } = await startWorld(t, { FORWARD_URL: platform.url, PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }, { version: '7-token' })
  await app.srsServers.discover()
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed('cam1'), stalled: true })
  t.ok(a.ok)
  platform.modes.set('on_publish', { kind: 'body', status: 200, body: '{"code":451,"msg":"camera suspended"}' })
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed('cam1') })
  t.equal(b.ok, false)
  t.same(sim.kicks, [], 'nobody evicted')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  const connect = sim.hookCalls.find((c) => c.hook === 'on_connect' && c.clientId === b.clientId)!
  t.match(JSON.parse(connect.replyBody), { code: 451, msg: /camera suspended/ }, 'the on_connect answers the publish refusal')
  t.same(platform.received.filter((x) => x.body.client_id === b.clientId).map((x) => x.action).slice(0, 2), ['on_connect', 'on_publish'], 'its on_connect allowed, then its publish asked')
  t.match(await logs.wait((l) => l.action === 'on_connect' && l.client === b.clientId), { code: 451, platform: 'allowed,publish-refused' })
})
