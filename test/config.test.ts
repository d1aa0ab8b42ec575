import t from 'tap'
import { ConfigSchema, loadConfig } from '../src/config.js'
import { ConfigError } from '../src/errors.js'

t.test('defaults give a working server on 0.0.0.0:6000 against a local SRS', async (t) => {
  const c = loadConfig({})
  t.equal(c.HOST, '0.0.0.0')
  t.equal(c.PORT, 6000)
  t.same(c.srsApis, [{ url: 'http://127.0.0.1:1985', auth: undefined }])
  t.equal(c.TAKEOVER_AT, 'auto')
  t.equal(c.CROSS_SERVER, 'takeover')
  t.equal(c.TAKEOVER_TIMEOUT_MS, 3000)
  t.equal(c.RECONCILE_INTERVAL_MS, 30000)
  t.equal(c.FAIL_MODE, 'open')
  t.equal(c.LOG_LEVEL, 'info')
})

t.test('variables are read, trimmed and converted', async (t) => {
  const c = loadConfig({ PORT: ' 7000 ', FAIL_MODE: 'closed', TAKEOVER_TIMEOUT_MS: '500', SRS_API_URL: 'http://srs:1985/', LOG_LEVEL: 'warn', EMPTY: '' })
  t.equal(c.PORT, 7000)
  t.equal(c.FAIL_MODE, 'closed')
  t.equal(c.TAKEOVER_TIMEOUT_MS, 500)
  t.same(c.srsApis.map((a) => a.url), ['http://srs:1985'])
  t.equal(c.LOG_LEVEL, 'warn')
})

t.test('an empty variable means its default', async (t) => {
  t.equal(loadConfig({ PORT: '' }).PORT, 6000)
})

t.test('API credentials come from each URL\'s userinfo, else from their own variables', async (t) => {
  const a = loadConfig({ SRS_API_URL: 'http://admin:s%40cret@10.0.0.5:1985' })
  t.same(a.srsApis, [{ url: 'http://10.0.0.5:1985', auth: { username: 'admin', password: 's@cret' } }], 'credentials are not kept in the URL')
  const b = loadConfig({ SRS_API_URL: 'http://u:p@h1:1985, http://h2:1985/', SRS_API_USERNAME: 'x', SRS_API_PASSWORD: 'y' })
  t.same(b.srsApis, [
    { url: 'http://h1:1985', auth: { username: 'u', password: 'p' } },
    { url: 'http://h2:1985', auth: { username: 'x', password: 'y' } }
  ], 'a URL\'s own credentials win; the variables serve the others')
})

t.test('SRS_API_URL lists several servers; a server listed twice is refused', async (t) => {
  t.same(loadConfig({ SRS_API_URL: 'http://a:1985,https://b:1986' }).srsApis.map((a) => a.url), ['http://a:1985', 'https://b:1986'])
  t.throws(() => loadConfig({ SRS_API_URL: 'http://a:1985, http://a:1985/' }), { name: 'ConfigError', message: /listed twice/ })
})

t.test('an SRS_API_URL of commas alone names no server', async (t) => {
  t.throws(() => loadConfig({ SRS_API_URL: ', ,' }), { name: 'ConfigError', message: /SRS_API_URL=", ,": names no server/ })
})

t.test('a bad URL\'s credentials never appear in the error', async (t) => {
  const err = catchError(() => loadConfig({ SRS_API_URL: 'http://admin:secret@h:1985/api' }))
  t.type(err, ConfigError)
  t.notMatch(err?.message, /secret/)
  t.match(err?.message, /SRS_API_URL="http:\/\/\*\*\*@h:1985\/api": http:\/\/\*\*\*@h:1985\/api must be an origin without a path: use http:\/\/h:1985$/)
})

