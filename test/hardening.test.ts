import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { doctor } from '../src/cli/doctor.js'
import { Codes } from '../src/errors.js'
import { SrsApi } from '../src/srs/api.js'
import { postHook, startApp, startWorld, waitFor } from './fixtures/app.js'
import { publishOf, serviceOver } from './fixtures/service.js'
import { SrsSimulator } from './fixtures/srs-sim.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * Defects found by running srs-hooks as an operator would and by reading it line by line: each
 * test fails on the code before its fix.
 */

const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

t.test('on port 6000 (a fetch "bad port"), doctor and the Docker health check reach the server', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  let h
  try {
    h = await startApp(t, { SRS_API_URL: sim.apiUrl }, {}, { port: 6000 })
  } catch (err) {
    t.fail(`port 6000 must be free for this test: ${(err as Error).message}`)
    return
  }
  t.equal(new URL(h.url).port, '6000')
  await t.rejects(fetch('http://127.0.0.1:6000/healthz'), 'Node\'s fetch itself refuses the port')
  const out: string[] = []
  const code = await doctor([], { out: (l) => out.push(l), err: () => {}, env: { SRS_API_URL: sim.apiUrl, PORT: '6000' } })
  t.match(out.join('\n'), /OK {4}srs-hooks answers at http:\/\/127\.0\.0\.1:6000\/admin-api\/video\/camera\/callback\/on_publish: a test on_publish got code 0/)
  t.equal(code, 1, 'only the RTMP port check fails (no SRS RTMP listener here)')
  const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8')
  const script = JSON.parse(/HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])/.exec(dockerfile)![1]!) as string[]
  t.same(script.slice(0, 2), ['node', '-e'])
  const ok = await run(process.execPath, ['-e', script[2]!], { env: { ...process.env, PORT: '6000' } }).then(() => 0, (e: { code: number }) => e.code)
  t.equal(ok, 0, 'the health check passes against the running server')
  const down = await run(process.execPath, ['-e', script[2]!], { env: { ...process.env, PORT: '9' } }).then(() => 0, (e: { code: number }) => e.code)
  t.equal(down, 1, 'and fails when nothing listens')
})

t.test('a bodyless request with Content-Type: application/json is accepted (a gateway\'s DELETE)', async (t) => {
  const { sim, url } = await startWorld(t, {}, { releaseDelayMs: 10 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const res = await fetch(`${url}/admin-api/video/camera/streams/live/cam1/publisher`, { method: 'DELETE', headers: { 'content-type': 'application/json' } })
  t.equal(res.status, 200)
  t.match(await res.json(), { code: 0, client_id: a.clientId })
  const events = await fetch(`${url}/admin-api/video/camera/events`, { headers: { 'content-type': 'application/json; charset=utf-8' } })
  t.equal(events.status, 200, 'a GET too')
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x']) {
    const other = await fetch(`${url}/admin-api/video/camera/streams/live/none/publisher`, { method: 'DELETE', headers: { 'content-type': type } })
    t.equal(other.status, 404, `${type}: answered (nothing to evict), not 415`)
  }
  const hook = await fetch(`${url}/admin-api/video/camera/callback/on_play`, { method: 'POST', headers: { 'content-type': 'application/json' } })
  t.same([hook.status, (await hook.json() as { code: number }).code], [400, Codes.INVALID_JSON], 'a hook still needs its body')
})

t.test('a refusal\'s log line carries the reason in its own key and pino\'s msg once', async (t) => {
  const { hookBase, logs } = await startApp(t, { BODY_LIMIT: '1024' })
  await postHook(hookBase, 'on_publish', { action: 'on_publish', client_id: 'c', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: 'x'.repeat(2000) })
  const line = await logs.wait((l) => l.outcome === 'bad-request')
  const raw = logs.raw[logs.lines.indexOf(line)]!
  t.equal(raw.match(/"msg":/g)?.length, 1, 'one msg key')
  t.match(line, { msg: 'hook not processed', reason: /BODY_LIMIT/, code: Codes.BODY_TOO_LARGE })
  const refused = await startWorld(t, { TAKEOVER_POLICY: 'reject' })
  await refused.sim.publish({ app: 'live', stream: 'cam1' })
  await refused.sim.publish({ app: 'live', stream: 'cam1' })
  for (const pick of [(l: Record<string, any>) => l.action === 'on_publish' && l.code === Codes.INCUMBENT_KEPT, (l: Record<string, any>) => l.type === 'refusal']) {
    const l = await refused.logs.wait(pick)
    t.equal(refused.logs.raw[refused.logs.lines.indexOf(l)]!.match(/"msg":/g)?.length, 1, 'one msg key on the hook line and the refusal line')
  }
})

t.test('npm\'s engines are true for what the dependencies need, and nothing asks for a newer Node', async (t) => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
  const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8'))
  t.equal(pkg.engines.node, '>=20.18.1', 'undici 7 needs 20.18.1')
  const tooNew = Object.entries(lock.packages as Record<string, { engines?: { node?: string } }>)
    .filter(([name, p]) => name !== '' && /^>=\s*(2[1-9]|[3-9]\d)/.test(p.engines?.node ?? ''))
    .map(([name, p]) => `${name} ${p.engines!.node!}`)
  t.same(tooNew, [], 'no installed package wants Node 21 or later (npm ci would warn EBADENGINE)')
})

