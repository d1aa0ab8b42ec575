import { join } from 'node:path'
import t from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { postHook, waitFor } from './fixtures/app.js'
import { onPublishOf, startZlmWorld } from './fixtures/zlm-app.js'
import type { ZlmSimulator } from './fixtures/zlm-sim.js'

/**
 * The first-attempt reconnect on ZLMediaKit, end to end: the ZLMediaKit simulator drives the
 * server through its real hook endpoints over loopback, as ZLMediaKit does, and ZLMediaKit's own
 * conflict check (after on_publish) decides whether a publisher got the stream.
 */

/** The reply the server gave to a session's on_publish. */
const replyTo = (sim: ZlmSimulator, id: string) => JSON.parse(onPublishOf(sim, id)!.replyBody) as { code: number, msg: string | null }

/** A faster counter refresh than ZLMediaKit's second, so takeover-stale's probe is quick. */
const FAST = { deps: { zlmStatsIntervalMs: 200 } }

t.test('a stalled publisher is evicted and the newcomer gets the stream on its first attempt', async (t) => {
  const { sim, app, logs } = await startZlmWorld(t)
  const events: string[] = []
  app.publisherEvents.on((e) => events.push(e.type))
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(a.ok, 'the first publisher got the stream')
  const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
  t.same([b.ok, b.reason], [true, ''], 'no "Already publishing."')
  t.equal(sim.owner('live', 'cam1'), b.id)
  t.same(sim.kicks, [a.id], 'the stale publisher was kicked, once')
  const call = onPublishOf(sim, b.id)!
  t.equal(call.outcome, 'accepted')
  t.ok(call.ms < 3000, `on_publish answered in ${call.ms} ms`)
  t.match(await app.publishers.store.get('zlm-test-1', '/live/cam1'), { clientId: b.id, ip: '10.0.0.9', takeovers: 1 })
  const line = await logs.wait((l) => l.msg?.startsWith('takeover:') === true)
  t.match(line, { stream: '/live/cam1', incumbent: a.id, newcomer: b.id, server: 'zlm-test-1' })
  t.same(events, ['takeover'])
  const hook = await logs.wait((l) => l.kind === 'zlm' && l.action === 'on_publish' && l.client === b.id)
  t.match(hook, { level: 30, outcome: 'took-over', evicted: a.id, origin: 'rtmp_push', status: 200 })
})

t.test('every push protocol is taken over: RTSP, SRT and WebRTC newcomers replace a stalled holder', async (t) => {
  const { sim } = await startZlmWorld(t)
  for (const schema of ['rtsp', 'srt', 'rtc'] as const) {
    const a = await sim.publish({ app: 'live', stream: schema, schema, stalled: true })
    const b = await sim.publish({ app: 'live', stream: schema, schema })
    t.same([a.ok, b.ok], [true, true], `${schema}: ${b.reason}`)
    t.equal(sim.owner('live', schema), b.id)
    t.ok(sim.kicks.includes(a.id), `${schema}: the holder was kicked`)
  }
})

t.test('a live holder under takeover: the newest publisher wins (the camera reconnecting)', async (t) => {
  const { sim } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([a.ok, b.ok], [true, true])
  t.equal(sim.owner('live', 'cam1'), b.id)
  t.same(sim.kicks, [a.id])
  t.equal(sim.session(a.id)?.endReason, 'kick_session')
})

t.test('takeover-stale: a stalled holder is evicted, a sending one keeps the stream', async (t) => {
  const { sim, app } = await startZlmWorld(t, { TAKEOVER_POLICY: 'takeover-stale' }, {}, FAST)
  const a = await sim.publish({ app: 'live', stream: 'stalled', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'stalled' })
  t.ok(b.ok, b.reason)
  t.same(sim.kicks, [a.id])
  const c = await sim.publish({ app: 'live', stream: 'sending' })
  const d = await sim.publish({ app: 'live', stream: 'sending', ip: '10.0.0.4' })
  t.equal(d.ok, false)
  t.match(replyTo(sim, d.id), { code: Codes.INCUMBENT_SENDING, msg: /stream live\/sending is published by 127\.0\.0\.1 since .* and is sending \(\d+ bytes in \d+ ms\); policy takeover-stale/ })
  t.match(d.reason, /BadAuth/, 'ZLMediaKit refused the newcomer on our code')
  t.equal(sim.owner('live', 'sending'), c.id)
  t.same(sim.kicks, [a.id], 'the sending holder was not kicked')
  t.equal(app.publisherStats.refusals, 1)
})

