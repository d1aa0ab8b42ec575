import { join } from 'node:path'
import t, { type Test } from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { CALLBACK_PREFIXES } from '../src/app.js'
import { startApp, waitFor, type TestApp } from './fixtures/app.js'
import { Gateway, type Routed } from './fixtures/gateway.js'
import { RedisServer } from './fixtures/redis.js'
import { SlowProxy } from './fixtures/slow-proxy.js'
import { SrsSimulator, type HookCall } from './fixtures/srs-sim.js'

/**
 * Two srs-hooks replicas reach a real redis-server through a proxy that makes it slow (each chunk
 * held longer than REDIS_TIMEOUT_MS), hung or gone, while two newcomers, one on each replica, take
 * one stream over from the same stale holder at once. docs/takeover-evidence.md says what happens:
 * a slow Redis holds no lock and nobody is evicted; an unreachable one degrades to local locks,
 * logged once per outage and counted.
 */

const redis = await RedisServer.start(t)

const TAKEOVER_TIMEOUT_MS = 1500
const REDIS_TIMEOUT_MS = 150
/** Each chunk, either way, is held this long: a round trip takes 800 ms, past REDIS_TIMEOUT_MS. */
const SLOW_MS = 400
/** The bound on any hook: the takeover's, and a margin for the machine. */
const HOOK_BOUND_MS = TAKEOVER_TIMEOUT_MS + 1500

const clientOf = (r: Routed): string => { try { return String(JSON.parse(r.body).client_id) } catch { return '' } }

async function twoReplicas (t: Test, env: Record<string, string> = {}) {
  const proxy = await SlowProxy.start(t, { port: redis.port })
  const sim = await SrsSimulator.start({ version: '6', releaseDelayMs: 30 })
  t.teardown(() => sim.close())
  const replicaEnv = {
    SRS_API_URL: sim.apiUrl,
    REDIS_URL: proxy.redisUrl,
    REDIS_PREFIX: redis.prefix(),
    REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
    TAKEOVER_TIMEOUT_MS: String(TAKEOVER_TIMEOUT_MS),
    ...env
  }
  const a = await startApp(t, { ...replicaEnv, DATA_DIR: join(t.testdir(), 'a') })
  const b = await startApp(t, { ...replicaEnv, DATA_DIR: join(t.testdir(), 'b') })
  const replicas: TestApp[] = [a, b]
  for (const r of replicas) {
    await r.app.srsServers.discover()
    await waitFor(() => r.app.redis!.health.up && r.app.redis!.health.subscribed, 5000, 'the replica\'s link to Redis')
  }
  const gw = await Gateway.start(() => replicas.map((r) => r.url))
  t.teardown(() => gw.close())
  sim.setHookBase(gw.url + CALLBACK_PREFIXES[0])
  // Each client's hooks go to one replica, the clients' in turn.
  let turn = 0
  const replicaOf = new Map<string, number>()
  gw.route = (r) => {
    const c = clientOf(r)
    if (!replicaOf.has(c)) replicaOf.set(c, turn++ % 2)
    return replicaOf.get(c)!
  }
  return { proxy, sim, a, b, gw, next: (replica: number) => { turn = replica } }
}

const publishCall = (sim: SrsSimulator, clientId: string): HookCall | undefined =>
  sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === clientId)

/** `n` simultaneous publishes from one IP with a wrong signed key: the clients, and the code each on_publish got. */
async function wrongKeys (sim: SrsSimulator, n: number) {
  const bad = `?expires=${Math.floor(Date.now() / 1000) + 60}&sign=${'0'.repeat(64)}`
  const attempts = await Promise.all(Array.from({ length: n }, async (_, i) =>
    await sim.publish({ app: 'live', stream: `cam${i}`, param: bad, ip: '6.6.6.6' })))
  return { attempts, codes: attempts.map((a) => JSON.parse(publishCall(sim, a.clientId)!.replyBody).code as number) }
}

const outcomeOf = (replicas: TestApp[], clientId: string): unknown =>
  replicas.flatMap((r) => r.logs.lines).find((l) => l.action === 'on_publish' && l.client === clientId)?.outcome

const metric = async (r: TestApp, re: RegExp): Promise<number> => {
  const m = re.exec(await (await fetch(`${r.url}/metrics`)).text())
  return m === null ? 0 : Number(m[1])
}
const DEGRADED = /srs_hooks_redis_degraded_total\{op="lock"\} (\d+)/