t.test('a kick whose answer is lost is waited on like a kick: the newcomer gets in once SRS released', async (t) => {
  // SRS carries out the DELETE, but its answer never comes (a timeout) or the connection resets.
  for (const lost of ['timeout', 'reset'] as const) {
    let kicked = false
    const env = { code: 0, server: 'vid-s' }
    const srs = await StubServer.start((req, res) => {
      const url = req.url ?? ''
      if (req.method === 'DELETE') {
        kicked = true
        if (lost === 'reset') res.socket?.destroy()
        return // no answer
      }
      if (url === '/api/v1/clients/A') return json(res, kicked ? { code: 2049 } : { ...env, client: { id: 'A', stream: 'vid-1', publish: true } })
      if (url === '/api/v1/clients/B') return json(res, { ...env, client: { id: 'B', stream: 'vid-1', url: '/live/cam1', publish: true } })
      if (url.startsWith('/api/v1/streams/vid-1')) return json(res, { ...env, stream: { id: 'vid-1', name: 'cam1', app: 'live', url: '/live/cam1', publish: { active: !kicked, cid: 'A' } } })
    })
    t.teardown(() => srs.close())
    const api = new SrsApi({ url: srs.url, timeoutMs: 200, retries: 0, pageSize: 10 })
    t.teardown(() => api.close())
    api.status.server = 'vid-s'
    const s = serviceOver(api, { failMode: 'closed', takeoverTimeoutMs: 2000 })
    const r = await s.service.publish(publishOf(s.server))
    t.equal(r.outcome, 'took-over', `${lost}: the release was waited for, FAIL_MODE=closed notwithstanding`)
    t.equal(r.release?.via, 'api')
  }
})

t.test('a kick that cannot have happened (connection refused) follows FAIL_MODE at once', async (t) => {
  const env = { code: 0, server: 'vid-s' }
  const srs: StubServer = await StubServer.start((req, res) => {
    const url = req.url ?? ''
    if (url === '/api/v1/clients/B') {
      // SRS goes away right after verifying the newcomer: the DELETE is refused.
      json(res, { ...env, client: { id: 'B', stream: 'vid-1', url: '/live/cam1', publish: true } })
      void srs.close()
      return
    }
    if (url.startsWith('/api/v1/streams/vid-1')) return json(res, { ...env, stream: { id: 'vid-1', name: 'cam1', app: 'live', url: '/live/cam1', publish: { active: true, cid: 'A' } } })
  })
  const api = new SrsApi({ url: srs.url, timeoutMs: 300, retries: 0, pageSize: 10 })
  t.teardown(() => api.close())
  api.status.server = 'vid-s'
  const s = serviceOver(api, { failMode: 'closed', takeoverTimeoutMs: 3000 })
  const started = Date.now()
  const r = await s.service.publish(publishOf(s.server))
  t.match(r, { outcome: 'refused-api-failed', refusal: { code: Codes.SRS_API_UNAVAILABLE, msg: /evict the incumbent/ } })
  t.ok(Date.now() - started < 2000, 'without waiting for a release that cannot come')
})

