import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Pool, type Dispatcher } from 'undici'
import { loadConfig } from '../src/config.js'
import { ConfigError } from '../src/errors.js'
import { Codes } from '../src/errors.js'
import { PlatformClient, REPLY_LIMIT, type PlatformAnswer } from '../src/forward/client.js'
import { durationMs } from '../src/forward/settings.js'
import { MSG_LIMIT, sanitise, verdictOf } from '../src/forward/verdict.js'
import { postHook, startApp, startWorld, waitFor } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'

/**
 * The platform's answers read as docs/forwarding.md says (what allows, refuses, or is no verdict;
 * a reply cut at 4 KB), the forwarding settings' durations, and the operator's view of the outbox
 * (its routes and metrics), over real HTTP.
 */

const answer = (status: number, text: string): PlatformAnswer => ({ ok: true, status, text, ms: 1 })
const stop = (client: string, stream: string) => ({ action: 'on_stop', client_id: client, vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })

t.test('what a reply means: SRS\'s contract and ZLMediaKit\'s, a refusal\'s words, and what is no verdict', async (t) => {
  t.same(verdictOf('srs', answer(200, '0')), { kind: 'allow', reply: undefined }, 'SRS: a plain 0 allows')
  t.same(verdictOf('srs', answer(201, '{"code":0}')), { kind: 'allow', reply: { code: 0 } }, 'SRS: 201 too')
  t.match(verdictOf('zlm', answer(201, '{"code":0}')), { kind: 'fail', msg: /HTTP 201/ }, 'ZLMediaKit: only 200')
  t.match(verdictOf('zlm', answer(200, '0')), { kind: 'fail', msg: /no verdict: 0$/ }, 'ZLMediaKit: a plain 0 is no verdict')
  t.same(verdictOf('zlm', answer(200, '{"code":0,"enable_mp4":true}')), { kind: 'allow', reply: { code: 0, enable_mp4: true } })
  t.same(verdictOf('srs', answer(200, '{"code":7,"msg":"camera disabled"}')), { kind: 'refuse', code: 7, msg: 'code 7: camera disabled' })
  t.same(verdictOf('srs', answer(200, '{"code":7}')), { kind: 'refuse', code: 7, msg: 'code 7: {"code":7}' }, 'no msg: its body is said')
  t.same(verdictOf('srs', answer(200, '{"code":7,"msg":["x"]}')), { kind: 'refuse', code: 7, msg: 'code 7: {"code":7,"msg":["x"]}' }, 'a msg that is no string: its body')
  t.same(verdictOf('srs', answer(403, '')), { kind: 'refuse', code: undefined, msg: 'HTTP 403' }, 'a 4xx refuses; an empty body adds nothing')
  t.same(verdictOf('srs', answer(500, '')), { kind: 'fail', msg: 'the platform answered HTTP 500' })
  t.same(verdictOf('srs', answer(302, 'moved')), { kind: 'fail', msg: 'the platform answered HTTP 302: moved' }, 'a redirect is no verdict')
  for (const body of ['null', '[0]', '"0"', '5', '{"code":"0"}', '{"code":0.0}', '{"code":1.5}', '{"code":1e0}', '{"code":9007199254740993}', '{"msg":"ok"}', '<html>']) {
    t.match(verdictOf('srs', answer(200, body)), { kind: 'fail', msg: /^the platform's answer is no verdict: / }, `${body} is no verdict`)
  }
  t.match(verdictOf('srs', { ok: false, kind: 'timeout', message: 'no answer within 5 ms', ms: 5 }), { kind: 'fail', msg: 'the platform gave no answer: no answer within 5 ms' })
  t.match(verdictOf('srs', { ok: false, kind: 'unreachable', message: 'ECONNREFUSED\n', ms: 1 }), { kind: 'fail', msg: 'the platform is unreachable: ECONNREFUSED' })
})

t.test('the platform\'s words are made printable, one line, and cut at MSG_LIMIT characters', async (t) => {
  t.equal(sanitise(' a\n\u001b[31mb\u2028c\u0085 '), 'a [31mb c')
  t.equal(sanitise('x'.repeat(MSG_LIMIT)), 'x'.repeat(MSG_LIMIT), 'at the limit: whole')
  t.equal(sanitise('x'.repeat(MSG_LIMIT + 1)), 'x'.repeat(MSG_LIMIT) + '…', 'past it: cut, and said so')
  const long = verdictOf('srs', answer(200, JSON.stringify({ code: 9, msg: 'y'.repeat(5000) })))
  t.match(long, { kind: 'refuse', code: 9 })
  t.equal((long as { msg: string }).msg, `code 9: ${'y'.repeat(MSG_LIMIT)}…`)
})

t.test('a reply body over REPLY_LIMIT is cut: a verdict past the cut is no verdict, and the connection still serves', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const client = new PlatformClient({ url: platform.url, headers: {} })
  t.teardown(() => client.close())
  // An allow whose code comes after 1 MB of words: what is read ends before it.
  const huge = `{"msg":"${'w'.repeat(1 << 20)}","code":0}`
  platform.mode = { kind: 'body', status: 200, body: huge }
  const a = await client.post('on_publish', '{}', 5000)
  t.match(a, { ok: true, status: 200 })
  const text = (a as { text: string }).text
  t.equal(text.length, REPLY_LIMIT, `${REPLY_LIMIT} bytes read of ${huge.length}`)
  t.equal(text, huge.slice(0, REPLY_LIMIT))
  const v = verdictOf('srs', a)
  t.match(v, { kind: 'fail', msg: /^the platform's answer is no verdict: \{"msg":"w+…$/ })
  t.ok((v as { msg: string }).msg.length < MSG_LIMIT + 60, 'and what is said of it is short')

  // The same allow within the limit allows; so does one exactly at it.
  const fits = `{"msg":"${'w'.repeat(REPLY_LIMIT - 19)}","code":0}`
  t.equal(fits.length, REPLY_LIMIT)
  platform.mode = { kind: 'body', status: 200, body: fits }
  const b = await client.post('on_publish', '{}', 5000)
  t.match(verdictOf('srs', b), { kind: 'allow' }, 'after a cut reply the client still asks (a fresh connection)')
  platform.mode = { kind: 'body', status: 200, body: fits + ' ' }
  t.match(verdictOf('srs', await client.post('on_publish', '{}', 5000)), { kind: 'allow' }, 'one byte over: cut after the verdict, still whole JSON')
  platform.mode = { kind: 'body', status: 200, body: '' }
  t.match(await client.post('on_publish', '{}', 5000), { ok: true, status: 200, text: '' }, 'an empty body')
  t.equal(platform.of('on_publish').length, 4)
})

t.test('a request\'s bound is one timer cleared with the answer: none is left to fire, and the bound covers a body that stalls', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  // The client's own pool, seen through a dispatcher that keeps each request's signal.
  const pool = new Pool(`http://127.0.0.1:${platform.port}`)
  t.teardown(() => pool.close())
  const signals: AbortSignal[] = []
  const seen = { request: async (o: Dispatcher.RequestOptions) => { signals.push(o.signal as AbortSignal); return await pool.request(o) } } as unknown as Dispatcher
  const client = new PlatformClient({ url: platform.url, headers: {}, dispatcher: seen })
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const budget = 100
  for (let i = 0; i < 20; i++) t.match(await client.post('on_stop', '{}', budget), { ok: true, status: 200 })
  t.equal(timers(), before, 'no timer left once the answers are read')
  // Past the bound of every request: a timer left running (AbortSignal.timeout's) would have aborted its signal by now.
  await new Promise((resolve) => setTimeout(resolve, 3 * budget))
  t.equal(signals.length, 20)
  t.equal(signals.filter((s) => s.aborted).length, 0, 'no request\'s bound fired after its answer')

  // Headers at once, then a body that never ends: the bound still holds.
  const stalls = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.write('{"code"') })
  await new Promise<void>((resolve) => stalls.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { stalls.closeAllConnections(); stalls.close() })
  const stalled = new PlatformClient({ url: `http://127.0.0.1:${(stalls.address() as AddressInfo).port}/cb/{action}`, headers: {} })
  t.teardown(() => stalled.close())
  const a = await stalled.post('on_play', '{}', 300)
  t.match(a, { ok: false, kind: 'timeout', message: 'no answer within 300 ms' })
  t.ok(a.ms >= 290 && a.ms < 300 + 2000, `answered at its bound (${Math.round(a.ms)} ms)`)
  t.equal(timers(), before, 'and its timer is gone too')
})