t.test('reject: the holder keeps the stream, stalled or not; TAKEOVER_POLICY_BY_APP picks it per app', async (t) => {
  const { sim } = await startZlmWorld(t, { TAKEOVER_POLICY_BY_APP: 'studio=reject' })
  for (const stalled of [true, false]) {
    const stream = stalled ? 'stalled' : 'live'
    const a = await sim.publish({ app: 'studio', stream, stalled })
    const b = await sim.publish({ app: 'studio', stream })
    t.equal(b.ok, false, `${stream}: refused`)
    t.match(replyTo(sim, b.id), { code: Codes.INCUMBENT_KEPT, msg: /policy reject keeps the incumbent/ })
    t.equal(sim.owner('studio', stream), a.id)
  }
  t.same(sim.kicks, [])
  const c = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok((await sim.publish({ app: 'live', stream: 'cam1' })).ok, 'the other apps still take over')
  t.same(sim.kicks, [c.id])
})

t.test('players are never kicked: only the publisher is, and its players reconnect to the newcomer', async (t) => {
  const { sim } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const viewers = await Promise.all((['rtmp', 'rtsp', 'fmp4'] as const).map(async (schema) => await sim.play({ app: 'live', stream: 'cam1', schema })))
  t.ok(viewers.every((v) => v.ok))
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok)
  t.same(sim.kicks, [a.id], 'only the publisher was kicked')
  for (const v of viewers) t.equal(sim.session(v.id)?.kicked, false, `player ${v.id} was not kicked`)
  t.ok((await sim.play({ app: 'live', stream: 'cam1' })).ok, 'a player gets the newcomer\'s stream')
})

