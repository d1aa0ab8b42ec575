import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Codes } from '../src/errors.js'
import { signedQuery } from '../src/auth/signature.js'
import { postHook, startApp, waitFor, startWorld } from './fixtures/app.js'
import { SrsSimulator, type SimOptions } from './fixtures/srs-sim.js'

/**
 * Who may call the hooks and who may publish: forged callbacks, stream keys and signed URLs,
 * end to end through the SRS simulator.
 */

const TOKEN = 'hook-token-0123456789'
const SECRET = 'publish-secret-0123456789abcdef'

const world = async (t: Test, env: Record<string, string> = {}, simOpts: SimOptions = {}, hookQuery = `?token=${TOKEN}`) =>
  await startWorld(t, { HOOK_TOKEN: TOKEN, ...env }, simOpts, { hookQuery })

async function post (url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: res.status, reply: await res.json() as { code: number, msg: string | null } }
}

const replyOf = (sim: SrsSimulator, hook: string, clientId: string) =>
  JSON.parse(sim.hookCalls.find((c) => c.hook === hook && c.body.client_id === clientId)!.replyBody) as { code: number, msg: string | null }

const body = (action: string, extra: Record<string, unknown> = {}) =>
  ({ action, client_id: 'f0rged01', ip: '6.6.6.6', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', ...extra })

t.test('forged callbacks without the hook token, or with a wrong one, are refused with 403 and change nothing', async (t) => {
  const { sim, app, hookBase, logs } = await world(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(a.ok, 'SRS, which knows the token, gets through')
  const streamId = sim.hookCalls.find((c) => c.hook === 'on_publish')!.body.stream_id
  const apiBefore = sim.apiRequests
  for (const [what, query] of [['no token', ''], ['a wrong token', '?token=nope-nope-nope'], ['a token prefix', `?token=${TOKEN.slice(0, -1)}`], ['a repeated token', `?token=${TOKEN}&token=${TOKEN}`]]) {
    const pub = await post(`${hookBase}/on_publish${query}`, body('on_publish', { stream_id: streamId }))
    t.equal(pub.status, 403, `${what}: on_publish 403`)
    t.equal(pub.reply.code, Codes.HOOK_TOKEN_INVALID)
    t.match(pub.reply.msg, /token/)
    const unpub = await post(`${hookBase}/on_unpublish${query}`, body('on_unpublish', { client_id: a.clientId }))
    t.same([unpub.status, unpub.reply.code], [403, Codes.HOOK_TOKEN_INVALID], `${what}: on_unpublish 403`)
    const close = await post(`${hookBase}/on_close${query}`, { action: 'on_close', client_id: a.clientId, vhost: '__defaultVhost__', app: 'live' })
    t.equal(close.status, 403, `${what}: on_close 403`)
  }
  t.same(sim.kicks, [], 'nobody was kicked')
  t.equal(sim.apiRequests, apiBefore, 'SRS was not even asked')
  t.equal((await app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, a.clientId, 'the table still has the publisher')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  const line = await logs.wait((l) => l.outcome === 'forbidden')
  t.match(line, { level: 40, status: 403, code: Codes.HOOK_TOKEN_INVALID })
  t.notOk(logs.lines.some((l) => JSON.stringify(l).includes(TOKEN)), 'the token never reaches the log')
})

t.test('a caller outside HOOK_ALLOW is refused, also when it sends X-Forwarded-For without being a trusted proxy', async (t) => {
  const { sim, hookBase } = await world(t, { HOOK_ALLOW: '10.0.0.0/8, fd00::/8' })
  const direct = await post(`${hookBase}/on_play?token=${TOKEN}`, body('on_play'))
  t.same([direct.status, direct.reply.code], [403, Codes.HOOK_CALLER_FORBIDDEN])
  t.match(direct.reply.msg, /127\.0\.0\.1 is not in HOOK_ALLOW/)
  const spoofed = await post(`${hookBase}/on_publish?token=${TOKEN}`, body('on_publish'), { 'x-forwarded-for': '10.1.2.3' })
  t.same([spoofed.status, spoofed.reply.code], [403, Codes.HOOK_CALLER_FORBIDDEN], 'X-Forwarded-For from an untrusted peer is ignored')
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same([a.ok, a.code], [false, 4005], 'SRS on loopback is refused too: its on_connect got a 403')
  t.same(sim.kicks, [])
})

t.test('a trusted proxy\'s X-Forwarded-For decides who the caller is', async (t) => {
  const { hookBase } = await world(t, { HOOK_ALLOW: '10.0.0.0/8', TRUST_PROXY: '127.0.0.1' })
  const ok = await post(`${hookBase}/on_play?token=${TOKEN}`, body('on_play'), { 'x-forwarded-for': '10.1.2.3' })
  t.same([ok.status, ok.reply], [200, { code: 0, msg: null }])
  const outside = await post(`${hookBase}/on_play?token=${TOKEN}`, body('on_play'), { 'x-forwarded-for': '8.8.8.8' })
  t.same([outside.status, outside.reply.code], [403, Codes.HOOK_CALLER_FORBIDDEN])
  t.match(outside.reply.msg, /8\.8\.8\.8/)
})

t.test('HOOK_ALLOW=loopback lets a local SRS call', async (t) => {
  const h = await startApp(t, { HOOK_ALLOW: 'loopback' })
  t.equal((await postHook(h.hookBase, 'on_play', body('on_play'))).status, 200)
})

async function keysWorld (t: Test, keys: unknown, env: Record<string, string> = {}) {
  const dir = t.testdir({ 'keys.json': typeof keys === 'string' ? keys : JSON.stringify(keys) })
  const file = join(dir, 'keys.json')
  const w = await world(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: file, STREAM_KEYS_POLL_MS: '25', ...env })
  return { ...w, file, dir }
}

t.test('keys: the right key publishes, a wrong or missing key is refused and evicts nobody', async (t) => {
  const { sim, logs } = await keysWorld(t, { 'live/cam1': 'k1-secret', 'live/*': 'app-wide', 'studio/x': 'sx' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret', stalled: true })
  t.ok(a.ok, 'the stream\'s own key')
  t.ok((await sim.publish({ app: 'live', stream: 'other', param: '?key=app-wide' })).ok, 'the app\'s key covers its other streams')
  const cases: Array<[string, string, string, number]> = [
    ['wrong key', 'cam1', '?key=k1-secreT', Codes.PUBLISH_KEY_WRONG],
    ['the app key for a stream with its own key', 'cam1', '?key=app-wide', Codes.PUBLISH_KEY_WRONG],
    ['no key', 'cam1', '', Codes.PUBLISH_KEY_MISSING],
    ['another parameter only', 'cam1', '?vhost=x', Codes.PUBLISH_KEY_MISSING]
  ]
  for (const [what, stream, param, code] of cases) {
    const r = await sim.publish({ app: 'live', stream, param })
    t.equal(r.ok, false, what)
    t.equal(replyOf(sim, 'on_publish', r.clientId).code, code, `${what}: code ${code}`)
  }
  const unknown = await sim.publish({ app: 'other', stream: 'cam9', param: '?key=k1-secret' })
  t.match(replyOf(sim, 'on_publish', unknown.clientId), { code: Codes.PUBLISH_KEY_UNKNOWN_STREAM, msg: /no entry for "other\/cam9" or "other\/\*"/ })
  t.same(sim.kicks, [], 'nobody was kicked by a refused newcomer')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1-secret' })
  t.ok(b.ok, 'with the right key, the stalled incumbent is taken over')
  t.same(sim.kicks, [a.clientId])
  t.notOk(logs.lines.some((l) => /k1-secret|app-wide|k1-secreT/.test(JSON.stringify(l))), 'no key reaches the log')
})

t.test('keys: a camera that enters "cam1?key=..." as its stream key publishes (SRS splits it into stream and param)', async (t) => {
  // SRS's srs_discovery_tc_url joins tcUrl and the publish name and parses them as one URL, so the
  // hook says stream "cam1", param "?key=k1" for the name "cam1?key=k1".
  const { sim } = await keysWorld(t, { 'live/cam1': 'k1' })
  const r = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1' })
  t.ok(r.ok)
  t.equal(sim.hookCalls.find((c) => c.hook === 'on_publish')!.body.stream, 'cam1')
})

t.test('keys: the key file edited at run time takes effect; a broken one keeps the last good keys', async (t) => {
  const { sim, file, logs, app } = await keysWorld(t, { 'live/cam1': 'old' })
  t.ok((await sim.publish({ app: 'live', stream: 'cam1', param: '?key=old' })).ok)
  const loads = app.auth.keyFile!.loads
  // Replaced by rename, as editors and ConfigMaps do (a new inode).
  await writeFile(file + '.tmp', JSON.stringify({ 'live/cam1': 'new', 'live/cam2': 'two' }))
  await rename(file + '.tmp', file)
  await waitFor(() => app.auth.keyFile!.loads > loads, 5000, 'the reload')
  const stale = await sim.publish({ app: 'live', stream: 'cam2', param: '?key=old' })
  t.equal(replyOf(sim, 'on_publish', stale.clientId).code, Codes.PUBLISH_KEY_WRONG, 'the old key no longer works')
  t.ok((await sim.publish({ app: 'live', stream: 'cam2', param: '?key=two' })).ok, 'the new entry works')

  await writeFile(file, '{"live/cam3": "three",')
  const broken = await logs.wait((l) => l.msg === 'stream key file is broken; keeping the last good keys')
  t.match(broken, { level: 50, file, why: /not JSON/, keeping: 2 })
  t.ok((await sim.publish({ app: 'live', stream: 'cam4', param: '?key=two' }).then((r) => replyOf(sim, 'on_publish', r.clientId).code === Codes.PUBLISH_KEY_UNKNOWN_STREAM)), 'the broken file\'s entry is not there')
  t.ok((await sim.publish({ app: 'live', stream: 'cam2', param: '?key=two' })), 'the last good keys still apply')
  await writeFile(file, JSON.stringify(['not', 'an', 'object']))
  await logs.wait((l) => /not a JSON object/.test(l.why ?? ''))
  await writeFile(file, JSON.stringify({ 'live/cam1': 'new', 'v/live/a/b': 'x' }))
  await logs.wait((l) => /is not "\[vhost\/\]app\/stream"/.test(l.why ?? ''))
  await writeFile(file, JSON.stringify({ 'live/cam1': 5 }))
  await logs.wait((l) => /is not a string/.test(l.why ?? ''))
  const last = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=new' })
  t.ok(last.ok, 'still the last good keys after every kind of breakage')
  const before = app.auth.keyFile!.loads
  await writeFile(file, JSON.stringify({ 'live/cam1': 'fixed' }))
  await waitFor(() => app.auth.keyFile!.loads > before, 5000, 'the fixed file')
  await sim.stop(last.clientId)
  t.ok((await sim.publish({ app: 'live', stream: 'cam1', param: '?key=fixed' })).ok, 'the fixed file applies')
})

t.test('keys: without a loadable key file at start every publish is refused until the file appears', async (t) => {
  const dir = t.testdir({})
  const file = join(dir, 'keys.json')
  const { sim, logs, app } = await world(t, { PUBLISH_AUTH: 'keys', STREAM_KEYS_FILE: file, STREAM_KEYS_POLL_MS: '25' })
  t.match(logs.find((l) => l.level === 50), { file, why: 'the file does not exist', msg: /every publish is refused/ })
  const r = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k' })
  t.match(replyOf(sim, 'on_publish', r.clientId), { code: Codes.PUBLISH_KEYS_UNAVAILABLE, msg: /does not exist/ })
  t.equal(await app.auth.limiter.failures('127.0.0.1'), 0, 'our broken file is not counted against the camera')
  await writeFile(file, JSON.stringify({ 'live/cam1': 'k' }))
  await waitFor(() => app.auth.keyFile!.loads === 1, 5000, 'the first load')
  t.ok((await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k' })).ok)
})

t.test('keys: a key file larger than 1 MiB is refused', async (t) => {
  const { logs } = await keysWorld(t, JSON.stringify({ 'live/cam1': 'x'.repeat(1000) }) + ' '.repeat(1_048_600))
  t.ok(logs.find((l) => /larger than/.test(l.why ?? '')))
})

const NOW_S = () => Math.floor(Date.now() / 1000)

t.test('signed: a valid URL publishes; expired, tampered, foreign or incomplete ones are refused', async (t) => {
  const { sim, logs } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, SIGN_CLOCK_SKEW_S: '30' })
  const exp = NOW_S() + 600
  const good = signedQuery(SECRET, 'live/cam1', exp)
  t.ok((await sim.publish({ app: 'live', stream: 'cam1', param: good })).ok, 'valid')
  const sig = good.slice(good.indexOf('sign=') + 5)
  const cases: Array<[string, string, string, number]> = [
    ['expired beyond the skew', 'cam2', signedQuery(SECRET, 'live/cam2', NOW_S() - 31), Codes.SIGNATURE_EXPIRED],
    ['another stream\'s signature', 'cam2', good, Codes.SIGNATURE_INVALID],
    ['a tampered expiry', 'cam1', `?expires=${exp + 3600}&sign=${sig}`, Codes.SIGNATURE_INVALID],
    ['another secret', 'cam2', signedQuery('another-secret-0123456789', 'live/cam2', exp), Codes.SIGNATURE_INVALID],
    ['no sign', 'cam2', `?expires=${exp}`, Codes.SIGNATURE_MISSING],
    ['no expires', 'cam2', `?sign=${sig}`, Codes.SIGNATURE_MISSING],
    ['no param', 'cam2', '', Codes.SIGNATURE_MISSING],
    ['a short sign', 'cam2', `?expires=${exp}&sign=abc`, Codes.SIGNATURE_MISSING],
    ['a negative expires', 'cam2', `?expires=-5&sign=${sig}`, Codes.SIGNATURE_MISSING]
  ]
  for (const [what, stream, param, code] of cases) {
    const r = await sim.publish({ app: 'live', stream, param })
    t.same([r.ok, replyOf(sim, 'on_publish', r.clientId).code], [false, code], what)
  }
  t.ok((await sim.publish({ app: 'live', stream: 'cam3', param: signedQuery(SECRET, 'live/cam3', NOW_S() - 20) })).ok, 'expired within the clock skew')
  t.ok((await sim.publish({ app: 'live', stream: 'cam4', param: signedQuery(SECRET, 'live/cam4', exp).toUpperCase().replace('?EXPIRES=', '?expires=').replace('&SIGN=', '&sign=') })).ok, 'upper-case hex')
  t.ok((await sim.publish({ app: 'live', stream: 'cam5', param: signedQuery(SECRET, 'live/cam5', exp).slice(1) + '#frag' })).ok, 'a WHIP-style bare query with a fragment')
  t.same(sim.kicks, [])
  await logs.wait((l) => l.action === 'on_publish' && l.code === Codes.SIGNATURE_EXPIRED)
  const text = logs.lines.map((l) => JSON.stringify(l)).join('\n')
  t.notOk(text.includes(sig), 'no signature reaches the log')
  t.match(text, new RegExp(`expires=${exp}`), 'expires is logged')
})

t.test('signed: only a newcomer with valid credentials can take over, under every policy', async (t) => {
  const { sim } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET })
  const exp = NOW_S() + 600
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', exp), stalled: true })
  const hijack = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery('guess-guess-guess-guess', 'live/cam1', exp) })
  t.equal(hijack.ok, false)
  t.same(sim.kicks, [], 'a stranger kicks nobody, even off a stalled stream')
  const b = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', exp) })
  t.ok(b.ok)
  t.same(sim.kicks, [a.clientId])
})

t.test('play: PLAY_AUTH=signed checks on_play with PLAY_SECRET; publish URLs do not play', async (t) => {
  const PLAY = 'play-secret-0123456789abcdef'
  const { sim } = await world(t, { PLAY_AUTH: 'signed', PLAY_SECRET: PLAY, PUBLISH_SECRET: SECRET })
  t.ok((await sim.publish({ app: 'live', stream: 'cam1' })).ok, 'PUBLISH_AUTH=off: publishing is open')
  const exp = NOW_S() + 60
  t.ok((await sim.play({ app: 'live', stream: 'cam1', param: signedQuery(PLAY, 'live/cam1', exp) })).ok, 'a signed play URL')
  const unsigned = await sim.play({ app: 'live', stream: 'cam1' })
  t.same([unsigned.ok, replyOf(sim, 'on_play', unsigned.clientId).code], [false, Codes.SIGNATURE_MISSING])
  const withPublish = await sim.play({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', exp) })
  t.match(replyOf(sim, 'on_play', withPublish.clientId), { code: Codes.SIGNATURE_INVALID, msg: /^play live\/cam1/ })
})

t.test('brute force: failures from one IP are refused at once after AUTH_FAIL_MAX, other IPs and valid publishers go on', async (t) => {
  const { sim, app, logs } = await world(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, AUTH_FAIL_MAX: '3', AUTH_FAIL_WINDOW_MS: '60000' })
  // SRS known first: an on_connect answered while its server id was still unknown would be filed apart from its on_publish.
  await app.srsServers.discover()
  const exp = NOW_S() + 600
  const bad = `?expires=${exp}&sign=${'0'.repeat(64)}`
  for (let i = 0; i < 3; i++) {
    const r = await sim.publish({ app: 'live', stream: 'cam1', param: bad, ip: '6.6.6.6' })
    t.equal(replyOf(sim, 'on_publish', r.clientId).code, Codes.SIGNATURE_INVALID, `attempt ${i + 1} is checked`)
  }
  t.match(logs.find((l) => /too many failed/.test(l.msg)), { level: 40, ip: '6.6.6.6' })
  const limited = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', exp), ip: '6.6.6.6' })
  t.match(replyOf(sim, 'on_publish', limited.clientId), { code: Codes.AUTH_RATE_LIMITED, msg: /6\.6\.6\.6/ })
  const call = sim.hookCalls.find((c) => c.body.client_id === limited.clientId && c.hook === 'on_publish')!
  t.ok(call.ms < 500, `refused at once (${Math.round(call.ms)} ms)`)
  const other = await sim.publish({ app: 'live', stream: 'cam2', param: signedQuery(SECRET, 'live/cam2', exp), ip: '10.0.0.8' })
  t.ok(other.ok, 'another IP publishes')
  const otherCall = sim.hookCalls.find((c) => c.body.client_id === other.clientId && c.hook === 'on_publish')!
  t.ok(otherCall.ms < 500, 'without delay')
  t.equal(await app.auth.limiter.failures('6.6.6.6'), 4, 'the refused attempt counted too: attempts are counted before they are checked')
  t.equal(await app.auth.limiter.failures('10.0.0.8'), 0, 'the valid publisher counted nothing')
})

t.test('brute force: the window ends and the IP may try again; memory stays bounded', async (t) => {
  let skew = 0
  const now = () => Date.now() + skew
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, PLAY_AUTH: 'signed', PLAY_SECRET: SECRET, AUTH_FAIL_MAX: '1', AUTH_FAIL_WINDOW_MS: '1000' }, { now })
  sim.setHookBase(h.hookBase)
  await sim.play({ app: 'live', stream: 'cam1' })
  const limited = await sim.play({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', NOW_S() + 60) })
  t.equal(replyOf(sim, 'on_play', limited.clientId).code, Codes.AUTH_RATE_LIMITED)
  skew = 1001
  const later = await sim.play({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', NOW_S() + 60) })
  t.ok(later.ok, 'after the window')
  const noIp = await postHook(h.hookBase, 'on_play', { action: 'on_play', client_id: 'x', vhost: '__defaultVhost__', app: 'live', stream: 's' })
  t.match(noIp.reply, { code: Codes.SIGNATURE_MISSING })
  const again = await postHook(h.hookBase, 'on_play', { action: 'on_play', client_id: 'x', vhost: '__defaultVhost__', app: 'live', stream: 's' })
  t.match(again.reply, { code: Codes.AUTH_RATE_LIMITED, msg: /from unknown/ }, 'a hook without ip is limited as "unknown"')
})

t.test('auth settings that cannot work refuse to start, naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PUBLISH_AUTH: 'keys' }, /STREAM_KEYS_FILE must be set when PUBLISH_AUTH=keys/],
    [{ PUBLISH_AUTH: 'signed' }, /PUBLISH_SECRET must be set/],
    [{ PLAY_AUTH: 'signed' }, /PLAY_SECRET must be set/],
    [{ PUBLISH_SECRET: SECRET, PLAY_SECRET: SECRET }, /PLAY_SECRET must differ/],
    [{ HOOK_ALLOW: '10.0.0.0/33, nope' }, /HOOK_ALLOW="10.0.0.0\/33, nope": not an IP or CIDR: 10\.0\.0\.0\/33, nope/],
    [{ TRUST_PROXY: 'proxy.local' }, /TRUST_PROXY="proxy.local"/],
    [{ TAKEOVER_POLICY_BY_APP: 'live=maybe' }, /TAKEOVER_POLICY_BY_APP="live=maybe": "live=maybe" is not \[vhost\/\]app=/],
    [{ TAKEOVER_POLICY: 'newest' }, /TAKEOVER_POLICY="newest"/],
    [{ PUBLISH_SECRET: 'short' }, /PUBLISH_SECRET/]
  ]
  for (const [env, msg] of cases) {
    await t.rejects(startApp(t, env), { name: 'ConfigError', message: msg }, JSON.stringify(env))
  }
})
