import fc from 'fast-check'
import t, { type Test } from 'tap'
import { startWorld, postHook, waitFor } from './fixtures/app.js'
import type { HookCall, SimOptions, SrsSimulator } from './fixtures/srs-sim.js'

/**
 * Evictions on evidence only (docs/takeover-evidence.md): on a token SRS (>= 7.0.62) a client
 * that connects and closes without playing or publishing may have been a publisher refused by the
 * token, or a player, or a stranger's two POSTs. Without valid publish credentials its close may
 * evict only a holder that was publishing before it connected and that SRS shows stalled. Over
 * real HTTP against the simulator.
 */

// The property below runs 40 worlds of its own, each probing a holder over SRS's stats: more than
// the default bound of a file on a loaded machine.
t.setTimeout(120_000)

async function world (t: Test, env: Record<string, string> = {}, simOpts: SimOptions = {}) {
  const w = await startWorld(t, env, { version: '7-token', statsIntervalMs: 100, ...simOpts })
  await w.app.srsServers.discover()
  return w
}

const call = (sim: SrsSimulator, hook: string, clientId: string): HookCall | undefined =>
  sim.hookCalls.find((c) => c.hook === hook && c.body.client_id === clientId)

let forged = 0
/** A hook body as a stranger forges it: SRS's server id (hook bodies are no secret), its own client id. */
function forge (sim: SrsSimulator, action: string, clientId = `forged${forged++}`, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base = { server_id: sim.serverId, service_id: 'x6n92s02', action, client_id: clientId, ip: '203.0.113.9', vhost: '__defaultVhost__', app: 'live' }
  switch (action) {
    case 'on_connect': return { ...base, stream: 'cam1', param: '', tcUrl: 'rtmp://127.0.0.1:1935/live', pageUrl: '', ...extra }
    case 'on_close': return { ...base, send_bytes: 0, recv_bytes: 0, ...extra }
    case 'on_play': return { ...base, stream: 'cam1', tcUrl: 'rtmp://127.0.0.1:1935/live', param: '', pageUrl: '', stream_url: '/live/cam1', ...extra }
    default: return { ...base, tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '', stream_url: '/live/cam1', ...extra }
  }
}

t.test('two forged POSTs (on_connect, on_close) evict no sending holder, with the default configuration', async (t) => {
  const { sim, app, hookBase, logs } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const id = 'strngr01'
  t.same((await postHook(hookBase, 'on_connect', forge(sim, 'on_connect', id))).reply, { code: 0, msg: null })
  t.same((await postHook(hookBase, 'on_close', forge(sim, 'on_close', id))).reply, { code: 0, msg: null })
  await app.publishers.idle()
  t.same(sim.kicks, [], 'nobody evicted')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  t.match(logs.find((l) => l.path === 'deferred' && l.type === 'refusal'), { reason: 'incumbent-sending', client: id })
})

t.test('a second encoder without credentials, refused by SRS\'s token, leaves a sending holder on air under every policy', async (t) => {
  for (const policy of ['takeover', 'takeover-stale', 'reject']) {
    const { sim, app } = await world(t, { TAKEOVER_POLICY: policy })
    const a = await sim.publish({ app: 'live', stream: 'cam1' })
    const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
    t.equal(b.code, 1028, `${policy}: refused by the token`)
    await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === b.clientId)
    await app.publishers.idle()
    t.same(sim.kicks, [], `${policy}: the sending holder was kept`)
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  }
})

t.test('a holder that began after the client connected is not evicted at its close, even stalled', async (t) => {
  const { sim, app, hookBase, logs } = await world(t)
  const id = 'strngr02'
  await postHook(hookBase, 'on_connect', forge(sim, 'on_connect', id))
  // SRS reports a client's age to 10 ms: the holder connects clearly later.
  const connected = Date.now()
  await waitFor(() => Date.now() > connected + 30, 1000, 'the clock past the connect')
  // The camera's own retry got the stream after that connect, and is stalled (a keyframe wait, a slow start).
  const b = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(b.ok)
  await postHook(hookBase, 'on_close', forge(sim, 'on_close', id))
  await app.publishers.idle()
  t.same(sim.kicks, [], 'the newer holder kept')
  t.match(logs.find((l) => l.path === 'deferred' && l.type === 'refusal'), { reason: 'incumbent-newer' })
})

t.test('a stalled holder that was publishing before the refused client connected is evicted at its close; its retry gets in', async (t) => {
  const { sim, app, logs } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(first.code, 1028)
  await waitFor(() => sim.kicks.length === 1, 5000, 'the deferred eviction')
  t.same(sim.kicks, [a.clientId])
  await app.publishers.idle()
  t.match(logs.find((l) => l.path === 'deferred' && l.type === 'takeover'), { incumbent: a.clientId, newcomer: first.clientId })
  const retry = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(retry.ok)
})