t.test('a forged on_publish evicts nobody: an unknown session, another address\'s, another port\'s', async (t) => {
  const { sim, zlmHookBase, app } = await startZlmWorld(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const viewer = await sim.play({ app: 'live', stream: 'cam1', ip: '10.0.0.7' })
  const forged = { mediaServerId: 'zlm-test-1', hook_index: 999, app: 'live', stream: 'cam1', vhost: '__defaultVhost__', schema: 'rtmp', protocol: 'rtmp', params: '', originType: 1, originTypeStr: 'rtmp_push' }
  const cases: Array<[string, Record<string, unknown>]> = [
    ['a session ZLMediaKit does not know', { id: '999-99', ip: '6.6.6.6', port: 4000 }],
    ['no address at all', { id: viewer.id }],
    ['a real session from another address', { id: viewer.id, ip: '6.6.6.6', port: 4000 }],
    ['a real session with another port', { id: viewer.id, ip: '10.0.0.7', port: 1 }]
  ]
  for (const [what, extra] of cases) {
    const r = await postHook(zlmHookBase, 'on_publish', { ...forged, ...extra })
    t.same([r.status, r.reply.code], [200, Codes.PUBLISHER_NOT_VERIFIED], what)
    t.match(r.reply.msg, /is not publishing \/live\/cam1 on server zlm-test-1; nobody was evicted/)
  }
  t.same(sim.kicks, [], 'nobody was kicked')
  t.equal(sim.owner('live', 'cam1'), a.id)
  t.equal(app.publisherStats.refusals, 4)
})

t.test('keys on ZLMediaKit: the right key takes over, a wrong or missing one is refused and evicts nobody', async (t) => {
  const dir = t.testdir({ 'keys.json': JSON.stringify({ 'live/cam1': 'k1-secret' }) })
  const { sim, logs } = await startZlmWorld(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: join(dir, 'keys.json'), STREAM_KEYS_POLL_MS: '25' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', params: 'key=k1-secret', stalled: true })
  t.ok(a.ok, 'ZLMediaKit\'s params carry no "?": the key is read all the same')
  for (const [what, params, code] of [['wrong key', 'key=nope', Codes.PUBLISH_KEY_WRONG], ['no key', '', Codes.PUBLISH_KEY_MISSING]] as const) {
    const r = await sim.publish({ app: 'live', stream: 'cam1', params })
    t.same([r.ok, replyTo(sim, r.id).code], [false, code], what)
  }
  t.same(sim.kicks, [])
  const b = await sim.publish({ app: 'live', stream: 'cam1', params: 'key=k1-secret' })
  t.ok(b.ok)
  t.same(sim.kicks, [a.id])
  t.notOk(logs.lines.some((l) => JSON.stringify(l).includes('k1-secret')), 'no key reaches the log')
})

t.test('signed URLs on ZLMediaKit: publish and play', async (t) => {
  const SECRET = 'publish-secret-0123456789abcdef'
  const PLAY = 'play-secret-0123456789abcdef'
  const { sim } = await startZlmWorld(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, PLAY_AUTH: 'signed', PLAY_SECRET: PLAY })
  const exp = Math.floor(Date.now() / 1000) + 600
  const a = await sim.publish({ app: 'live', stream: 'cam1', params: signedQuery(SECRET, 'live/cam1', exp).slice(1), stalled: true })
  t.ok(a.ok, a.reason)
  const stranger = await sim.publish({ app: 'live', stream: 'cam1', params: signedQuery('guess-guess-guess-guess', 'live/cam1', exp).slice(1) })
  t.same([stranger.ok, replyTo(sim, stranger.id).code], [false, Codes.SIGNATURE_INVALID])
  t.same(sim.kicks, [], 'a stranger kicks nobody, even off a stalled stream')
  const b = await sim.publish({ app: 'live', stream: 'cam1', params: signedQuery(SECRET, 'live/cam1', exp).slice(1) })
  t.ok(b.ok)
  t.same(sim.kicks, [a.id])
  t.ok((await sim.play({ app: 'live', stream: 'cam1', params: signedQuery(PLAY, 'live/cam1', exp).slice(1) })).ok, 'a signed play URL')
  const unsigned = await sim.play({ app: 'live', stream: 'cam1' })
  t.equal(unsigned.ok, false)
  t.match(JSON.parse(sim.hookCalls.find((c) => c.hook === 'on_play' && c.body.id === unsigned.id)!.replyBody), { code: Codes.SIGNATURE_MISSING })
})

t.test('an RTP server\'s stream is never taken over: an RTMP newcomer is refused, nobody is kicked', async (t) => {
  const { sim, url } = await startZlmWorld(t)
  const open = await fetch(`${url}/admin-api/video/camera/rtp-servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stream_id: 'gb1' }) })
  const { port } = await open.json() as { port: number }
  t.equal(sim.sendRtp(port), 'pending')
  await waitFor(() => sim.owner('rtp', 'gb1') === 'gb1', 5000, 'the RTP stream')
  const b = await sim.publish({ app: 'rtp', stream: 'gb1' })
  t.equal(b.ok, false)
  t.match(replyTo(sim, b.id), { code: Codes.INCUMBENT_NOT_EVICTABLE, msg: /it is fed by an RTP server \(rtp_push\).*never kicked/ })
  t.same(sim.kicks, [])
  t.equal(sim.owner('rtp', 'gb1'), 'gb1')
  const rtpPublish = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.originTypeStr === 'rtp_push')!
  t.equal(rtpPublish.outcome, 'accepted', 'the RTP push itself was allowed')
})

t.test('a release slower than the bound: the reply comes at TAKEOVER_TIMEOUT_MS and ZLMediaKit decides', async (t) => {
  const { sim, app } = await startZlmWorld(t, { TAKEOVER_TIMEOUT_MS: '400' }, { closeDelayMs: 1500 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  const call = onPublishOf(sim, b.id)!
  t.equal(call.outcome, 'accepted', 'allowed at the bound')
  t.ok(call.ms >= 390 && call.ms < 1200, `answered at the bound (${call.ms} ms)`)
  t.match(b, { ok: false, reason: /Already publishing/ }, 'ZLMediaKit still held the stream, so its own check refused')
  t.equal(app.publisherStats.takeoverTimeouts, 1)
  await sim.waitForHook((c) => c.hook === 'on_stream_changed' && c.body.regist === false)
  t.not(sim.owner('live', 'cam1'), a.id)
  t.ok((await sim.publish({ app: 'live', stream: 'cam1' })).ok, 'the encoder\'s retry gets in')
})

t.test('ZLMediaKit\'s hook.timeoutSec caps the bound: on_publish is answered before ZLMediaKit gives up on it', async (t) => {
  const { sim, app } = await startZlmWorld(t, { TAKEOVER_TIMEOUT_MS: '8000' }, { hookTimeoutSec: 3, closeDelayMs: 6000 })
  t.equal(app.zlmServers.nodes[0]!.server.hookBudgetMs, 2700, 'hook.timeoutSec was read from its configuration')
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  const call = onPublishOf(sim, b.id)!
  t.equal(call.outcome, 'accepted', 'answered, not timed out')
  t.ok(call.ms >= 2600 && call.ms < 3000, `at the capped bound, within hook.timeoutSec (${call.ms} ms)`)
  t.equal(call.attempt, 0, 'not retried')
  t.equal(app.publisherStats.takeoverTimeouts, 1)
})

t.test('five publishers race for one ZLMediaKit stream: one ends with it, each answered within the bound, nobody kicked twice', async (t) => {
  const { sim } = await startZlmWorld(t, { TAKEOVER_TIMEOUT_MS: '3000' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const racers = await Promise.all(Array.from({ length: 5 }, async (_, i) => await sim.publish({ app: 'live', stream: 'cam1', ip: `10.0.0.${i + 1}` })))
  const owner = sim.owner('live', 'cam1')
  t.ok(racers.some((r) => r.id === owner), 'one of the racers holds the stream')
  for (const r of racers) {
    const call = onPublishOf(sim, r.id)!
    t.ok(call.status === 200 && call.ms < 3500, `${r.id}: answered with 200 in ${call.ms} ms`)
  }
  t.equal(new Set(sim.kicks).size, sim.kicks.length, `no session was kicked twice (${sim.kicks.join(', ')})`)
  t.ok(sim.kicks.includes(a.id), 'the stalled holder was evicted')
})
