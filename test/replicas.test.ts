import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { RedisLink } from '../src/redis/link.js'
import { RedisLocks } from '../src/redis/locks.js'
import { CALLBACK_PREFIXES } from '../src/app.js'
import { startApp, waitFor, type TestApp } from './fixtures/app.js'
import { Gateway, type Routed } from './fixtures/gateway.js'
import { RedisServer } from './fixtures/redis.js'
import { SrsSimulator, type HookCall, type SimOptions } from './fixtures/srs-sim.js'

/**
 * Two srs-hooks replicas behind one gateway, sharing their state in a real Redis (REDIS_URL): any
 * replica may receive any hook, and they behave as one srs-hooks would.
 */

const redis = await RedisServer.start(t)

const hookOf = (r: Routed): string => r.path.slice(r.path.lastIndexOf('/') + 1).replace(/\?.*/, '')
const clientOf = (r: Routed): string => { try { return String(JSON.parse(r.body).client_id) } catch { return '' } }

async function twoReplicas (t: Test, env: Record<string, string> = {}, simOpts: SimOptions = {}) {
  const sim = await SrsSimulator.start({ version: '6', ...simOpts })
  t.teardown(() => sim.close())
  const prefix = redis.prefix()
  const replicaEnv = { SRS_API_URL: sim.apiUrl, REDIS_URL: redis.url, REDIS_PREFIX: prefix, REDIS_TIMEOUT_MS: '150', ...env }
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
  return { sim, a, b, gw }
}

const onPublishOf = (sim: SrsSimulator, clientId: string): HookCall =>
  sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.client_id === clientId)!

t.test('the holder\'s on_unpublish reaching replica A wakes the takeover waiting on replica B, well before B\'s API poll could see the release', async (t) => {
  const { sim, b, gw } = await twoReplicas(t)
  // Every on_publish goes to B, every other hook to A; the holder's on_close is held back 1.5 s,
  // so SRS keeps the client listed (no 2049 for B's poll) that long.
  gw.route = (r) => hookOf(r) === 'on_publish' ? 1 : 0
  gw.delay = (r) => hookOf(r) === 'on_close' ? 1500 : 0
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const n = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(n.ok, 'the newcomer publishes on its first attempt')
  t.same(sim.kicks, [x.clientId])
  const call = onPublishOf(sim, n.clientId)
  t.ok(call.ms < 1000, `B answered in ${call.ms} ms, on the signal from A (the poll would need the 1.5 s on_close)`)
  const line = await b.logs.wait((l) => l.type === 'takeover')
  t.match(line, { via: 'hook', incumbent: x.clientId })
  t.ok(gw.seen.some((r) => r.target === 0 && hookOf(r) === 'on_unpublish' && clientOf(r) === x.clientId), 'the on_unpublish went to A')
})

t.test('one stream\'s on_publish on A and B at once: one eviction, exactly one publisher afterwards', async (t) => {
  for (let round = 0; round < 3; round++) {
    const { sim, a, b, gw } = await twoReplicas(t, {}, { releaseDelayMs: 30 })
    let turn = 0
    const replicaOf = new Map<string, number>()
    gw.route = (r) => {
      if (hookOf(r) !== 'on_publish') return 0
      const c = clientOf(r)
      if (!replicaOf.has(c)) replicaOf.set(c, turn++ % 2)
      return replicaOf.get(c)!
    }
    const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
    const [n1, n2] = await Promise.all([sim.publish({ app: 'live', stream: 'cam1' }), sim.publish({ app: 'live', stream: 'cam1' })])
    t.same(sim.kicks, [x.clientId], `round ${round}: one eviction, of the stale holder`)
    const active = sim.activePublisher('live', 'cam1')
    t.ok(active === n1.clientId || active === n2.clientId, 'one newcomer publishes')
    t.equal([n1, n2].filter((n) => n.ok).length, 1, 'exactly one publisher afterwards')
    const outcomes = [...a.logs.lines, ...b.logs.lines].filter((l) => l.action === 'on_publish' && (l.client === n1.clientId || l.client === n2.clientId)).map((l) => l.outcome).sort()
    t.same(outcomes, ['lost-race', 'took-over'], 'the other lost the race and evicted nobody')
  }
})

