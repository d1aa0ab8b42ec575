import fc from 'fast-check'
import t from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { HOOK_ACTIONS } from '../src/srs/hooks.js'
import { startApp } from './fixtures/app.js'
import { SrsSimulator } from './fixtures/srs-sim.js'

/**
 * Property-based fuzzing of every callback: hook bodies and queries, valid-ish and hostile, POSTed
 * as SRS would. Whatever arrives: no crash, no 5xx, a reply that is an allow or a refusal with a
 * non-zero code, and nobody kicked off SRS.
 */

const TOKEN = 'fuzz-token-0123456789'
const SECRET = 'fuzz-publish-secret-0123456789'

const hostile = fc.constantFrom(
  '', ' ', '../../../etc/passwd', '/etc/shadow', '; rm -rf / #', '$(reboot)', '`id`', '\u0000', '\r\nX-Injected: 1',
  '%00', '%2e%2e%2f', '?key=', '?key=a&key=b', '?expires=99999999999999&sign=zz', '#', '?#', '&&&', '==', '\u202e\ud800',
  '__proto__', 'constructor', 'live/*', '*', '{"a":1}', 'a'.repeat(5000)
)
const text = fc.oneof(fc.string({ maxLength: 40 }), hostile)
/** Percent-encodes, dropping lone surrogates (which encodeURIComponent cannot encode). */
const enc = (s: string) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))
const loose = fc.oneof(text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 2 }), fc.dictionary(text, text, { maxKeys: 2 }))

t.test('fuzzed hook bodies and queries: no crash, no 5xx, allow or a non-zero refusal, no eviction', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const h = await startApp(t, {
    SRS_API_URL: sim.apiUrl,
    HOOK_TOKEN: TOKEN,
    PUBLISH_AUTH: 'signed',
    PUBLISH_SECRET: SECRET,
    PLAY_AUTH: 'signed',
    PLAY_SECRET: SECRET + 'x',
    TAKEOVER_TIMEOUT_MS: '1000',
    AUTH_FAIL_MAX: '100000',
    DATA_DIR: t.testdir({})
  })
  sim.setHookBase(h.hookBase, `?token=${TOKEN}`)
  // Live and stalled publishers a forged or hostile on_publish could try to take over.
  const live = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', 4_000_000_000) })
  const stalled = await sim.publish({ app: 'live', stream: 'cam2', param: signedQuery(SECRET, 'live/cam2', 4_000_000_000), stalled: true })
  t.ok(live.ok && stalled.ok)
  const streamIds = sim.hookCalls.filter((c) => c.hook === 'on_publish').map((c) => c.body.stream_id as string)
  const signed = fc.constantFrom(signedQuery(SECRET, 'live/cam1', 4_000_000_000), signedQuery(SECRET, 'live/cam2', 4_000_000_000))

  const field = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 40, arbitrary: arb }, { weight: 1, arbitrary: loose })
  const body = (action: string) => fc.record({
    action: field(fc.oneof({ weight: 8, arbitrary: fc.constant(action) }, fc.constantFrom(...HOOK_ACTIONS))),
    client_id: field(fc.oneof(fc.constantFrom(live.clientId, stalled.clientId, 'f0rged01'), fc.string({ minLength: 1, maxLength: 70 }), fc.nat())),
    server_id: field(text),
    ip: field(fc.oneof(fc.ipV4(), fc.ipV6(), text)),
    vhost: field(fc.constantFrom('__defaultVhost__', 'v.example.com')),
    app: field(fc.oneof(fc.constant('live'), text)),
    stream: field(fc.oneof(fc.constantFrom('cam1', 'cam2'), text)),
    param: field(fc.oneof(signed, text)),
    tcUrl: field(text),
    stream_url: field(fc.oneof(fc.constantFrom('/live/cam1', '/live/cam2'), text)),
    stream_id: field(fc.oneof(fc.constantFrom(...streamIds), text)),
    send_bytes: field(fc.nat()),
    recv_bytes: field(fc.integer()),
    cwd: field(text),
    file: field(text),
    duration: field(fc.double()),
    seq_no: field(fc.integer())
  }, { requiredKeys: ['action', 'client_id', 'vhost', 'app', 'stream', 'file'] })
  const query = fc.oneof(
    { weight: 6, arbitrary: fc.constant(`?token=${TOKEN}`) },
    fc.constantFrom('', '?token=', '?token=wrong', `?token=${TOKEN}&token=x`, `?token[]=${TOKEN}`, `?token=${TOKEN}%00`, `?token=${TOKEN}&%ED%A0%80=%ZZ&a=%`),
    text.map((s) => `?token=${TOKEN}&${enc(s)}=${enc(s)}`)
  )
  const payload = (action: string) => fc.oneof(
    { weight: 6, arbitrary: body(action).map((b) => JSON.stringify(b)) },
    fc.json(),
    text
  )
  const request = fc.constantFrom(...HOOK_ACTIONS).chain((action) => fc.tuple(fc.constant(action), query, payload(action), fc.boolean()))

  const seen = new Map<number, number>()
  await fc.assert(fc.asyncProperty(request, async ([action, q, raw, gateway]) => {
    const prefix = gateway ? `${h.url}/video/camera/callback` : h.hookBase
    const res = await fetch(`${prefix}/${action}${q}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw })
    const reply = JSON.parse(await res.text()) as { code: unknown, msg: unknown }
    seen.set(res.status, (seen.get(res.status) ?? 0) + 1)
    if (res.status >= 500) throw new Error(`${res.status} for ${action}${q}: ${JSON.stringify(reply)}`)
    if (!Number.isInteger(reply.code)) throw new Error(`no integer code: ${JSON.stringify(reply)}`)
    if (reply.code === 0 ? (res.status !== 200 || reply.msg !== null) : typeof reply.msg !== 'string') {
      throw new Error(`neither an allow nor a refusal: ${res.status} ${JSON.stringify(reply)}`)
    }
    if (res.status !== 200 && reply.code === 0) throw new Error('an error status with code 0')
    if (sim.kicks.length > 0) throw new Error(`a kick reached SRS: ${sim.kicks.join(',')} after ${action}${q} ${raw}`)
  }), { numRuns: 1000, interruptAfterTimeLimit: 15_000 })

  t.same(sim.kicks, [], 'nobody was kicked')
  t.equal(sim.activePublisher('live', 'cam1'), live.clientId)
  t.equal(sim.activePublisher('live', 'cam2'), stalled.clientId)
  t.ok(seen.get(200)! > 0 && seen.get(400)! > 0 && seen.get(403)! > 0, `replies by status: ${JSON.stringify([...seen])}`)
  const healthy = await sim.publish({ app: 'live', stream: 'cam3', param: signedQuery(SECRET, 'live/cam3', 4_000_000_000) })
  t.ok(healthy.ok, 'the server still serves SRS afterwards')
})