t.test('a decision hook whose platform answers a huge body: no verdict, FORWARD_FAIL_MODE decides, in time', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  platform.mode = { kind: 'body', status: 200, body: `{"msg":"${'w'.repeat(1 << 20)}","code":0}` }
  const { sim, logs } = await startWorld(t, { FORWARD_URL: platform.url, FORWARD_FAIL_MODE: 'closed' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(a.ok, false, 'refused under FORWARD_FAIL_MODE=closed')
  const line = await logs.wait((l) => l.action === 'on_connect' && l.client === a.clientId)
  t.match(line, { outcome: 'refused-platform', code: Codes.PLATFORM_UNAVAILABLE, platform: 'failed-closed' })
  t.match(line.reason, /no verdict: \{"msg":"w+…; FORWARD_FAIL_MODE=closed/)
  t.ok(line.reason.length < 400, 'the log line keeps a few hundred characters of it')
})

t.test('FORWARD_MAX_AGE: a bare number is seconds, units ms to days, and what is unreadable or under 1 s stops the start', async (t) => {
  t.equal(durationMs('90'), 90_000)
  t.equal(durationMs(' 500ms '), 500)
  t.equal(durationMs('30m'), 1_800_000)
  t.equal(durationMs('2d'), 172_800_000)
  t.equal(durationMs('1 h'), 3_600_000)
  t.ok(Number.isNaN(durationMs('a day')))
  t.ok(Number.isNaN(durationMs('-5s')))
  t.equal(loadConfig({ FORWARD_MAX_AGE: '45' }).FORWARD_MAX_AGE, '45')
  for (const bad of ['a day', '999ms', '0', '1w']) {
    const err = t.throws(() => loadConfig({ FORWARD_MAX_AGE: bad })) as ConfigError
    t.ok(err instanceof ConfigError)
    t.match(err.message, /FORWARD_MAX_AGE.*not a duration of at least 1s \(e\.g\. 90s, 30m, 24h, 2d\)/)
  }
  for (const url of ['ftp://video/x', 'http://', 'video:5000/x', 'http://video:5000/a b']) {
    t.throws(() => loadConfig({ FORWARD_URL: url }), /FORWARD_URL.*not an http\(s\) URL/, url)
    t.throws(() => loadConfig({ FORWARD_ZLM_URL: url }), /FORWARD_ZLM_URL.*not an http\(s\) URL/, url)
  }
  t.equal(loadConfig({ FORWARD_URL: 'http://video:5000' }).FORWARD_URL, 'http://video:5000', 'an origin alone is a URL')
})

t.test('the operator API without forwarding: 404 with what to set', async (t) => {
  const { url } = await startApp(t, { SRS_API_URL: 'none' })
  for (const [method, path] of [['GET', '/forwarding'], ['GET', '/forwarding/dead'], ['POST', '/forwarding/dead/retry']] as const) {
    const res = await fetch(`${url}/admin-api/video/camera${path}`, { method })
    t.equal(res.status, 404, `${method} ${path}`)
    t.same(await res.json(), { code: Codes.NOT_FOUND, msg: 'hooks are not forwarded (FORWARD_URL and FORWARD_ZLM_URL are unset)' })
  }
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.notMatch(metrics, /srs_hooks_forward_/, 'no forwarding metrics either')
})

t.test('the status, the metrics and one dead letter retried by its seq, with both targets forwarded', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  platform.mode = { kind: 'status', status: 500 }
  const { hookBase, url, app } = await startApp(t, {
    SRS_API_URL: 'none', FORWARD_URL: platform.url, FORWARD_ZLM_URL: 'http://127.0.0.1:9/index/hook/{action}', FORWARD_MAX_AGE: '1s', FORWARD_RETRY_MAX_MS: '100'
  })
  const api = `${url}/admin-api/video/camera/forwarding`
  const status = async () => await (await fetch(api)).json() as Record<string, any>
  const metric = async (name: string, labels = '') => {
    const text = await (await fetch(`${url}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  t.match(await status(), {
    code: 0,
    targets: [{ target: 'srs', url: platform.url, last_error: null }, { target: 'zlm', url: 'http://127.0.0.1:9/index/hook/{action}', last_error: null }],
    depth: 0,
    oldest_age_ms: null,
    dead: 0,
    rows: 0
  }, 'nothing waits: no age')
  t.equal(await metric('srs_hooks_forward_queue_depth'), 0)
  t.equal(await metric('srs_hooks_forward_oldest_age_seconds'), 0, '0 when none waits')

  for (const [client, stream] of [['c1', 'cam1'], ['c2', 'cam2']]) t.equal((await postHook(hookBase, 'on_stop', stop(client!, stream!))).status, 200)
  t.equal(await metric('srs_hooks_forward_queue_depth'), 2)
  t.equal(await metric('srs_hooks_forward_outbox_rows'), 2)
  t.equal(await metric('srs_hooks_forward_dead_letters'), 0)
  await waitFor(async () => (await metric('srs_hooks_forward_oldest_age_seconds'))! > 0, 5000, 'the oldest to age')
  const waiting = await status()
  t.match(waiting, { depth: 2, rows: 2, dead: 0, targets: [{ target: 'srs', last_error: { action: 'on_stop', error: /HTTP 500/ } }, { target: 'zlm', last_error: null }] })
  t.ok(waiting.oldest_age_ms >= 0 && Number.isInteger(waiting.oldest_age_ms))

  await waitFor(async () => await metric('srs_hooks_forward_dead_letters') === 2, 10_000, 'both to become dead letters')
  t.equal(await metric('srs_hooks_forward_queue_depth'), 0)
  t.equal(await metric('srs_hooks_forward_outbox_rows'), 2, 'dead letters stay in the outbox')
  t.ok((await metric('srs_hooks_forward_deliveries_total', '{target="srs",result="failed"}'))! >= 2)
  t.equal(await metric('srs_hooks_forward_deliveries_total', '{target="srs",result="dead"}'), 2)

  const dead = (await (await fetch(`${api}/dead`)).json() as { items: Array<Record<string, any>> }).items
  t.same(dead.map((d) => JSON.parse(d.body).client_id), ['c1', 'c2'])
  t.same((await (await fetch(`${api}/dead?after=${String(dead[0]!.seq)}&limit=1`)).json() as { items: unknown[] }).items.length, 1, 'paged by seq')
  platform.mode = { kind: 'ok' }
  const one = await (await fetch(`${api}/dead/retry?seq=${String(dead[1]!.seq)}`, { method: 'POST' })).json()
  t.same(one, { code: 0, retried: 1 }, 'only the one named')
  await platform.waitFor((r) => r.some((x) => x.headers['idempotency-key'] === dead[1]!.idempotency_key && x.body.client_id === 'c2'), 5000, 'the retried one')
  await waitFor(() => app.forward!.outbox.counts.rows === 1, 5000, 'its row to go')
  t.equal(await metric('srs_hooks_forward_deliveries_total', '{target="srs",result="delivered"}'), 1)
  t.equal(await metric('srs_hooks_forward_dead_letters'), 1)
  t.notOk(platform.received.some((x) => x.body.client_id === 'c1' && x.at > dead[0]!.dead_at), 'the other stays a dead letter')
  t.same(await (await fetch(`${api}/dead/retry?seq=${String(dead[1]!.seq)}`, { method: 'POST' })).json(), { code: 0, retried: 0 }, 'a seq that is no dead letter: none')
  const bad = await fetch(`${api}/dead/retry?seq=zero`, { method: 'POST' })
  t.equal(bad.status, 400)
  t.match(await bad.json(), { code: Codes.INVALID_BODY })
})

t.test('credentials in the platform URL are sent as Basic authorization (FORWARD_HEADERS\' own wins) and never shown', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const url = `http://cam%20ops:p%40ss@127.0.0.1:${String(platform.port)}/callback/{action}`
  const client = new PlatformClient({ url, headers: { 'x-tenant': '7' } })
  t.teardown(() => client.close())
  t.equal(client.where, `http://***@127.0.0.1:${String(platform.port)}/callback/{action}`)
  t.match(await client.post('on_publish', '{}', 5000), { ok: true, status: 200 })
  t.equal(platform.received[0]!.headers.authorization, `Basic ${Buffer.from('cam ops:p@ss').toString('base64')}`, 'decoded, as a browser or curl sends them')
  t.equal(platform.received[0]!.headers['x-tenant'], '7')
  t.equal(platform.received[0]!.path, '/callback/on_publish')
  const own = new PlatformClient({ url, headers: { authorization: 'Bearer platform-secret' } })
  t.teardown(() => own.close())
  await own.post('on_play', '{}', 5000)
  t.equal(platform.of('on_play')[0]!.headers.authorization, 'Bearer platform-secret', 'FORWARD_HEADERS\' Authorization wins')
  const plain = new PlatformClient({ url: platform.url, headers: {} })
  t.teardown(() => plain.close())
  t.equal(plain.where, platform.url)
  await plain.post('on_stop', '{}', 5000)
  t.equal(platform.of('on_stop')[0]!.headers.authorization, undefined, 'none without credentials')
  const odd = new PlatformClient({ url: `http://ops:100%@127.0.0.1:${String(platform.port)}/callback/{action}`, headers: {} })
  t.teardown(() => odd.close())
  await odd.post('on_hls', '{}', 5000)
  t.equal(platform.of('on_hls')[0]!.headers.authorization, `Basic ${Buffer.from('ops:100%').toString('base64')}`, 'a % that starts no escape is sent as it is')

  const { url: base, logs } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: url })
  const status = await (await fetch(`${base}/admin-api/video/camera/forwarding`)).json() as Record<string, any>
  t.equal(status.targets[0].url, `http://***@127.0.0.1:${String(platform.port)}/callback/{action}`)
  t.notOk(logs.raw.some((l) => l.includes('p%40ss') || l.includes('p@ss')), 'the password is never logged')
})