t.test('a racer that got the lock with no time left is allowed as a used-up bound, not refused as SRS down', async (t) => {
  const BOUND = 400
  let lookups = 0
  const srs = await StubServer.start((req, res) => {
    // The first lookup takes nearly the whole bound; later ones 150 ms (longer than what is left).
    if (req.url?.startsWith('/api/v1/streams/') === true) {
      setTimeout(() => json(res, { code: 0, server: 'vid-s', stream: { id: 'vid-1', name: 'cam1', app: 'live', url: '/live/cam1', publish: { active: false } } }), lookups++ === 0 ? BOUND - 40 : 150)
    }
  })
  t.teardown(() => srs.close())
  const api = new SrsApi({ url: srs.url, timeoutMs: 1000, retries: 0, pageSize: 10 })
  t.teardown(() => api.close())
  api.status.server = 'vid-s'
  const s = serviceOver(api, { failMode: 'closed', takeoverTimeoutMs: BOUND })
  const [first, racer] = await Promise.all([s.service.publish(publishOf(s.server)), s.service.publish(publishOf(s.server, { clientId: 'C' }))])
  t.equal(first.outcome, 'allowed')
  t.equal(racer.outcome, 'bound-exhausted', 'allowed: the server decides')
  t.equal(racer.allowed, true, 'FAIL_MODE=closed notwithstanding')
  t.same(s.stats.apiFailures, {}, 'no SRS failure was counted')
  t.equal(s.stats.boundExhausted, 1)
  t.match(s.logs.find((l) => l.type === 'bound-exhausted'), { level: 40, client: 'C' })
})

t.test('the stale probe never sleeps past its bound', async (t) => {
  const { sim, logs } = await startWorld(t, { TAKEOVER_POLICY: 'takeover-stale', STALE_PROBE_MS: '200', TAKEOVER_TIMEOUT_MS: '300' })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  const call = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === b.clientId)!
  t.ok(call.ms < 1000, `answered within the 500 ms bound and a margin (${call.ms} ms), though SRS's counters refresh every 3 s`)
  t.same(sim.kicks, [], 'it could not tell, so nobody was evicted')
  t.match(await logs.wait((l) => l.type === 'bound-exhausted'), { stage: /probe/ })
})

t.test('vhosts: keys, signatures and per-app policies name them; lookups never match another vhost\'s stream', async (t) => {
  const SECRET = 'publish-secret-0123456789abcdef'
  const dir = t.testdir({ 'keys.json': JSON.stringify({ 'live/cam1': 'default-key', 'studio.example/live/cam1': 'studio-key', 'studio.example/live/*': 'studio-app' }) })
  const { sim } = await startWorld(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: join(dir, 'keys.json'), TAKEOVER_POLICY_BY_APP: 'studio.example/live=reject' })
  const code = async (vhost: string | undefined, stream: string, key: string) => {
    const r = await sim.publish({ app: 'live', stream, vhost, param: `?key=${key}` })
    return r.ok ? 0 : JSON.parse(sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === r.clientId)!.replyBody).code
  }
  t.equal(await code(undefined, 'cam1', 'default-key'), 0)
  t.equal(await code('studio.example', 'cam1', 'default-key'), Codes.PUBLISH_KEY_WRONG, 'the default vhost\'s key does not open another vhost\'s stream')
  t.equal(await code('studio.example', 'cam1', 'studio-key'), 0)
  t.equal(await code('studio.example', 'cam2', 'studio-app'), 0, 'a vhost-qualified app entry')
  t.equal(await code('other.example', 'cam1', 'default-key'), Codes.PUBLISH_KEY_UNKNOWN_STREAM, 'no entry for that vhost')
  t.equal(await code('studio.example', 'cam1', 'studio-key'), Codes.INCUMBENT_KEPT, 'the vhost\'s own policy (reject)')
  t.ok((await sim.publish({ app: 'live', stream: 'cam1', param: '?key=default-key' })).ok, 'the default vhost keeps TAKEOVER_POLICY (takeover)')

  const signed = await startWorld(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET })
  const exp = Math.floor(Date.now() / 1000) + 60
  t.ok((await signed.sim.publish({ app: 'live', stream: 'cam1', vhost: 'studio.example', param: signedQuery(SECRET, 'studio.example/live/cam1', exp) })).ok, 'signed with the vhost')
  const replayed = await signed.sim.publish({ app: 'live', stream: 'cam1', vhost: 'studio.example', param: signedQuery(SECRET, 'live/cam1', exp) })
  t.equal(replayed.ok, false, 'a default-vhost signature does not open the other vhost')

  // SRS 4 lists no stream urls: a stream of another vhost with the same app and name is not this one.
  const v4 = await startWorld(t, {}, { version: '4' })
  const other = await v4.sim.publish({ app: 'live', stream: 'cam1', vhost: 'other.example', stalled: true })
  t.ok(other.ok)
  const mine = await v4.sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(mine.ok, 'the default vhost\'s cam1 is free')
  t.same(v4.sim.kicks, [], 'the other vhost\'s publisher was not kicked')
})

