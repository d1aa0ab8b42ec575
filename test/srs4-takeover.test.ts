import t, { type Test } from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { SrsMediaServer } from '../src/srs/adapter.js'
import { SrsApi } from '../src/srs/api.js'
import { postHook, startApp, startWorld, waitFor } from './fixtures/app.js'
import { SrsCode, SrsSimulator, type SimOptions, type SrsVersion } from './fixtures/srs-sim.js'
import { StubServer } from './fixtures/stub-server.js'

/**
 * SRS 4 and SRS 5 before 5.0.55 list a publisher only after their busy check and send no
 * stream_id, so the newcomer of a conflict cannot be found in SRS's API. There the hook itself is
 * the evidence: an authenticated caller (HOOK_TOKEN, HOOK_ALLOW) or valid publish credentials for
 * the stream. Without either, the conflict is refused and nobody is evicted. End to end through
 * the SRS simulator.
 */

const TOKEN = 'hook-token-0123456789'
const SECRET = 'publish-secret-0123456789abcdef'
const UNLISTED: SrsVersion[] = ['4', '5-pre55']

const replyTo = (sim: SrsSimulator, clientId: string): { code: number, msg: string | null } =>
  JSON.parse(sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === clientId)!.replyBody)

interface Mode {
  env: (t: Test) => Record<string, string>
  hookQuery?: string
  /** The param of a publisher of live/<stream>. */
  param: (stream: string) => string
}

const MODES: Record<string, Mode> = {
  'a hook token': { env: () => ({ HOOK_TOKEN: TOKEN }), hookQuery: `?token=${TOKEN}`, param: () => '' },
  HOOK_ALLOW: { env: () => ({ HOOK_ALLOW: 'loopback' }), param: () => '' },
  'stream keys': {
    env: (t) => ({ PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: `${t.testdir({ 'keys.json': '{"live/*":"cam-key-1"}' })}/keys.json` }),
    param: () => '?key=cam-key-1'
  },
  'signed URLs': {
    env: () => ({ PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }),
    param: (stream) => signedQuery(SECRET, `live/${stream}`, Math.floor(Date.now() / 1000) + 600)
  }
}

async function world (t: Test, version: SrsVersion, mode: Mode | undefined, simOpts: SimOptions = {}) {
  return await startWorld(t, mode?.env(t) ?? {}, { version, ...simOpts }, { hookQuery: mode?.hookQuery })
}

for (const version of [...UNLISTED, '5-early'] as SrsVersion[]) {
  for (const [name, mode] of Object.entries(MODES)) {
    t.test(`SRS ${version}, with ${name}: a stalled publisher is evicted and the newcomer gets in on its first attempt`, async (t) => {
      const { sim, app, logs } = await world(t, version, mode)
      const a = await sim.publish({ app: 'live', stream: 'cam1', param: mode.param('cam1'), stalled: true })
      t.ok(a.ok)
      const b = await sim.publish({ app: 'live', stream: 'cam1', param: mode.param('cam1'), ip: '10.0.0.9' })
      t.same({ ok: b.ok, code: b.code }, { ok: true, code: 0 }, 'no StreamBusy')
      t.equal(sim.activePublisher('live', 'cam1'), b.clientId)
      t.same(sim.kicks, [a.clientId], 'the stalled publisher was kicked, once')
      t.match(await app.publishers.store.get(sim.serverId, '/live/cam1'), { clientId: b.clientId, ip: '10.0.0.9', takeovers: 1 })
      const line = await logs.wait((l) => l.action === 'on_publish' && l.client === b.clientId)
      t.match(line, { outcome: 'took-over', evicted: a.clientId, code: 0 })
      // The evicted publisher's own on_unpublish, after the takeover, leaves the newcomer in the table.
      await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === a.clientId)
      t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, b.clientId)
    })
  }
}

