import t from 'tap'
import { loadConfig } from '../src/config.js'
import { ConfigError } from '../src/errors.js'
import { durationMs, headersOf } from '../src/forward/settings.js'

/** The forwarding settings: their defaults, FORWARD_HEADERS in both forms, and clear refusals that never echo a header. */

t.test('defaults: nothing forwarded, 3 s, fail closed, 24 h, 500,000 rows, 60 s between attempts, 32 streams at once', async (t) => {
  const c = loadConfig({})
  t.equal(c.FORWARD_URL, undefined)
  t.equal(c.FORWARD_ZLM_URL, undefined)
  t.equal(c.FORWARD_TIMEOUT_MS, 3000)
  t.equal(c.FORWARD_FAIL_MODE, 'closed')
  t.equal(c.FORWARD_HEADERS, undefined)
  t.equal(durationMs(c.FORWARD_MAX_AGE), 86_400_000)
  t.equal(c.FORWARD_OUTBOX_MAX, 500_000)
  t.equal(c.FORWARD_RETRY_MAX_MS, 60_000)
  t.equal(c.FORWARD_CONCURRENCY, 128)
})

t.test('FORWARD_HEADERS: Name: value lines or a JSON object of strings, names lower-cased', async (t) => {
  t.same(headersOf(undefined), {})
  t.same(headersOf('  '), {})
  t.same(headersOf('Authorization: Bearer a:b\r\n\nX-Tenant: 7\n'), { authorization: 'Bearer a:b', 'x-tenant': '7' })
  t.same(headersOf('{"Authorization":"Bearer x","X-Tenant":"7"}'), { authorization: 'Bearer x', 'x-tenant': '7' })
})

t.test('FORWARD_HEADERS that cannot be sent is refused at start, its value never shown', async (t) => {
  const bad = [
    '{"Authorization": "Bearer x"', // not JSON
    '{"X-Tenant": 7}', // not a string
    'no colon here',
    ': no name',
    'Bad Name: x',
    'Idempotency-Key: mine', // srs-hooks sets it
    'Host: video',
    '{"X-A": "a\\nb"}' // a line break in a value
  ]
  for (const v of bad) {
    t.equal(headersOf(v), undefined, JSON.stringify(v))
    const err = t.throws(() => loadConfig({ FORWARD_HEADERS: v })) as ConfigError
    t.ok(err instanceof ConfigError)
    t.match(err.message, /FORWARD_HEADERS=\(hidden\): not a list of "Name: value" lines nor a JSON object of strings/)
  }
})
