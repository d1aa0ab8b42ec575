import t, { type Test } from 'tap'
import { pino } from 'pino'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { encodePart, redactUrl, RedisLink, type RecoveryInfo } from '../src/redis/link.js'
import { RedisSettings } from '../src/redis/settings.js'
import { BOUND, LogCapture, RedisServer, openLink, restoreAtEnd, timed, waitFor } from './fixtures/redis.js'

const redis = await RedisServer.start(t)

/** A link built by hand (openLink waits for it to be up). */
function newLink (t: Test, url: string, prefix = redis.prefix()): { link: RedisLink, logs: LogCapture } {
  const logs = new LogCapture()
  const link = new RedisLink({ url, prefix, log: pino({ level: 'debug' }, logs.stream), timeoutMs: 100, reconnectMaxMs: 100, probeMs: 50 })
  t.teardown(() => link.close())
  return { link, logs }
}

t.test('settings: REDIS_URL is optional, the prefix and the bound have defaults, bad values are refused', async (t) => {
  const S = Type.Object(RedisSettings)
  const defaults = Value.Parse(S, Value.Default(S, {}))
  t.same(defaults, { REDIS_PREFIX: 'srs-hooks:', REDIS_TIMEOUT_MS: 250 })
  t.ok(Value.Check(S, { ...defaults, REDIS_URL: 'redis://:pw@10.0.0.5:6379/2' }))
  t.ok(Value.Check(S, { ...defaults, REDIS_URL: 'rediss://cache.example:6380' }))
  t.notOk(Value.Check(S, { ...defaults, REDIS_URL: 'http://cache.example:6379' }), 'not a Redis URL')
  t.notOk(Value.Check(S, { ...defaults, REDIS_PREFIX: 'two words' }), 'no spaces in a prefix')
  t.notOk(Value.Check(S, { ...defaults, REDIS_PREFIX: '' }))
  t.notOk(Value.Check(S, { ...defaults, REDIS_TIMEOUT_MS: 0 }))
  t.match(Value.Convert(S, { REDIS_TIMEOUT_MS: '300' }), { REDIS_TIMEOUT_MS: 300 })
})

t.test('key parts: distinct names never share a key, nor leave the prefix', async (t) => {
  const names = ['a', 'a:b', 'a%3Ab', 'a b', 'a\ud800', 'a\ufffd', '\udc00\ud800', '#', '%23', '', 'ä', '*', '{x}', 'a\nb', '../x']
  const parts = names.map(encodePart)
  t.equal(new Set(parts).size, names.length, 'one part per name')
  for (const p of parts) t.notMatch(p, /[:\s]/, `${JSON.stringify(p)} has no separator or space`)
  const { link } = await openLink(t, redis, { prefix: 'deploy-a:' })
  t.equal(link.key('events'), 'deploy-a:events')
  t.equal(link.key('pub', 'srs-1'), 'deploy-a:pub:srs-1')
  t.not(link.key('lock', 'a', 'b'), link.key('lock', 'a:b'))
  t.ok(link.key('lock', '../../x').startsWith('deploy-a:lock:'))
  t.equal(link.channel('signals'), 'deploy-a:signals')
})

t.test('the password never reaches a log line or /readyz', async (t) => {
  t.equal(redactUrl('redis://user:s3cret@cache:6379/2'), 'redis://user:***@cache:6379/2')
  t.equal(redactUrl('redis://cache:6379'), 'redis://cache:6379')
  t.equal(redactUrl('::not a url'), '(unparseable REDIS_URL)')

  const locked = await RedisServer.start(t, { password: 's3cret-pw' })
  const good = newLink(t, locked.url)
  await waitFor(() => good.link.check().ok, 5000, 'the link and its subscription')
  t.equal(good.link.check().msg, `Redis at redis://:***@127.0.0.1:${locked.port}`)

  const bad = newLink(t, `redis://:wrong-pw@127.0.0.1:${locked.port}`)
  await waitFor(() => bad.link.health.lastError !== null, 5000, 'the refusal')
  t.equal(bad.link.up, false)
  t.notOk(bad.link.check().ok)
  t.match(bad.link.check().msg, /WRONGPASS|invalid username-password/)
  const text = JSON.stringify([...good.logs.lines, ...bad.logs.lines]) + bad.link.check().msg
  t.notMatch(text, /s3cret-pw|wrong-pw/, 'no password anywhere')
  t.match(text, /\*\*\*/)
})

