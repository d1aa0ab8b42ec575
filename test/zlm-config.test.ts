import t from 'tap'
import { loadConfig } from '../src/config.js'
import { ConfigError } from '../src/errors.js'

t.test('ZLMediaKit is off unless ZLM_API_URL names it; SRS is on unless SRS_API_URL=none', async (t) => {
  const c = loadConfig({})
  t.same(c.zlmApis, [])
  t.equal(c.ZLM_SECRET, undefined)
  t.same([c.ZLM_API_TIMEOUT_MS, c.ZLM_API_RETRIES, c.ZLM_RTP_OPEN_TIMEOUT_MS], [1000, 2, 3000])
  t.equal(c.srsApis.length, 1)
  const z = loadConfig({ SRS_API_URL: 'none', ZLM_API_URL: 'http://zlm1:80, http://zlm2:8080/', ZLM_SECRET: 's3cret' })
  t.same(z.srsApis, [], 'SRS_API_URL=none: no SRS')
  t.same(z.zlmApis, ['http://zlm1', 'http://zlm2:8080'])
  t.equal(z.ZLM_SECRET, 's3cret')
})

t.test('a bad ZLM_API_URL fails at start, naming it; credentials belong in ZLM_SECRET, never echoed', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ZLM_API_URL: 'zlm1:80' }, /ZLM_API_URL="zlm1:80": zlm1:80 is not an origin: expected http:\/\/host:port \(or https:\/\/\)/],
    [{ ZLM_API_URL: 'http://admin:pw@zlm1' }, /ZLM_API_URL="http:\/\/\*\*\*@zlm1": http:\/\/\*\*\*@zlm1 carries credentials: give the origin alone/],
    [{ ZLM_API_URL: 'http://zlm1/index/api' }, /ZLM_API_URL="http:\/\/zlm1\/index\/api": http:\/\/zlm1\/index\/api must be an origin without a path: use http:\/\/zlm1$/],
    [{ ZLM_API_URL: ',' }, /ZLM_API_URL=",": names no server: expected http:\/\/host:port, several separated by commas$/],
    [{ ZLM_API_URL: 'http://zlm1,http://zlm1/' }, /ZLM_API_URL: http:\/\/zlm1 is listed twice/],
    [{ ZLM_API_RETRIES: '11' }, /ZLM_API_RETRIES/],
    [{ ZLM_SECRET: 'x'.repeat(2000) }, /ZLM_SECRET=\(hidden\)/],
    [{ SRS_API_URL: ',' }, /SRS_API_URL=",": names no server: expected http:\/\/host:port, several separated by commas, or none$/]
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), message, JSON.stringify(env).slice(0, 60))
    try { loadConfig(env) } catch (err) {
      t.ok(err instanceof ConfigError)
      t.notOk((err as Error).message.includes('pw@'), 'no credentials in the message')
    }
  }
})