t.test('an API URL with a path, a query or no scheme says what to write instead', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ SRS_API_URL: 'http://127.0.0.1:1985/api/v1' }, 'SRS_API_URL="http://127.0.0.1:1985/api/v1": http://127.0.0.1:1985/api/v1 must be an origin without a path: use http://127.0.0.1:1985'],
    [{ SRS_API_URL: 'http://a:1985, http://b:1985/api/v1/' }, 'SRS_API_URL="http://a:1985, http://b:1985/api/v1/": http://b:1985/api/v1/ must be an origin without a path: use http://b:1985'],
    [{ SRS_API_URL: 'http://srs:1985/?x=1' }, 'must be an origin without a path: use http://srs:1985'],
    [{ SRS_API_URL: 'http://srs:1985/#top' }, 'must be an origin without a path: use http://srs:1985'],
    [{ SRS_API_URL: 'http://srs:1985?' }, 'must be an origin without a path: use http://srs:1985'],
    [{ SRS_API_URL: '127.0.0.1:1985' }, 'SRS_API_URL="127.0.0.1:1985": 127.0.0.1:1985 is not an origin: expected http://host:port (or https://)'],
    [{ SRS_API_URL: 'http://sr\ts:1985' }, 'http://sr\ts:1985 is not a valid http(s) URL'],
    [{ SRS_API_URL: 'http://[::1:1985' }, 'http://[::1:1985 is not a valid http(s) URL'],
    [{ ZLM_API_URL: 'http://zlm:80/index/api/getServerConfig' }, 'ZLM_API_URL="http://zlm:80/index/api/getServerConfig": http://zlm:80/index/api/getServerConfig must be an origin without a path: use http://zlm']
  ]
  for (const [env, message] of cases) {
    const err = catchError(() => loadConfig(env))
    t.type(err, ConfigError, JSON.stringify(env))
    t.ok(err?.message.includes(message), `${err?.message} says ${message}`)
  }
  t.same(loadConfig({ SRS_API_URL: 'HTTP://srs:1985/' }).srsApis.map((a) => a.url), ['http://srs:1985'], 'an origin with a trailing slash is one')
})

t.test('an enum lists its values, a pattern says the form it expects: worded from the schema, for every such setting', async (t) => {
  t.equal(catchError(() => loadConfig({ FAIL_MODE: 'close' }))?.message, 'invalid configuration: FAIL_MODE="close": must be one of open, closed')
  t.equal(catchError(() => loadConfig({ LOG_LEVEL: 'verbose' }))?.message, 'invalid configuration: LOG_LEVEL="verbose": must be one of fatal, error, warn, info, debug, trace, silent')
  t.equal(catchError(() => loadConfig({ REDIS_URL: '127.0.0.1:6379' }))?.message, 'invalid configuration: REDIS_URL="127.0.0.1:6379": expected redis://[user:password@]host:port[/db] (or rediss:// for TLS)')
  t.equal(catchError(() => loadConfig({ FAIL_MODE: 'x', PORT: '-1' }))?.message, 'invalid configuration: PORT="-1": must be >= 0; FAIL_MODE="x": must be one of open, closed', 'one clause per variable, in the schema\'s order')
  for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
    const s = schema as { anyOf?: Array<{ const?: unknown }>, pattern?: string, expected?: string }
    if (s.anyOf?.every((b) => b.const !== undefined) === true) {
      const err = catchError(() => loadConfig({ [name]: 'no-such-value' }))
      t.equal(err?.message, `invalid configuration: ${name}="no-such-value": must be one of ${s.anyOf.map((b) => String(b.const)).join(', ')}`, name)
    }
    if (s.pattern !== undefined) {
      t.type(s.expected, 'string', `${name} describes the form its pattern checks`)
      const err = catchError(() => loadConfig({ [name]: 'bad value' }))
      t.equal(err?.message, `invalid configuration: ${name}="bad value": expected ${s.expected!}`, name)
    }
  }
})

t.test('a password with ":" is refused, because SRS splits Basic credentials on it', async (t) => {
  t.throws(() => loadConfig({ SRS_API_PASSWORD: 'a:b', SRS_API_USERNAME: 'u' }), ConfigError)
})

t.test('a bad value fails at start, naming the variable and the value', async (t) => {
  const cases: Array<[string, string]> = [
    ['PORT', '70000'], ['PORT', 'abc'], ['FAIL_MODE', 'maybe'], ['SRS_API_URL', 'srs:1985'],
    ['TAKEOVER_TIMEOUT_MS', '0'], ['LOG_LEVEL', 'loud'], ['SRS_API_URL', 'http://h:1985/api']
  ]
  for (const [name, value] of cases) {
    const err = catchError(() => loadConfig({ [name]: value }))
    t.type(err, ConfigError, `${name}=${value} is refused`)
    t.match(err?.message, `${name}=${JSON.stringify(value)}`, 'the message names the variable and value')
  }
})

t.test('RECONCILE_INTERVAL_MS may be 0 (off)', async (t) => {
  t.equal(loadConfig({ RECONCILE_INTERVAL_MS: '0' }).RECONCILE_INTERVAL_MS, 0)
})

function catchError (fn: () => unknown): Error | undefined {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  return undefined
}