t.test('the flap guard trips on alternating replicas', async (t) => {
  const { sim, a, b, gw } = await twoReplicas(t, { FLAP_MAX: '3', FLAP_WINDOW_MS: '60000', FLAP_COOLDOWN_MS: '120000' })
  let n = 0
  gw.route = (r) => hookOf(r) === 'on_publish' ? n++ % 2 : 0
  let holder = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.1' })
  const rounds: Array<number | 'took over'> = []
  for (let round = 1; round <= 5; round++) {
    const r = await sim.publish({ app: 'live', stream: 'cam1', ip: `10.0.0.${1 + round % 2}` })
    rounds.push(r.ok ? 'took over' : JSON.parse(onPublishOf(sim, r.clientId).replyBody).code)
    if (r.ok) holder = r
  }
  t.same(rounds, ['took over', 'took over', 'took over', Codes.TAKEOVER_FLAPPING, Codes.TAKEOVER_FLAPPING])
  t.equal(sim.activePublisher('live', 'cam1'), holder.clientId)
  t.ok(a.app.publisherStats.takeovers > 0 && b.app.publisherStats.takeovers > 0, 'both replicas took part')
})

t.test('the brute-force limit counts the failures both replicas see', async (t) => {
  const SECRET = 'publish-secret-0123456789abcdef'
  const { sim, gw } = await twoReplicas(t, { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, AUTH_FAIL_MAX: '3', AUTH_FAIL_WINDOW_MS: '60000' })
  let n = 0
  gw.route = (r) => hookOf(r) === 'on_publish' ? n++ % 2 : 0
  const bad = `?expires=${Math.floor(Date.now() / 1000) + 60}&sign=${'0'.repeat(64)}`
  for (let i = 0; i < 3; i++) await sim.publish({ app: 'live', stream: 'cam1', param: bad, ip: '6.6.6.6' })
  const limited = await sim.publish({ app: 'live', stream: 'cam1', param: signedQuery(SECRET, 'live/cam1', Math.floor(Date.now() / 1000) + 60), ip: '6.6.6.6' })
  t.equal(JSON.parse(onPublishOf(sim, limited.clientId).replyBody).code, Codes.AUTH_RATE_LIMITED, 'the 4th attempt is refused, whichever replica counted the first three')
})

t.test('GET events on either replica shows both replicas\' events', async (t) => {
  const { sim, a, b, gw } = await twoReplicas(t)
  // The takeover of cam1 happens on B, that of cam2 on A.
  const order = [0, 1, 0, 0]
  let n = 0
  gw.route = (r) => hookOf(r) === 'on_publish' ? order[n++] ?? 0 : 0
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  await sim.publish({ app: 'live', stream: 'cam1' })
  await sim.publish({ app: 'live', stream: 'cam2', stalled: true })
  await sim.publish({ app: 'live', stream: 'cam2' })
  const list = async (r: TestApp) => (await (await fetch(`${r.url}/admin-api/video/camera/events?type=takeover`)).json() as { items: Array<{ replica: string, stream: string }> }).items
  await waitFor(async () => (await list(a)).length === 2, 5000, 'both takeovers in the shared log')
  const fromA = await list(a)
  const fromB = await list(b)
  t.same(fromA, fromB, 'the same log on both')
  t.same(fromA.map((e) => e.stream).sort(), ['/live/cam1', '/live/cam2'])
  t.equal(new Set(fromA.map((e) => e.replica)).size, 2, 'logged by two replicas')
  t.ok(a.app.publisherStats.takeovers === 1 && b.app.publisherStats.takeovers === 1, 'one takeover on each')
})