t.test('a hook from another SRS than SRS_API_URL is detected, logged once, counted, and evicts nothing on the wrong SRS', async (t) => {
  const ours = await SrsSimulator.start({ version: '6', serverId: 'vid-ours' })
  const stray = await SrsSimulator.start({ version: '6', serverId: 'vid-stray' })
  t.teardown(() => ours.close())
  t.teardown(() => stray.close())
  const h = await startApp(t, { SRS_API_URL: ours.apiUrl })
  ours.setHookBase(h.hookBase)
  stray.setHookBase(h.hookBase)
  await h.app.srsServers.discover()
  await ours.publish({ app: 'live', stream: 'cam1', stalled: true })
  await stray.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await stray.publish({ app: 'live', stream: 'cam1' })
  t.equal(b.code, 1028, 'the stray SRS refuses it itself: we did not kick there')
  t.same([ours.kicks, stray.kicks], [[], []], 'nobody evicted on either SRS')
  t.equal(h.logs.lines.filter((l) => l.serverId === 'vid-stray' && l.level === 40).length, 1, 'logged once')
  t.ok(h.app.srsServers.unknownHooks >= 2)
  t.match(await fetch(`${h.url}/metrics`).then(async (r) => await r.text()), /srs_hooks_unknown_server_hooks_total [1-9]/)
})

t.test('a takeover passes against a long gap between publish.active=false and the stream being publishable (SRS 6.0.130-6.0.154)', async (t) => {
  const { sim } = await startWorld(t, { TAKEOVER_TIMEOUT_MS: '5000' }, { version: '6', unpublishGapMs: 1500 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same({ ok: b.ok, code: b.code }, { ok: true, code: 0 }, 'no 1028: the reply waited for the stream to be publishable')
  t.same(sim.kicks, [a.clientId])
  const reply = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === b.clientId)!
  t.ok(reply.ms >= 1400, `answered after the gap (${reply.ms} ms)`)
})

t.test('SRS 6\'s source cleanup: a takeover leaves a source players get media from, even when the release takes longer than the cleanup delay', async (t) => {
  const { sim } = await startWorld(t, { TAKEOVER_TIMEOUT_MS: '8000' }, { version: '6', releaseDelayMs: 3500 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok)
  t.same(sim.kicks, [a.clientId])
  sim.cleanupTick()
  t.notOk(sim.orphaned(b.clientId), 'the newcomer publishes into the live source')
  t.ok(sim.playerGetsMedia('live', 'cam1'), 'players get media')
})

t.test('races: reconciliation against a concurrent hook, a release before its waiter, two on_publish of one stream at once', async (t) => {
  const { sim, app } = await startWorld(t, {}, { apiDelayMs: 150, releaseDelayMs: 0 })
  const old = await sim.publish({ app: 'live', stream: 'cam1' })
  await sim.stop(old.clientId)
  // A listing that starts before the hook and answers after it.
  const running = app.reconciler.run()
  const fresh = await sim.publish({ app: 'live', stream: 'cam2' })
  await running
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam2'))?.clientId, fresh.clientId, 'the hook\'s entry survived the older listing')

  // The holder's on_unpublish arrives as soon as the kick is answered (no release delay).
  const a = await sim.publish({ app: 'live', stream: 'cam3', stalled: true })
  const [b, c] = await Promise.all([sim.publish({ app: 'live', stream: 'cam3' }), sim.publish({ app: 'live', stream: 'cam3' })])
  const active = sim.activePublisher('live', 'cam3')
  t.ok(active === b.clientId || active === c.clientId, 'one of the two holds the stream')
  t.ok(sim.kicks.includes(a.clientId), 'the stale holder was evicted')
  t.equal(new Set(sim.kicks).size, sim.kicks.length, 'nobody kicked twice')
  await waitFor(() => app.publisherStats.takeovers >= 1, 5000, 'a takeover')
})

t.test('a key file\'s vhost entries: "a/b/c/d" is refused, "v/a/s" is a vhost entry', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'keys.json')
  await writeFile(file, JSON.stringify({ 'v.example/live/s': 'k' }))
  const { app } = await startApp(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: file })
  t.equal(app.auth.keyFile!.keys?.get('v.example/live/s'), 'k')
})