t.test('property: any interleaving of a stranger\'s forged hooks (no token, no key) never kicks a sending holder', async (t) => {
  // The default configuration: no HOOK_TOKEN, no HOOK_ALLOW, PUBLISH_AUTH=off, TAKEOVER_POLICY=takeover.
  const { sim, app, hookBase } = await world(t)
  const hook = fc.record({
    // A connect and a close are the hooks an eviction could follow: drawn more often than the others.
    action: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('on_connect', 'on_close') },
      { weight: 2, arbitrary: fc.constantFrom('on_play', 'on_stop', 'on_publish', 'on_unpublish') }
    ),
    // The stranger's own ids, or the holder's (on_close and on_unpublish of the holder are forgeable too).
    client: fc.constantFrom('strngrA1', 'strngrB2', 'holder'),
    param: fc.constantFrom('', '?key=guess', '?key='),
    streamId: fc.constantFrom(undefined, 'holder', 'vid-forged1')
  })
  // Each run against a holder of its own on a stream of its own, so a run (and each run fast-check
  // shrinks a failure to) starts from the same world: a sending holder, and strangers new to it.
  let run = 0
  await fc.assert(fc.asyncProperty(fc.array(hook, { minLength: 2, maxLength: 8 }), async (hooks) => {
    const n = run++
    const stream = `prop${n}`
    const a = await sim.publish({ app: 'live', stream })
    if (!a.ok) return false
    const streamId = call(sim, 'on_publish', a.clientId)!.body.stream_id as string
    const kicks = sim.kicks.length
    for (const h of hooks) {
      // A stranger's ids of its own in each run: no record left by another run is closed in this one.
      const client = h.client === 'holder' ? a.clientId : `${h.client}r${n}`
      const extra: Record<string, unknown> = h.action === 'on_close' ? {} : { param: h.param, stream, stream_url: `/live/${stream}` }
      if (h.streamId !== undefined && h.action !== 'on_connect' && h.action !== 'on_close') extra.stream_id = h.streamId === 'holder' ? streamId : h.streamId
      const r = await postHook(hookBase, h.action, forge(sim, h.action, client, extra))
      if (r.status !== 200) return false
    }
    await app.publishers.idle()
    return sim.kicks.length === kicks && sim.activePublisher('live', stream) === a.clientId
  }), { numRuns: 40 })
  t.same(sim.kicks, [])
})

t.test('one stream\'s key evicts no other stream\'s publisher: a stream_id from a hook body is checked against SRS', async (t) => {
  const keys = t.testdir({ 'k.json': JSON.stringify({ 'live/cam1': 'k1-secret-key', 'live/cam2': 'k2-secret-key' }) }) + '/k.json'
  const { sim, app, hookBase } = await world(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: keys })
  const b = await sim.publish({ app: 'live', stream: 'cam2', param: '?key=k2-secret-key', stalled: true })
  const cam2Id = call(sim, 'on_publish', b.clientId)!.body.stream_id as string
  // The attacker knows cam1's key only: an on_publish for cam1 carrying cam2's stream id.
  const r = await postHook(hookBase, 'on_publish', forge(sim, 'on_publish', 'atckr001', { param: '?key=k1-secret-key', stream_id: cam2Id }))
  t.same(r.reply, { code: 0, msg: null })
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.streamId, undefined, 'the table keeps no stream id SRS did not name')
  // Then a credentialed connect of cam1: nothing of cam1 is live, so nobody is evicted.
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key' })
  t.ok(a.ok)
  t.same(sim.kicks, [], 'cam2\'s publisher kept')
  t.equal(sim.activePublisher('live', 'cam2'), b.clientId)
  // The same with the table poisoned directly (an entry from before this check): SRS's stream is looked at by url.
  const entry = await app.publishers.store.get(sim.serverId, '/live/cam1')
  await app.publishers.store.set({ ...entry!, clientId: 'atckr001', streamId: cam2Id })
  await sim.stop(a.clientId)
  const again = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key' })
  t.ok(again.ok)
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam2'), b.clientId)
})

t.test('on an SRS without the token, the table holds the stream id SRS names, not the hook\'s', async (t) => {
  const { sim, app, hookBase } = await startWorld(t, {}, { version: '6' })
  const b = await sim.publish({ app: 'live', stream: 'cam2' })
  const cam2Id = call(sim, 'on_publish', b.clientId)!.body.stream_id as string
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const cam1Id = call(sim, 'on_publish', a.clientId)!.body.stream_id as string
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.streamId, cam1Id)
  // A forged on_publish for a stream nobody publishes, naming cam2's id: verified against SRS, refused, nothing stored.
  const r = await postHook(hookBase, 'on_publish', forge(sim, 'on_publish', a.clientId, { stream: 'cam3', stream_url: '/live/cam3', stream_id: cam2Id }))
  t.equal(r.reply.code, 0)
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam3'))?.streamId, undefined, 'cam2\'s id not filed under cam3')
  t.same(sim.kicks, [])
})