t.test('connected: up and subscribed, messages reach a channel, and the first connection is no "return"', async (t) => {
  const { link, logs } = newLink(t, redis.url)
  const recovered: RecoveryInfo[] = []
  link.onRecovered((info) => { recovered.push(info) })
  const got: string[] = []
  link.subscribe('news', (m) => { got.push(m) })
  await waitFor(() => link.health.subscribed && link.up, 5000, 'the link')
  t.same(link.check(), { ok: true, msg: `Redis at ${redis.url}` })
  t.equal(logs.find('connected to Redis').length, 1)

  const other = await openLink(t, redis, { prefix: link.prefix })
  const r = await other.link.call('publish', async (c) => await c.publish(link.channel('news'), 'hello'))
  t.same(r, { ok: true, value: 1 }, 'one subscriber')
  await waitFor(() => got.length === 1, 2000, 'the message')
  t.same(got, ['hello'])
  // A channel added once connected is subscribed at once.
  const late: string[] = []
  link.subscribe('late', (m) => { late.push(m) })
  await waitFor(async () => {
    await other.link.call('publish', async (c) => await c.publish(link.channel('late'), 'x'))
    return late.length > 0
  }, 2000, 'the late channel')
  t.same(recovered, [])
  t.same(link.failures, {})
  t.equal(link.outages, 0)
})

t.test('Redis stopped: calls fail at once and are counted, the outage is logged once; restarted, the listener hears it once', async (t) => {
  restoreAtEnd(t, redis)
  const { link, logs } = await openLink(t, redis, { prefix: redis.prefix() })
  const recovered: RecoveryInfo[] = []
  link.onRecovered((info) => { recovered.push(info) })
  let resubscribed = 0
  link.onResubscribed(() => { resubscribed++ })
  link.subscribe('x', () => {})
  await redis.stop()
  await waitFor(() => !link.up, 2000, 'the link to notice')
  const noticed = performance.now()
  for (let i = 0; i < 5; i++) {
    const [r, ms] = await timed(link.call('store.get', async (c) => await c.get('k')))
    t.equal(r.ok, false)
    if (!r.ok) t.equal(r.error.kind, 'unavailable')
    t.ok(ms < 50, `failed at once (${ms.toFixed(1)} ms)`)
  }
  t.equal(link.failures['store.get'], 5)
  t.equal(logs.find('Redis failed').length, 1, 'one line for the outage, not one per command')
  const h = link.health
  t.equal(h.up, false)
  t.equal(h.subscribed, false)
  t.type(h.lastError, 'string')
  t.match(link.check(), { ok: false, msg: /is unusable since .*this replica uses its local state/ })

  await redis.restart()
  await waitFor(() => recovered.length === 1, 5000, 'the return')
  const outage = performance.now() - noticed
  t.equal(link.up, true)
  t.ok(recovered[0]!.downMs >= outage - 50 && recovered[0]!.downMs <= outage + 5000, `the outage's length (${recovered[0]!.downMs} ms; seen here from its notice: ${outage.toFixed(0)} ms)`)
  t.type(recovered[0]!.error, 'string')
  t.equal(logs.find('Redis is back').length, 1)
  t.same(await link.call('store.get', async (c) => await c.get('k')), { ok: true, value: null })
  await waitFor(() => link.health.subscribed && resubscribed > 0, 5000, 'the subscription')
  t.equal(link.outages, 1)
  t.equal(recovered.length, 1, 'heard once')
})

t.test('Redis hung (paused): a call returns within its bound, later ones at once, and the probe sees it back', async (t) => {
  restoreAtEnd(t, redis)
  const { link, logs } = await openLink(t, redis, { prefix: redis.prefix() })
  let recovered = 0
  link.onRecovered(() => { recovered++ })
  redis.pause()
  const [r, ms] = await timed(link.call('lock.acquire', async (c) => await c.set('k', 'v')))
  t.ok(ms < BOUND, `bounded (${ms.toFixed(0)} ms)`)
  t.match(r, { ok: false, error: { kind: 'timeout' } })
  // One slow reply does not make Redis down: the PING sent after it gets no answer either.
  await waitFor(() => !link.up, BOUND, 'the PING after the timeout to fail')
  const [r2, ms2] = await timed(link.call('lock.acquire', async (c) => await c.set('k', 'v')))
  t.match(r2, { ok: false, error: { kind: 'unavailable' } })
  t.ok(ms2 < 20, `at once while down (${ms2.toFixed(1)} ms)`)
  t.equal(link.failures['lock.acquire'], 2)
  // The probe finds it still hanging, and the outage stays one log line.
  await waitFor(() => link.health.lastError?.includes('PING'), 2000, 'a probe to fail')
  t.equal(logs.find('Redis failed').length, 1)
  t.equal(recovered, 0)
  redis.resume()
  await waitFor(() => recovered === 1, 5000, 'the return')
  t.same(await link.call('get', async (c) => await c.get('k')), { ok: true, value: 'v' }, 'the write went through once Redis resumed')
})

