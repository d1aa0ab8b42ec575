import t, { type Test } from 'tap'
import { pino } from 'pino'
import { LogCapture } from './fixtures/app.js'
import { json, StubServer } from './fixtures/stub-server.js'
import { UNKNOWN, ZlmServers } from '../src/zlm/servers.js'

/**
 * The ZLMediaKit servers by mediaServerId: routing hooks while ids are unknown, and learning each
 * server's secret from on_server_started when several share one.
 */

/** A ZLMediaKit API that knows its id and secret (and answers getServerConfig only). */
async function zlm (t: Test, id: string, secret: string): Promise<string> {
  const stub = await StubServer.start((_req, res, body) => {
    const s = new URLSearchParams(body).get('secret')
    json(res, s === secret ? { code: 0, data: [{ 'general.mediaServerId': id, 'hook.timeoutSec': '10' }] } : { code: -100, msg: 'Incorrect secret' })
  })
  t.teardown(() => stub.close())
  return stub.url
}

function servers (urls: string[], secret?: string, logs = new LogCapture()): ZlmServers {
  return new ZlmServers({ urls, secret, timeoutMs: 300, retries: 0, log: pino({ level: 'debug' }, logs.stream), now: Date.now, rediscoverMs: 0 })
}

t.test('one server whose id is not known yet takes every hook; once known, another id is unknown', async (t) => {
  const url = await zlm(t, 'zlm-a', 's')
  const one = servers([url])
  t.teardown(() => one.close())
  t.equal(one.nodes[0]!.server.hookBudgetMs, 9000, 'before its configuration is read: ZLMediaKit\'s default hook.timeoutSec')
  t.equal(one.lookup('zlm-x'), one.nodes[0], 'lookup: presumed the one')
  t.equal(await one.resolve('zlm-x', Date.now() + 500), one.nodes[0], 'resolve: its API cannot say (no secret): presumed the one')
  const known = servers([url], 's')
  t.teardown(() => known.close())
  t.equal(await known.resolve('zlm-a', Date.now() + 500), known.nodes[0])
  t.equal(known.lookup('zlm-x'), UNKNOWN)
  t.equal(known.get('zlm-a'), known.nodes[0]!.server)
  t.equal(known.get(url), known.nodes[0]!.server, 'also by its API URL')
})

t.test('several servers: an unknown id is unknown, logged once with what is known', async (t) => {
  const logs = new LogCapture()
  const two = servers([await zlm(t, 'zlm-a', 's'), await zlm(t, 'zlm-b', 'other')], 's', logs)
  t.teardown(() => two.close())
  t.equal(two.lookup('zlm-x'), UNKNOWN)
  t.equal(await two.resolve('zlm-y', Date.now() + 500), UNKNOWN)
  t.equal(await two.resolve('zlm-a', Date.now() + 500), two.nodes[0], 'found by rediscovery')
  t.equal(two.unknownHooks, 2)
  const warned = await logs.wait((l) => l.mediaServerId === 'zlm-x')
  t.same(warned.known.map((k: { mediaServerId: string | null }) => k.mediaServerId), [null, null], 'the ids known when it came')
})

t.test('servers sharing a secret: on_server_started teaches it to the one that reports the same id', async (t) => {
  const a = await zlm(t, 'zlm-a', 'shared-secret')
  const b = await zlm(t, 'zlm-b', 'shared-secret')
  const two = servers([a, b])
  t.teardown(() => two.close())
  const node = await two.started('zlm-b', 'shared-secret', Date.now() + 1000)
  t.equal(node, two.nodes[1], 'zlm-a accepts the secret but is another server: not it')
  t.same([two.nodes[0]!.learntSecret, two.nodes[1]!.learntSecret], [undefined, 'shared-secret'])
  t.equal(await two.started('zlm-c', 'wrong', Date.now() + 1000), undefined)
})

t.test('with ZLM_SECRET set, on_server_started of an unknown id sends us to ask every server', async (t) => {
  const set = servers([await zlm(t, 'zlm-a', 's'), await zlm(t, 'zlm-b', 's')], 's')
  t.teardown(() => set.close())
  t.equal(await set.started('zlm-b', undefined, Date.now() + 1000), set.nodes[1])
  t.equal(await set.started('zlm-b', 's', Date.now() + 1000), set.nodes[1], 'known: its configuration read again')
})