for (const version of UNLISTED) {
  t.test(`SRS ${version} without evidence: a conflict is refused with 1001, nobody is evicted, and the log says how to turn takeovers on`, async (t) => {
    const { sim, app, logs } = await world(t, version, undefined)
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    const b = await sim.publish({ app: 'live', stream: 'cam1' })
    t.same({ ok: b.ok, code: b.code }, { ok: false, code: SrsCode.ResponseCode }, 'refused by its on_publish')
    t.match(replyTo(sim, b.clientId), { code: Codes.PUBLISHER_NOT_VERIFIED, msg: /nobody was evicted .*HOOK_TOKEN or HOOK_ALLOW.*PUBLISH_AUTH=keys or signed/ })
    t.same(sim.kicks, [])
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
    const line = await logs.wait((l) => l.action === 'on_publish' && l.client === b.clientId)
    t.match(line, { outcome: 'refused-unverified', code: Codes.PUBLISHER_NOT_VERIFIED, reason: /HOOK_TOKEN/ })
    t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId, 'the holder stays in the table')
  })

  t.test(`SRS ${version}: the on_unpublish of a publisher SRS refused with 1028 names that client and leaves the holder in the table`, async (t) => {
    const { sim, app, logs } = await world(t, version, MODES['a hook token'])
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    // SRS's API fails: FAIL_MODE=open allows the newcomer without evicting, and SRS's busy check refuses it.
    sim.setFault('error500')
    const b = await sim.publish({ app: 'live', stream: 'cam1' })
    t.same({ ok: b.ok, code: b.code }, { ok: false, code: SrsCode.StreamBusy })
    t.equal(replyTo(sim, b.clientId).code, 0)
    await sim.waitForHook((c) => c.hook === 'on_unpublish' && c.body.client_id === b.clientId)
    const stray = await logs.wait((l) => l.action === 'on_unpublish' && l.client === b.clientId)
    t.equal(stray.outcome, 'not-current-publisher')
    t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId, 'the holder stays in the table')
    t.same(sim.kicks, [])
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  })
}

t.test('SRS 5.0.55+ without evidence still takes over: SRS lists the newcomer, and the refusal of a forged hook has no hint', async (t) => {
  const { sim, hookBase } = await world(t, '5-early', undefined)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const forged = await postHook(hookBase, 'on_publish', {
    server_id: sim.serverId, action: 'on_publish', client_id: 'f0rged01', ip: '6.6.6.6', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '', stream_url: '/live/cam1'
  })
  t.equal(forged.reply.code, Codes.PUBLISHER_NOT_VERIFIED)
  t.notMatch(forged.reply.msg, /HOOK_TOKEN/, 'no advice where the check works')
  t.same(sim.kicks, [])
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok)
  t.same(sim.kicks, [a.clientId])
})