t.test('one call past its bound while Redis answers a PING at once: the link stays up and the other calls go on', async (t) => {
  const { link, logs } = await openLink(t, redis, { prefix: redis.prefix() })
  await link.call('set', async (c) => await c.set(link.key('k'), 'v'))
  // An operation that is slow on its own (its reply held here until the test lets it go), while
  // Redis itself answers at once.
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => { release() })
  const [r, ms] = await timed(link.call('store.list', async (c) => { await held; return await c.get(link.key('k')) }))
  t.match(r, { ok: false, error: { kind: 'timeout' } })
  t.ok(ms < BOUND, `bounded (${ms.toFixed(0)} ms)`)
  t.same(await link.call('store.get', async (c) => await c.get(link.key('k'))), { ok: true, value: 'v' }, 'the next call, sent while the PING is out, goes to Redis')
  // The PING went before this one on the connection: its verdict is in once this is answered and the microtasks have run.
  await link.client.ping()
  await new Promise((resolve) => { setImmediate(resolve) })
  t.equal(link.up, true, 'still up')
  t.equal(link.outages, 0, 'no outage')
  t.same(logs.find('Redis failed'), [], 'none logged')
  t.equal(link.failures['store.list'], 1, 'the slow call is counted as a failure of its operation')
})

t.test('a connection that answers nothing for long is dropped and made again', async (t) => {
  restoreAtEnd(t, redis)
  const { link } = await openLink(t, redis, { prefix: redis.prefix(), timeoutMs: 50 })
  let recovered = 0
  link.onRecovered(() => { recovered++ })
  redis.pause()
  await link.call('get', async (c) => await c.get('k'))
  // The probe's PINGs go unanswered for socketTimeout (1 s here): the socket is dropped.
  await waitFor(() => link.health.lastError?.includes('Socket timeout'), 3000, 'the connection to be dropped')
  redis.resume()
  await waitFor(() => recovered === 1, 5000, 'the return')
  t.same(await link.call('get', async (c) => await c.get(link.key('k'))), { ok: true, value: null })
})

t.test('a caller\'s deadline shorter than the bound is not a Redis failure', async (t) => {
  restoreAtEnd(t, redis)
  const { link } = await openLink(t, redis, { prefix: redis.prefix() })
  redis.pause()
  const [r, ms] = await timed(link.call('lock.acquire', async (c) => await c.get('k'), 20))
  t.match(r, { ok: false, error: { kind: 'deadline' } })
  t.ok(ms < 20 + 150, `within the caller's deadline (${ms.toFixed(0)} ms)`)
  t.equal(link.up, true)
  t.same(link.failures, {})
  redis.resume()
})

t.test('a reply saying Redis cannot serve is an outage; any other error is counted, logged once, and leaves the link up', async (t) => {
  const { link, logs } = await openLink(t, redis, { prefix: redis.prefix() })
  let recovered = 0
  link.onRecovered(() => { recovered++ })
  const key = link.key('str')
  await link.call('set', async (c) => await c.set(key, 'x'))
  const wrongType = async (): Promise<unknown> => await link.call('store.get', async (c) => await c.hget(key, 'f'))
  t.match(await wrongType(), { ok: false, error: { kind: 'error', message: /WRONGTYPE/ } })
  await wrongType()
  t.equal(link.up, true)
  t.equal(link.failures['store.get'], 2)
  t.equal(logs.find('a Redis operation failed').length, 1, 'logged once')
  await link.call('store.get', async (c) => await c.get(key))
  await wrongType()
  t.equal(logs.find('a Redis operation failed').length, 2, 'logged again after it worked in between')

  t.match(await link.call('parse', async () => JSON.parse('{')), { ok: false, error: { kind: 'error' } })
  // eslint-disable-next-line no-throw-literal -- what a careless library throws
  t.match(await link.call('odd', async () => { throw 'not an Error' }), { ok: false, error: { message: 'not an Error' } })
  t.equal(link.up, true)
  t.equal(link.outages, 0)

  const loading = await link.call('eval', async (c) => await c.eval("return redis.error_reply('LOADING Redis is loading the dataset in memory')", 0))
  t.match(loading, { ok: false, error: { kind: 'error', message: /LOADING/ } })
  t.equal(link.outages, 1, 'an outage')
  await waitFor(() => recovered === 1, 2000, 'the probe to find it answering')
  t.equal(logs.find('Redis is back').length, 1)
})

t.test('Redis unreachable at first: logged once; its first connection then counts as a return', async (t) => {
  const later = await RedisServer.start(t)
  await later.stop()
  const { link, logs } = newLink(t, later.url)
  let recovered = 0
  link.onRecovered(() => { recovered++ })
  await waitFor(() => link.health.lastError !== null, 2000, 'the failure')
  t.equal(link.up, false)
  t.match(await link.call('get', async (c) => await c.get('k')), { ok: false, error: { kind: 'unavailable', message: /ECONNREFUSED/ } })
  await waitFor(() => logs.find('cannot reach Redis').length === 1, 2000, 'the log line')
  await later.restart()
  await waitFor(() => recovered === 1, 5000, 'the return')
  t.equal(logs.find('cannot reach Redis').length, 1, 'one line, however many attempts')
})

