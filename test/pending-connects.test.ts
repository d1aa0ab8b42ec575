import t, { type Test } from 'tap'
import { MemoryPendingConnects, pendingConnectBytes, PENDING_CONNECT_TTL_MS, type PendingConnect } from '../src/publishers/connects.js'
import { loadConfig } from '../src/config.js'
import { startWorld, postHook } from './fixtures/app.js'
import type { SrsSimulator } from './fixtures/srs-sim.js'

/**
 * The clients awaiting their publish or close (SRS >= 7.0.62's deferred takeover) are bounded in
 * bytes as well as in records (MAX_PENDING_CONNECTS_BYTES, docs/limits.md): a flood of forged
 * on_connects with long names drops the oldest records, logged and counted, and a dropped record
 * never leads to an eviction.
 */

const pending = (i: number, stream = `cam${i}`): PendingConnect => ({
  server: 'srs1',
  clientId: `c${i}`,
  ref: { key: `/live/${stream}`, vhost: '__defaultVhost__', app: 'live', stream },
  credentials: { kind: 'none' },
  policy: 'takeover',
  at: i
})

function capture () {
  const lines: Array<{ obj: Record<string, unknown>, msg: string }> = []
  const log = { warn: (obj: Record<string, unknown>, msg: string) => { lines.push({ obj, msg }) } }
  return { lines, log: log as never }
}

t.test('a record costs its names\' lengths, two bytes a character, and a fixed part', async (t) => {
  const base = pendingConnectBytes(pending(1, 'a'))
  t.equal(pendingConnectBytes(pending(1, 'a'.repeat(101))), base + 2 * 2 * 100, 'the stream counts in its name and in the key')
  t.equal(pendingConnectBytes({ ...pending(1, 'a'), ip: '10.0.0.1' }), base + 2 * 8)
  t.equal(pendingConnectBytes({ ...pending(1, 'a'), ref: { ...pending(1, 'a').ref, streamId: 'vid-123' } }), base + 2 * 7)
  t.equal(pendingConnectBytes({ ...pending(1, 'a'), credentials: { kind: 'invalid', code: 1, msg: 'bad key' } }), base + 2 * 7)
  t.ok(base > 400)
})

t.test('past its bytes, the oldest records are dropped, counted, and logged at most once a minute', async (t) => {
  const { lines, log } = capture()
  let now = 0
  const long = (i: number): PendingConnect => pending(i, `${i}-${'x'.repeat(500)}`)
  const size = pendingConnectBytes(long(10))
  const store = new MemoryPendingConnects({ maxBytes: 10 * size, log, now: () => now })
  for (let i = 10; i < 20; i++) await store.add(long(i))
  t.equal(store.dropped, 0, 'ten fit')
  t.same(lines, [])
  // Read the oldest without renewing it: it still goes first.
  await store.decide('srs1', 'c10')
  await store.add(long(20))
  t.equal(store.dropped, 1)
  t.equal(await store.take('srs1', 'c10'), undefined, 'the oldest is gone')
  t.match(await store.take('srs1', 'c20'), { clientId: 'c20' }, 'the newest is kept')
  t.match(await store.take('srs1', 'c11'), { clientId: 'c11' })
  t.equal(lines.length, 1, 'logged at the first drop')
  t.match(lines[0], { obj: { dropped: 1, total: 1 }, msg: /MAX_PENDING_CONNECTS_BYTES.*nobody is evicted/ })
  for (let i = 21; i < 26; i++) await store.add(long(i))
  t.equal(store.dropped, 4)
  t.equal(lines.length, 1, 'not again within the minute')
  now += 60_000
  await store.add(long(26))
  t.equal(lines.length, 2, 'again after a minute, with the number since the last line')
  t.match(lines[1], { obj: { dropped: 4, total: 5 } })
})

t.test('records taken or expired are no drops; the bound in records holds too', async (t) => {
  const store = new MemoryPendingConnects({ max: 2 })
  await store.add(pending(1))
  await store.add(pending(2))
  t.match(await store.progressed('srs1', 'c1'), { clientId: 'c1' })
  await store.add(pending(3))
  t.equal(store.dropped, 0, 'a taken record is no drop')
  await store.add(pending(4))
  t.equal(store.dropped, 1, 'the third record drops the oldest')
  t.equal(await store.take('srs1', 'c2'), undefined)
  t.equal(PENDING_CONNECT_TTL_MS, 60_000)
})

t.test('MAX_PENDING_CONNECTS_BYTES: 64 MiB by default, at least 1 MiB', async (t) => {
  t.equal(loadConfig({}).MAX_PENDING_CONNECTS_BYTES, 64 * 1024 * 1024)
  t.equal(loadConfig({ MAX_PENDING_CONNECTS_BYTES: '2097152' }).MAX_PENDING_CONNECTS_BYTES, 2_097_152)
  t.throws(() => loadConfig({ MAX_PENDING_CONNECTS_BYTES: '1000' }), /MAX_PENDING_CONNECTS_BYTES/)
})

let forged = 0
function connectBody (sim: SrsSimulator, clientId: string, stream: string, app = 'live'): Record<string, unknown> {
  return { server_id: sim.serverId, service_id: 'x6n92s02', action: 'on_connect', client_id: clientId, ip: '203.0.113.9', vhost: '__defaultVhost__', app, stream, param: '', tcUrl: 'rtmp://127.0.0.1:1935/live', pageUrl: '' }
}

async function world (t: Test) {
  const w = await startWorld(t, { MAX_PENDING_CONNECTS_BYTES: '1048576' }, { version: '7-token', statsIntervalMs: 100 })
  await w.app.srsServers.discover()
  return w
}

t.test('a flood of forged on_connects with long names: the oldest records go, logged once and counted, and the dropped client\'s close evicts nobody', async (t) => {
  const { sim, app, url, hookBase, logs } = await world(t)
  const x = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  t.ok(x.ok)
  const victim = 'conn-old'
  t.same((await postHook(hookBase, 'on_connect', connectBody(sim, victim, 'cam1'))).reply, { code: 0, msg: null })
  // Each record about 4.6 KB: 1 MiB holds about 230 of them.
  for (let i = 0; i < 300; i++) {
    const r = await postHook(hookBase, 'on_connect', connectBody(sim, `forged${forged++}`, `${i}-${'s'.repeat(500)}`, 'a'.repeat(500)))
    t.equal(r.status, 200)
  }
  t.ok(app.publishers.pending.dropped > 0, `${app.publishers.pending.dropped} records dropped`)
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.match(metrics, new RegExp(`srs_hooks_pending_connects_dropped_total ${app.publishers.pending.dropped}\\b`))
  t.equal(logs.lines.filter((l) => /MAX_PENDING_CONNECTS_BYTES/.test(String(l.msg))).length, 1, 'logged once')
  // The first client's record was dropped: its close cannot start a deferred takeover.
  t.same((await postHook(hookBase, 'on_close', { server_id: sim.serverId, service_id: 'x6n92s02', action: 'on_close', client_id: victim, ip: '203.0.113.9', vhost: '__defaultVhost__', app: 'live', send_bytes: 0, recv_bytes: 0 })).reply, { code: 0, msg: null })
  await app.publishers.idle()
  t.same(sim.kicks, [], 'nobody evicted')
  t.equal(sim.activePublisher('live', 'cam1'), x.clientId)
})