t.test('two replicas race through a slow Redis: no lock is held, nobody is evicted, both hooks are answered within the bound; Redis fast again, the next takeover evicts once', async (t) => {
  const { proxy, sim, a, b, next } = await twoReplicas(t)
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(x.ok, 'the holder publishes')
  await waitFor(async () => (await b.app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId === x.clientId, 5000, 'the holder in the shared table')
  proxy.set('slow', SLOW_MS)
  next(0)
  const [n1, n2] = await Promise.all([sim.publish({ app: 'live', stream: 'cam1' }), sim.publish({ app: 'live', stream: 'cam1' })])

  t.same(sim.kicks, [], 'no shared lock held: nobody is evicted')
  t.equal(sim.activePublisher('live', 'cam1'), x.clientId, 'SRS keeps its holder')
  t.same([n1.ok, n2.ok], [false, false], 'no newcomer is admitted while the holder is on')
  for (const n of [n1, n2]) {
    const call = publishCall(sim, n.clientId)!
    t.ok(call.ms < HOOK_BOUND_MS, `on_publish of ${n.clientId} answered in ${call.ms} ms`)
    t.equal(JSON.parse(call.replyBody).code, 0, 'allowed: SRS decides')
  }
  t.same([outcomeOf([a, b], n1.clientId), outcomeOf([a, b], n2.clientId)], ['bound-exhausted', 'bound-exhausted'], 'one newcomer on each replica, each out of its bound on the lock')
  for (const r of [a, b]) {
    t.ok(r.logs.find((l) => l.level === 40 && String(l.msg).startsWith('a shared lock could not be taken')), 'the failed lock is logged at warn')
    t.notOk(r.logs.find((l) => /shared locks degrade/.test(String(l.msg))), 'a slow Redis is no degraded mode')
    t.equal(await metric(r, DEGRADED), 0, 'and none is counted')
  }
  for (const c of sim.hookCalls) t.ok(c.ms < HOOK_BOUND_MS, `${c.hook} of ${c.clientId} answered in ${c.ms} ms`)

  // Redis fast again: the locks a timed-out try may have left are let go or lapse, and a takeover proceeds.
  proxy.set('fast')
  await waitFor(() => a.app.redis!.up && b.app.redis!.up, 10_000, 'both replicas back on Redis')
  const retry = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(retry.ok, 'the next newcomer takes over')
  t.same(sim.kicks, [x.clientId], 'one eviction, of the stale holder')
})

t.test('two replicas race while Redis answers PING at once but runs each lock script slowly: no lock is held, nobody is evicted, no degraded mode', async (t) => {
  const { proxy, sim, a, b, next } = await twoReplicas(t)
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  await waitFor(async () => (await b.app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId === x.clientId, 5000, 'the holder in the shared table')
  proxy.set('slow-scripts', SLOW_MS)
  t.teardown(() => { proxy.set('fast') })
  next(0)
  const [n1, n2] = await Promise.all([sim.publish({ app: 'live', stream: 'cam1' }), sim.publish({ app: 'live', stream: 'cam1' })])
  t.ok(proxy.heldScripts > 0, `lock scripts held: ${proxy.heldScripts}`)
  t.same(sim.kicks, [], 'nobody is evicted')
  t.equal(sim.activePublisher('live', 'cam1'), x.clientId, 'SRS keeps its holder')
  t.same([n1.ok, n2.ok], [false, false])
  t.same([outcomeOf([a, b], n1.clientId), outcomeOf([a, b], n2.clientId)], ['bound-exhausted', 'bound-exhausted'])
  for (const c of sim.hookCalls) t.ok(c.ms < HOOK_BOUND_MS, `${c.hook} of ${c.clientId} answered in ${c.ms} ms`)
  for (const r of [a, b]) {
    t.equal(await metric(r, DEGRADED), 0, 'a slow script is no degraded mode')
    t.notOk(r.logs.find((l) => /shared locks degrade/.test(String(l.msg))))
  }
})

t.test('two replicas race while Redis hangs (connections open, nothing answers): nobody is evicted, every hook answered within its bound', async (t) => {
  const { proxy, sim, a, b, next } = await twoReplicas(t)
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  proxy.set('stalled')
  t.teardown(() => { proxy.set('fast') })
  next(0)
  const [n1, n2] = await Promise.all([sim.publish({ app: 'live', stream: 'cam1' }), sim.publish({ app: 'live', stream: 'cam1' })])
  t.same(sim.kicks, [], 'nobody is evicted')
  t.equal(sim.activePublisher('live', 'cam1'), x.clientId)
  t.same([n1.ok, n2.ok], [false, false])
  for (const c of sim.hookCalls) t.ok(c.ms < HOOK_BOUND_MS, `${c.hook} of ${c.clientId} answered in ${c.ms} ms`)
  for (const r of [a, b]) t.equal(await metric(r, DEGRADED), 0, 'no degraded mode')
})

t.test('two replicas race while Redis cannot be reached: each degrades to its own lock, logged once per outage and counted at each use; only the stale holder is evicted', async (t) => {
  const { proxy, sim, a, b, next } = await twoReplicas(t)
  const x1 = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const x2 = await sim.publish({ app: 'live', stream: 'cam2', stalled: true })
  proxy.set('down')
  t.teardown(() => { proxy.set('fast') })
  await waitFor(() => a.app.redis!.unreachable && b.app.redis!.unreachable, 5000, 'both links cut')

  next(0)
  const round1 = await Promise.all([sim.publish({ app: 'live', stream: 'cam1' }), sim.publish({ app: 'live', stream: 'cam1' })])
  next(0)
  const round2 = await Promise.all([sim.publish({ app: 'live', stream: 'cam2' }), sim.publish({ app: 'live', stream: 'cam2' })])

  const newcomers = [...round1, ...round2].map((n) => n.clientId)
  t.ok(sim.kicks.length > 0, 'the stale holders are taken over')
  t.same([...new Set(sim.kicks)].sort(), [x1.clientId, x2.clientId].sort(), 'only the stale holders are evicted, never a newcomer')
  t.notOk(sim.kicks.some((k) => newcomers.includes(k)))
  for (const [round, stream] of [[round1, 'cam1'], [round2, 'cam2']] as const) {
    const active = sim.activePublisher('live', stream)
    t.ok(round.some((n) => n.clientId === active), `${stream}: a newcomer publishes`)
    t.equal(round.filter((n) => n.ok).length, 1, `${stream}: SRS admits one publisher`)
  }
  for (const c of sim.hookCalls) t.ok(c.ms < HOOK_BOUND_MS, `${c.hook} of ${c.clientId} answered in ${c.ms} ms`)

  let uses = 0
  for (const r of [a, b]) {
    const lines = r.logs.lines.filter((l) => /shared locks degrade/.test(String(l.msg)))
    t.equal(lines.length, 1, 'the degraded mode logged once for the outage')
    const counted = await metric(r, DEGRADED)
    t.ok(counted >= 2, `counted at each use (${counted})`)
    uses += counted
  }
  t.ok(uses >= 4, 'two takeovers on each replica, each under a degraded lock')

  // Redis back, and down again: a new outage is logged again.
  proxy.set('fast')
  await waitFor(() => a.app.redis!.up, 10_000, 'Redis back')
  proxy.set('down')
  await waitFor(() => a.app.redis!.unreachable, 5000, 'cut again')
  const y = await sim.publish({ app: 'live', stream: 'cam3', stalled: true })
  next(0)
  t.ok((await sim.publish({ app: 'live', stream: 'cam3' })).ok)
  t.ok(sim.kicks.includes(y.clientId))
  t.equal(a.logs.lines.filter((l) => /shared locks degrade/.test(String(l.msg))).length, 2, 'logged once more, for the new outage')
})

t.test('simultaneous brute-force attempts from one IP through a slow Redis do not all pass: each is counted before its key is checked', async (t) => {
  const SECRET = 'publish-secret-0123456789abcdef'
  const MAX = 3
  const { proxy, sim } = await twoReplicas(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, AUTH_FAIL_MAX: String(MAX), AUTH_FAIL_WINDOW_MS: '60000' })
  proxy.set('slow', SLOW_MS)
  t.teardown(() => { proxy.set('fast') })
  const N = 12
  const { attempts, codes } = await wrongKeys(sim, N)
  const limited = codes.filter((c) => c === Codes.AUTH_RATE_LIMITED).length
  t.equal(attempts.filter((n) => n.ok).length, 0, 'no attempt publishes')
  // Redis cannot count for both: each replica counts what it sees, at most MAX checked on each.
  t.ok(limited >= N - 2 * MAX, `${limited} of ${N} refused by the limit, unchecked`)
  for (const c of sim.hookCalls) t.ok(c.ms < HOOK_BOUND_MS, `${c.hook} answered in ${c.ms} ms`)
  // A right key from that IP is refused too while the window runs.
  const right = await sim.publish({ app: 'live', stream: 'cam0', param: signedQuery(SECRET, 'live/cam0', Math.floor(Date.now() / 1000) + 60), ip: '6.6.6.6' })
  t.equal(JSON.parse(publishCall(sim, right.clientId)!.replyBody).code, Codes.AUTH_RATE_LIMITED)
})

t.test('simultaneous wrong keys from one IP on two replicas through a Redis that answers slowly but in time: exactly AUTH_FAIL_MAX are checked, the rest refused unchecked', async (t) => {
  const SECRET = 'publish-secret-0123456789abcdef'
  const MAX = 3
  // Each command answered in about 120 ms, within REDIS_TIMEOUT_MS: the counts are Redis's, shared.
  const { proxy, sim, a, b } = await twoReplicas(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, AUTH_FAIL_MAX: String(MAX), AUTH_FAIL_WINDOW_MS: '60000', REDIS_TIMEOUT_MS: '2000' })
  proxy.set('latency', 60)
  t.teardown(() => { proxy.set('fast') })
  const N = 12
  const { attempts, codes } = await wrongKeys(sim, N)
  t.equal(attempts.filter((n) => n.ok).length, 0, 'no attempt publishes')
  t.equal(codes.filter((c) => c !== Codes.AUTH_RATE_LIMITED).length, MAX, `AUTH_FAIL_MAX attempts checked, however many came at once (${codes.join(', ')})`)
  t.equal(codes.filter((c) => c === Codes.AUTH_RATE_LIMITED).length, N - MAX, 'the others refused unchecked')
  for (const r of [a, b]) {
    t.equal(r.app.redis!.outages, 0, 'Redis answered every count in time')
    t.ok(r.logs.find((l) => l.action === 'on_publish'), 'each replica had its share of the attempts')
  }
})