t.test('defaults: the prefix srs-hooks: and a bound of 250 ms', async (t) => {
  const link = new RedisLink({ url: redis.url, log: pino({ level: 'silent' }) })
  t.teardown(() => link.close())
  t.equal(link.prefix, 'srs-hooks:')
  t.equal(link.timeoutMs, 250)
  await waitFor(() => link.up, 5000, 'the link')
  t.equal(link.health.since <= Date.now(), true)
})

t.test('before its first connection the link answers "unavailable" at once', async (t) => {
  const { link } = newLink(t, redis.url)
  const r = await link.call('get', async (c) => await c.get('k'))
  t.match(r, { ok: false, error: { kind: 'unavailable', message: /not connected yet/ } })
  t.match(link.check(), { ok: false, msg: /connecting/ })
})

t.test('a subscription that fails is reported by the ready check and retried until it works', async (t) => {
  const admin = await openLink(t, redis, { prefix: redis.prefix() })
  const user = `u${Date.now()}`
  const acl = async (...args: string[]): Promise<void> => {
    const r = await admin.link.call('acl', async (c) => await c.call('ACL', 'SETUSER', user, ...args))
    t.ok(r.ok, `ACL SETUSER ${args.join(' ')}`)
  }
  await acl('on', '>pw', '~*', 'resetchannels', '+@all')
  const { link } = newLink(t, `redis://${user}:pw@127.0.0.1:${redis.port}`)
  link.subscribe('signals', () => {})
  await waitFor(() => link.up, 5000, 'the link')
  t.match(link.check(), { ok: false, msg: /subscription for release signals and lock notices is not in place/ })
  t.equal(link.health.subscribed, false)
  await acl('allchannels')
  await waitFor(() => link.check().ok, 5000, 'the subscription')
})

t.test('return listeners: a failing one is logged and the others still hear it; a removed one does not', async (t) => {
  const { link, logs } = await openLink(t, redis, { prefix: redis.prefix() })
  const heard: string[] = []
  link.onRecovered(() => { throw new Error('sync failure') })
  link.onRecovered(async () => { throw new Error('async failure') })
  link.onRecovered(() => { heard.push('kept') })
  const remove = link.onRecovered(() => { heard.push('removed') })
  remove()
  const removeSub = link.onResubscribed(() => { heard.push('resubscribed') })
  removeSub()
  await link.call('eval', async (c) => await c.eval("return redis.error_reply('BUSY busy')", 0))
  await waitFor(() => heard.length === 1, 2000, 'the return')
  await waitFor(() => logs.find('a listener for Redis\'s return failed').length === 2, 2000, 'the failures logged')
  t.same(heard, ['kept'])
})

t.test('close: calls fail at once and are not counted; twice is harmless; a hung or stopped Redis does not hold it up', async (t) => {
  restoreAtEnd(t, redis)
  const a = await openLink(t, redis, { prefix: redis.prefix() })
  await a.link.close()
  await a.link.close()
  t.match(await a.link.call('get', async (c) => await c.get('k')), { ok: false, error: { kind: 'unavailable' } })
  t.same(a.link.failures, {})
  await waitFor(() => a.link.client.status === 'end', 2000, 'the connection to end')

  const b = await openLink(t, redis, { prefix: redis.prefix() })
  redis.pause()
  // Down now: close while the probe's PING is out.
  const client = b.link.client as unknown as { ping: () => Promise<string> }
  const ping = client.ping.bind(client)
  const probing = new Promise<void>((resolve) => { client.ping = async () => { resolve(); return await ping() } })
  await b.link.call('get', async (r) => await r.get('k'))
  await probing
  const [, ms] = await timed(b.link.close())
  t.ok(ms < BOUND, `closed within the bound while Redis hangs (${ms.toFixed(0)} ms)`)
  const probes = b.logs.lines.length
  redis.resume()
  await waitFor(() => b.link.client.status === 'end', 2000, 'the connection to end')
  t.equal(b.link.health.up, false, 'a closed link stays down')
  t.equal(b.logs.lines.length, probes, 'and says nothing more')

  const c = await openLink(t, redis, { prefix: redis.prefix() })
  await redis.stop()
  await waitFor(() => !c.link.up, 2000, 'the outage')
  const [, ms2] = await timed(c.link.close())
  t.ok(ms2 < 50, `closed at once while Redis is down (${ms2.toFixed(0)} ms)`)
  t.equal(c.logs.find('Redis is back').length, 0)
})