t.test('Redis stopped in the middle of a takeover and restarted: every hook answered within its bound, no deadlock, state rebuilt', async (t) => {
  const { sim, a, b, gw } = await twoReplicas(t, { TAKEOVER_TIMEOUT_MS: '3000', RECONCILE_INTERVAL_MS: '0' }, { releaseDelayMs: 400 })
  gw.route = (r) => hookOf(r) === 'on_publish' ? 1 : 0
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  await waitFor(() => sim.kicks.includes(x.clientId), 5000, 'the kick')
  await redis.stop()
  const n = await pending
  t.ok(n.ok, 'the takeover completed without Redis (B saw the release through SRS\'s API)')
  for (const c of sim.hookCalls) t.ok(c.ms < 3500, `${c.hook} of ${c.clientId} answered in ${c.ms} ms`)
  // More hooks while Redis is down: answered from local state.
  const other = await sim.publish({ app: 'live', stream: 'cam2' })
  t.ok(other.ok)
  t.equal(b.app.redis!.up, false)
  await redis.restart()
  await waitFor(() => a.app.redis!.up && b.app.redis!.up, 10_000, 'both replicas back on Redis')
  // The reconciliation run on Redis's return rebuilt the shared table, which Redis lost.
  await waitFor(async () => (await a.app.publishers.store.get(sim.serverId, '/live/cam2'))?.clientId === other.clientId, 10_000, 'the table rebuilt')
  t.equal((await b.app.publishers.store.get(sim.serverId, '/live/cam1'))?.clientId, n.clientId)
  const ready = await (await fetch(`${a.url}/readyz`)).json() as { degraded: string[], checks: { redis: { ok: boolean } } }
  t.same(ready.degraded, [])
  t.equal(ready.checks.redis.ok, true)
})

t.test('while Redis hangs, /readyz names it without failing, and hooks are answered from local state', async (t) => {
  const { sim, a } = await twoReplicas(t)
  redis.pause()
  t.teardown(() => { if (redis.paused) redis.resume() })
  const r = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(r.ok)
  t.ok(onPublishOf(sim, r.clientId).ms < 1500, 'answered within REDIS_TIMEOUT_MS and a margin')
  await waitFor(() => !a.app.redis!.up, 2000, 'the link down (a PING unanswered after the timeout)')
  const ready = await fetch(`${a.url}/readyz`)
  t.equal(ready.status, 200)
  t.match(await ready.json(), { ready: true, degraded: ['redis'], checks: { redis: { ok: false, msg: /uses its local state/ } } })
  const metrics = await (await fetch(`${a.url}/metrics`)).text()
  t.match(metrics, /srs_hooks_redis_up 0/)
  redis.resume()
  await waitFor(() => a.app.redis!.up, 10_000, 'Redis back')
  t.match(await (await fetch(`${a.url}/metrics`)).text(), /srs_hooks_redis_failures_total\{op="[^"]+"\} [1-9]/)
})

t.test('each use of a degraded mode is exported by operation in /metrics', async (t) => {
  const { a } = await twoReplicas(t)
  t.notMatch(await (await fetch(`${a.url}/metrics`)).text(), /srs_hooks_redis_degraded_total\{/, 'none before')
  a.app.redis!.degrade('lock')
  a.app.redis!.degrade('lock')
  t.match(await (await fetch(`${a.url}/metrics`)).text(), /srs_hooks_redis_degraded_total\{op="lock"\} 2/)
})

t.test('a lock whose owner replica died expires within its lease, and the next takeover proceeds', async (t) => {
  const { sim, a, gw } = await twoReplicas(t, { TAKEOVER_TIMEOUT_MS: '400' })
  gw.route = () => 0
  // A replica that took the stream's lock and died: it never lets go.
  const dead = new RedisLink({ url: redis.url, log: pino({ level: 'silent' }), prefix: a.app.redis!.prefix, timeoutMs: 150 })
  await waitFor(() => dead.up, 5000, 'the doomed replica\'s link')
  // Its lease outlasts the two publishes below even on a loaded machine.
  const unlock = await new RedisLocks({ link: dead }).acquire('/live/cam1', 1000, 3000)
  t.ok(unlock)
  await dead.close()
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const blocked = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(blocked.code, 1028, 'while the dead replica\'s lease runs, the takeover ran out of its bound')
  t.match(a.logs.find((l) => l.type === 'bound-exhausted'), { stage: /another replica/ })
  const key = a.app.redis!.key('lock', '/live/cam1')
  await waitFor(async () => {
    const r = await a.app.redis!.call('test.exists', async (c) => await c.exists(key))
    return r.ok && r.value === 0
  }, 10_000, 'the lease to lapse')
  const retry = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(retry.ok, 'the next takeover proceeds')
  t.same(sim.kicks, [x.clientId])
})