t.test('doctor warns when TAKEOVER_AT is forced against what the SRS version says', async (t) => {
  const sim = await SrsSimulator.start({ version: '7-token' })
  t.teardown(() => sim.close())
  const out: string[] = []
  await doctor([], { out: (l) => out.push(l), err: () => {}, env: { SRS_API_URL: sim.apiUrl, TAKEOVER_AT: 'publish', PORT: '9' } })
  t.match(out.join('\n'), /WARN {2}SRS 7\.0\.62 at .*: TAKEOVER_AT=publish but this SRS takes a publish token before on_publish \(>= 7\.0\.62\); takeovers happen inside on_publish\n {6}fix: unset TAKEOVER_AT/)
  const connect: string[] = []
  const sim6 = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim6.close())
  await doctor([], { out: (l) => connect.push(l), err: () => {}, env: { SRS_API_URL: sim6.apiUrl, TAKEOVER_AT: 'connect', PORT: '9' } })
  t.match(connect.join('\n'), /TAKEOVER_AT=connect but this SRS has no publish token \(< 7\.0\.62\); takeovers happen inside on_connect/)
  const agreed: string[] = []
  await doctor([], { out: (l) => agreed.push(l), err: () => {}, env: { SRS_API_URL: sim.apiUrl, TAKEOVER_AT: 'connect', PORT: '9' } })
  t.match(agreed.join('\n'), /OK {4}SRS 7\.0\.62 at .*: takeovers happen inside on_connect.*retry gets in\n/, 'forced the way the version says: no warning')
  const auto: string[] = []
  await doctor([], { out: (l) => auto.push(l), err: () => {}, env: { SRS_API_URL: sim.apiUrl, PORT: '9' } })
  t.match(auto.join('\n'), /OK {4}SRS 7\.0\.62 at .*: takeovers happen inside on_connect, where SRS takes its publish token; first-attempt takeover needs publish credentials/)
})

t.test('SRS 4: a stream whose vhost id the vhost list does not name is filed under the default vhost', async (t) => {
  const srs = await StubServer.start((req, res) => {
    if (req.url?.startsWith('/api/v1/vhosts/') === true) return json(res, { code: 0, server: 's', vhosts: [] })
    json(res, { code: 0, server: 's', streams: [{ id: 'vid-1', name: 'cam1', app: 'live', vhost: 'vid-unknown', publish: { active: true, cid: 'c1' } }] })
  })
  t.teardown(() => srs.close())
  const api = new SrsApi({ url: srs.url, timeoutMs: 500, retries: 0, pageSize: 10 })
  t.teardown(() => api.close())
  const { server } = serviceOver(api)
  t.match(await server.published(), [{ key: '/live/cam1', vhost: '__defaultVhost__', holder: 'c1' }])
  srs.handler = (_req, res) => json(res, { code: 0, vhosts: 'no' })
  await t.rejects(api.vhosts(), { name: 'SrsApiError', kind: 'bad_body' } as never)
})
