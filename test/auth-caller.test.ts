import t from 'tap'
import { parsePolicyByApp, policyFor } from '../src/publishers/settings.js'
import { pino } from 'pino'
import { AuthService, authConfigOf, plainIp } from '../src/auth/service.js'
import { loadConfig } from '../src/config.js'
import { Codes } from '../src/errors.js'
import { KeyFile } from '../src/auth/keys.js'

const service = (env: Record<string, string>) =>
  new AuthService(authConfigOf(loadConfig(env)), { now: Date.now, log: pino({ level: 'silent' }) })

t.test('HOOK_ALLOW matches IPv4, IPv6 and IPv4-mapped IPv6 callers', async (t) => {
  const s = service({ HOOK_ALLOW: '10.0.0.0/8, fd00::/8, 192.168.1.7' })
  t.equal(s.checkCaller('::ffff:10.1.2.3', undefined), undefined, 'an IPv4 peer on a dual-stack socket')
  t.equal(s.checkCaller('fd00::5', undefined), undefined)
  t.equal(s.checkCaller('192.168.1.7', undefined), undefined, 'a single address')
  t.match(s.checkCaller('2001:db8::1', undefined), { code: Codes.HOOK_CALLER_FORBIDDEN, msg: /caller 2001:db8::1 is not in HOOK_ALLOW/ })
  t.match(s.checkCaller('::ffff:192.168.1.8', undefined), { code: Codes.HOOK_CALLER_FORBIDDEN, msg: /caller 192\.168\.1\.8 / })
  const lo = service({ HOOK_ALLOW: 'loopback' })
  t.equal(lo.checkCaller('::1', undefined), undefined)
  t.equal(lo.checkCaller('127.0.0.9', undefined), undefined)
  t.ok(lo.checkCaller('10.0.0.1', undefined))
})

t.test('without HOOK_TOKEN or HOOK_ALLOW every caller may call', async (t) => {
  t.equal(service({}).checkCaller('8.8.8.8', 'anything'), undefined)
  t.equal(service({}).callersAuthenticated, false, 'allowed is not authenticated')
})

t.test('callers are authenticated when HOOK_TOKEN or HOOK_ALLOW is set (checkCaller refuses the rest)', async (t) => {
  t.equal(service({ HOOK_TOKEN: 'hook-token-0123' }).callersAuthenticated, true)
  t.equal(service({ HOOK_ALLOW: 'loopback' }).callersAuthenticated, true)
  t.equal(service({ HOOK_TOKEN: 'hook-token-0123', HOOK_ALLOW: '10.0.0.0/8' }).callersAuthenticated, true)
})

t.test('plainIp leaves IPv6 and plain IPv4 alone', async (t) => {
  t.equal(plainIp('::ffff:1.2.3.4'), '1.2.3.4')
  t.equal(plainIp('::ffff:abcd'), '::ffff:abcd')
  t.equal(plainIp('1.2.3.4'), '1.2.3.4')
})

t.test('policyFor: an app\'s own entry (with its vhost off the default one), else TAKEOVER_POLICY', async (t) => {
  const byApp = parsePolicyByApp('studio = reject, other.example/live=takeover')
  const of = (vhost: string, app: string) => policyFor(byApp, 'takeover-stale', vhost, app)
  t.equal(of('__defaultVhost__', 'studio'), 'reject')
  t.equal(of('__defaultVhost__', 'live'), 'takeover-stale')
  t.equal(of('other.example', 'live'), 'takeover', 'a vhost-qualified entry')
  t.equal(of('other.example', 'studio'), 'takeover-stale', 'a short entry names the default vhost only')
  t.equal(of('__defaultVhost__', 'constructor'), 'takeover-stale', 'no prototype lookups')
  t.throws(() => parsePolicyByApp('a/b/c=reject'), /is not \[vhost\/\]app=/)
})

t.test('a single IPv6 address is a /128', async (t) => {
  const s = service({ HOOK_ALLOW: '2001:db8::7' })
  t.equal(s.checkCaller('2001:db8::7', undefined), undefined)
  t.ok(s.checkCaller('2001:db8::8', undefined))
})

t.test('a key file stopped before it starts loads once and never polls', async (t) => {
  const dir = t.testdir({ 'keys.json': '{"live/cam1":"k"}' })
  const file = new KeyFile({ path: `${dir}/keys.json`, pollMs: 20, log: pino({ level: 'silent' }) })
  file.stop()
  await file.start()
  t.equal(file.loads, 1)
  t.equal(file.keys?.get('live/cam1'), 'k')
})