t.test('SRS 4: forged hooks evict nobody', async (t) => {
  const forge = (sim: SrsSimulator, extra: Record<string, unknown> = {}) => ({
    server_id: sim.serverId, action: 'on_publish', client_id: 'f0rged01', ip: '6.6.6.6', vhost: '__defaultVhost__', app: 'live', tcUrl: 'rtmp://127.0.0.1:1935/live', stream: 'cam1', param: '', ...extra
  })

  t.test('without the hook token, or with a wrong one: 403', async (t) => {
    const { sim, hookBase } = await world(t, '4', MODES['a hook token'])
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    const r = await postHook(hookBase, 'on_publish', forge(sim))
    t.same([r.status, r.reply.code], [403, Codes.HOOK_TOKEN_INVALID])
    const wrong = await fetch(`${hookBase}/on_publish?token=not-the-token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(forge(sim)) })
    t.equal(wrong.status, 403)
    await wrong.body?.cancel()
    t.same(sim.kicks, [])
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  })

  t.test('from an address outside HOOK_ALLOW: 403', async (t) => {
    const { sim, hookBase } = await startWorld(t, { HOOK_ALLOW: 'loopback', TRUST_PROXY: 'loopback' }, { version: '4' })
    const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    const r = await fetch(`${hookBase}/on_publish`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' }, body: JSON.stringify(forge(sim)) })
    t.equal(r.status, 403)
    t.equal(((await r.json()) as { code: number }).code, Codes.HOOK_CALLER_FORBIDDEN)
    t.same(sim.kicks, [])
    const b = await sim.publish({ app: 'live', stream: 'cam1' })
    t.ok(b.ok, 'SRS itself, in HOOK_ALLOW, still takes over')
    t.same(sim.kicks, [a.clientId])
  })

  t.test('with publish credentials on and a wrong, missing or foreign credential: refused for it', async (t) => {
    const { sim, hookBase } = await world(t, '4', MODES['signed URLs'])
    const a = await sim.publish({ app: 'live', stream: 'cam1', param: MODES['signed URLs']!.param('cam1'), stalled: true })
    const exp = Math.floor(Date.now() / 1000) + 600
    for (const param of ['', signedQuery('another-secret-0123456789', 'live/cam1', exp), signedQuery(SECRET, 'live/cam2', exp)]) {
      const r = await postHook(hookBase, 'on_publish', forge(sim, { param }))
      t.equal(r.status, 200)
      t.not(r.reply.code, 0, `refused (${r.reply.code})`)
    }
    t.same(sim.kicks, [])
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  })

  t.test('without any evidence: refused as unverified', async (t) => {
    const { sim, hookBase } = await world(t, '4', undefined)
    await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    const r = await postHook(hookBase, 'on_publish', forge(sim))
    t.equal(r.reply.code, Codes.PUBLISHER_NOT_VERIFIED)
    t.same(sim.kicks, [])
  })
})

t.test('SRS 4 without release hooks: SRS\'s API shows the release', async (t) => {
  const { sim, app, logs } = await world(t, '4', MODES['a hook token'], { hooks: ['on_connect', 'on_publish'] })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok)
  t.same(sim.kicks, [a.clientId])
  t.equal(await app.publishers.store.get(sim.serverId, '/live/cam1').then((e) => e?.clientId), b.clientId)
  const line = await logs.wait((l) => l.msg?.startsWith('takeover:') === true)
  t.equal(line.via, 'api')
})

t.test('the release poll: publish.active=false is a release on SRS 4 and 5, not on 6 and later', async (t) => {
  // SRS 4 holds the kicked client in its listing while its on_unpublish is pending.
  let hold: (() => void) | undefined
  const hooks = await StubServer.start((req, res) => {
    const answer = (): void => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"code":0}') }
    if (req.url?.includes('on_unpublish') === true) hold = answer
    else answer()
  })
  t.teardown(() => hooks.close())
  const sim = await SrsSimulator.start({ version: '4', hookBase: hooks.url })
  t.teardown(() => sim.close())
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const api = new SrsApi({ url: sim.apiUrl, timeoutMs: 1000, retries: 0, pageSize: 10 })
  t.teardown(() => api.close())
  const server = new SrsMediaServer(api)
  const ref = { key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }
  const deadline = Date.now() + 5000
  const live = await server.live(ref, deadline)
  t.match(live, { active: true, holder: a.clientId })
  t.equal(await server.released(a.clientId, ref, live, 'publish', deadline), false, 'still publishing')
  await server.kick(a.clientId, deadline)
  await waitFor(() => hold !== undefined, 5000, 'the kicked publisher\'s on_unpublish')
  t.equal(await server.released(a.clientId, ref, live, 'publish', deadline), false, 'version unknown: not taken for a release')
  server.version = { major: 6, minor: 0, revision: 184 }
  t.equal(await server.released(a.clientId, ref, live, 'publish', deadline), false, 'SRS 6: not a release')
  server.version = { major: 4, minor: 0, revision: 271 }
  t.equal(await server.released(a.clientId, ref, live, 'publish', deadline), true, 'SRS 4: a release')
  t.equal(server.listsNewcomer, false)
  hold!()
})

t.test('an unlisted newcomer makes the SRS adapter read the version it did not know yet', async (t) => {
  const sim = await SrsSimulator.start({ version: '4' })
  t.teardown(() => sim.close())
  const api = new SrsApi({ url: sim.apiUrl, timeoutMs: 1000, retries: 0, pageSize: 10 })
  t.teardown(() => api.close())
  const server = new SrsMediaServer(api)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const ref = { key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }
  const live = await server.live(ref, Date.now() + 1000)
  t.equal(server.listsNewcomer, undefined)
  t.equal(await server.verify({ id: 'n0tlisted' }, ref, live, Date.now() + 1000), false)
  t.equal(server.listsNewcomer, false, 'an unlisted newcomer made it read the version')
  t.equal(await server.verify({ id: a.clientId }, ref, live, Date.now() + 1000), true)
})

t.test('srs-hooks restarted in the middle of an SRS 4 stream: reconciled, then taken over with the hook token', async (t) => {
  const sim = await SrsSimulator.start({ version: '4' })
  t.teardown(() => sim.close())
  const env = { SRS_API_URL: sim.apiUrl, HOOK_TOKEN: TOKEN, RECONCILE_INTERVAL_MS: '60000' }
  const first = await startApp(t, env)
  sim.setHookBase(first.hookBase, `?token=${TOKEN}`)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.equal((await first.app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId)
  await first.app.close()

  const second = await startApp(t, env)
  sim.setHookBase(second.hookBase)
  await waitFor(() => second.app.reconciler.runs >= 1, 5000, 'the first reconciliation')
  t.match(await second.app.publishers.store.get(sim.serverId, '/live/cam1'), { clientId: a.clientId, state: 'confirmed', app: 'live', stream: 'cam1' })
  t.ok(second.logs.find((l) => l.correction === 'added' && l.stream === '/live/cam1'))
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok, 'the reconnecting camera takes its stream over')
  t.same(sim.kicks, [a.clientId])
  await sim.waitForHook((c) => c.hook === 'on_close' && c.body.client_id === a.clientId)
  t.match(await second.app.publishers.store.get(sim.serverId, '/live/cam1'), { clientId: b.clientId, takeovers: 1 })
})

t.test('SRS 4: an authenticated hook carrying another stream\'s stream_id is judged on its own stream; the other stream\'s publisher is kept', async (t) => {
  const { sim, hookBase } = await world(t, '4', MODES['a hook token'])
  const other = await sim.publish({ app: 'live', stream: 'cam2' })
  const stale = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const listing = await (await fetch(`${sim.apiUrl}/api/v1/streams/`)).json() as { streams: Array<{ id: string, name: string }> }
  const cam2 = listing.streams.find((x) => x.name === 'cam2')!.id
  const body = {
    action: 'on_publish',
    client_id: 'b4newcmr',
    ip: '10.0.0.9',
    vhost: '__defaultVhost__',
    app: 'live',
    stream: 'cam1',
    param: '',
    server_id: sim.serverId,
    stream_id: cam2
  }
  const r = await postHook(hookBase, `on_publish?token=${TOKEN}`, body)
  t.same(r.reply, { code: 0, msg: null })
  t.same(sim.kicks, [stale.clientId], 'only live/cam1\'s stalled publisher')
  t.equal(sim.activePublisher('live', 'cam2'), other.clientId)
})

t.test('SRS 4: an authenticated hook carrying its own stream\'s stream_id finds that stream by app, name and vhost', async (t) => {
  const { sim, hookBase } = await world(t, '4', MODES['a hook token'])
  const stale = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const listing = await (await fetch(`${sim.apiUrl}/api/v1/streams/`)).json() as { streams: Array<{ id: string, name: string }> }
  const cam1 = listing.streams.find((x) => x.name === 'cam1')!.id
  const body = {
    action: 'on_publish',
    client_id: 'b4newcm2',
    ip: '10.0.0.9',
    vhost: '__defaultVhost__',
    app: 'live',
    stream: 'cam1',
    param: '',
    server_id: sim.serverId,
    stream_id: cam1
  }
  const r = await postHook(hookBase, `on_publish?token=${TOKEN}`, body)
  t.same(r.reply, { code: 0, msg: null })
  t.same(sim.kicks, [stale.clientId], 'the stalled publisher of the stream the id names')
})

t.test('the release poll: a stream SRS no longer knows is released, whatever the version', async (t) => {
  const env = { code: 0, server: 'vid-s' }
  const srs = await StubServer.start((req, res) => {
    const body = req.url === '/api/v1/clients/A'
      ? { ...env, client: { id: 'A', stream: 'vid-1', type: 'fmle-publish', publish: true } }
      : { code: 2048 }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  })
  t.teardown(() => srs.close())
  const api = new SrsApi({ url: srs.url, timeoutMs: 1000, retries: 0, pageSize: 10 })
  t.teardown(() => api.close())
  const server = new SrsMediaServer(api)
  const ref = { key: '/live/cam1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }
  t.equal(await server.released('A', ref, { id: 'vid-1', active: true, holder: 'A' }, 'publish', Date.now() + 1000), true)
})