t.test('at on_connect, wrong keys count against the IP, and a blocked IP takes nothing over even with the right key', async (t) => {
  const keys = t.testdir({ 'k.json': JSON.stringify({ 'live/cam1': 'k1-secret-key' }) }) + '/k.json'
  const { sim, app } = await world(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: keys, AUTH_FAIL_MAX: '3' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key', stalled: true })
  const player = await sim.play({ app: 'live', stream: 'cam1', ip: '10.0.0.66' })
  t.ok(player.ok)
  t.equal(await app.auth.limiter.failures('10.0.0.66'), 0, 'a player carrying no key is not counted')
  for (let i = 0; i < 3; i++) {
    const r = await sim.publish({ app: 'live', stream: 'cam1', param: `?key=guess${i}`, ip: '10.0.0.66' })
    t.equal(r.code, 1028, 'refused by SRS\'s token before any on_publish')
  }
  t.equal(await app.auth.limiter.failures('10.0.0.66'), 3, 'each wrong key counted at on_connect')
  const right = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key', ip: '10.0.0.66' })
  t.equal(right.code, 1028, 'the blocked IP takes nothing over')
  await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === right.clientId)
  await app.publishers.idle()
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  // Another IP with the right key still takes the stalled holder over at once.
  const other = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key', ip: '10.0.0.7' })
  t.ok(other.ok)
  t.same(sim.kicks, [a.clientId])
  t.equal(await app.auth.limiter.failures('10.0.0.7'), 0, 'a right key is taken back')
})

t.test('with the stream\'s key, a client whose connect found the stream free and that SRS then refused takes it over at its close, by the policy', async (t) => {
  const keys = t.testdir({ 'k.json': JSON.stringify({ 'live/cam1': 'k1-secret-key' }) }) + '/k.json'
  const { sim, app, hookBase, logs } = await world(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: keys })
  const id = 'keyed001'
  t.same((await postHook(hookBase, 'on_connect', forge(sim, 'on_connect', id, { param: '?key=k1-secret-key' }))).reply, { code: 0, msg: null })
  // Another encoder with the key got the stream first, and sends: no evidence is asked of a client with the key.
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key' })
  t.ok(a.ok)
  await postHook(hookBase, 'on_close', forge(sim, 'on_close', id))
  await waitFor(() => sim.kicks.length === 1, 5000, 'the deferred eviction')
  t.same(sim.kicks, [a.clientId])
  await app.publishers.idle()
  t.match(logs.find((l) => l.path === 'deferred' && l.type === 'takeover'), { incumbent: a.clientId, newcomer: id })
})

t.test('signed: a player\'s play signature at on_connect is no failed publish', async (t) => {
  const { signedQuery } = await import('../src/auth/signature.js')
  const { sim, app } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: 'publish-secret-0123456789abcdef', PLAY_AUTH: 'signed', PLAY_SECRET: 'play-secret-0123456789abcdef' })
  const exp = Math.floor(Date.now() / 1000) + 600
  await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery('publish-secret-0123456789abcdef', 'live/cam1', exp) })
  const p = await sim.play({ app: 'live', stream: 'cam1', ip: '10.0.0.67', param: signedQuery('play-secret-0123456789abcdef', 'live/cam1', exp) })
  t.ok(p.ok)
  t.equal(await app.auth.limiter.failures('10.0.0.67'), 0)
  const wrong = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.67', param: signedQuery('not-the-secret-0123456789abcdef', 'live/cam1', exp) })
  t.equal(wrong.code, 1028)
  t.equal(await app.auth.limiter.failures('10.0.0.67'), 1, 'a wrong publish signature is counted')
})

t.test('on a free stream, a wrong key is counted once (at on_connect), and a blocked IP publishes nothing', async (t) => {
  const keys = t.testdir({ 'k.json': JSON.stringify({ 'live/cam1': 'k1-secret-key' }) }) + '/k.json'
  const { sim, app } = await world(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: keys, AUTH_FAIL_MAX: '3' })
  for (let i = 0; i < 3; i++) {
    const r = await sim.publish({ app: 'live', stream: 'cam1', param: `?key=guess${i}`, ip: '10.0.0.68' })
    t.match(JSON.parse(call(sim, 'on_publish', r.clientId)!.replyBody), { code: 1006 }, `attempt ${i + 1} checked at on_publish: wrong key`)
    t.equal(await app.auth.limiter.failures('10.0.0.68'), i + 1, 'counted once')
  }
  const right = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key', ip: '10.0.0.68' })
  t.equal(right.ok, false, 'blocked')
  t.match(JSON.parse(call(sim, 'on_publish', right.clientId)!.replyBody), { code: 1012 })
  const ok = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret-key', ip: '10.0.0.69' })
  t.ok(ok.ok, 'another IP publishes')
})
