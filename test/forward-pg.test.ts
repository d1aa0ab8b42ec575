import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import pg from 'pg'
import { pino } from 'pino'
import type { PgDelivery } from '../src/forward/pg-delivery.js'
import { PgOutbox } from '../src/forward/pg-outbox.js'
import { postHook, startApp, waitFor, type TestApp } from './fixtures/app.js'
import { PlatformServer, type Received } from './fixtures/platform.js'
import { PgProxy, startPostgres } from './fixtures/postgres.js'

/**
 * The forwarding queue replicas share in PostgreSQL (DATABASE_URL), over real HTTP and a real
 * PostgreSQL: each notification delivered once between two replicas and in order per stream
 * whichever replica received it; a replica that dies holding a delivery loses nothing (another
 * takes the row over when its lease lapses); PostgreSQL down or hanging: notifications are still
 * answered within the write bound, kept in DATA_DIR, and delivered once it is back.
 */

const stop = (client: string, stream: string) => ({ action: 'on_stop', client_id: client, vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })
const play = (client: string, stream: string) => ({ action: 'on_play', client_id: client, ip: '10.0.0.5', vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })

const cluster = await startPostgres(t)

async function platformFor (t: Test): Promise<PlatformServer> {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  return platform
}

const queue = (a: TestApp): { outbox: PgOutbox, delivery: PgDelivery } => ({ outbox: a.app.forward!.outbox as PgOutbox, delivery: a.app.forward!.delivery as PgDelivery })

/** Deliveries (with an Idempotency-Key) per key. */
function perKey (received: Received[]): Map<string, Received[]> {
  const keys = new Map<string, Received[]>()
  for (const r of received) {
    const k = r.headers['idempotency-key']
    if (typeof k === 'string') keys.set(k, [...(keys.get(k) ?? []), r])
  }
  return keys
}

t.test('two replicas on one DATABASE_URL: each notification delivered once, each stream in order across both, a decision waits for the other replica\'s queue', async (t) => {
  const platform = await platformFor(t)
  const url = await cluster.database()
  const env = {
    SRS_API_URL: 'none',
    FORWARD_URL: platform.url,
    DATABASE_URL: url,
    FORWARD_TIMEOUT_MS: '3000',
    FORWARD_RETRY_MAX_MS: '50',
    FORWARD_CONCURRENCY: '2',
    // A busy machine must not make a delivered row's delete miss its bound (the row would be delivered again once its lease lapsed, rightly).
    DATABASE_WRITE_TIMEOUT_MS: '5000'
  }
  const a = await startApp(t, env)
  const b = await startApp(t, env)
  // A platform a little slow: a backlog builds up, and both replicas claim from it.
  platform.mode = { kind: 'slow', ms: 5 }
  const want = new Map<string, string[]>()
  for (let i = 0; i < 80; i++) {
    const stream = `cam${i % 4}`
    // Each stream's hooks spread over both replicas.
    const to = Math.floor(i / 4) % 2 === 0 ? a : b
    const r = await postHook(to.hookBase, 'on_stop', stop(`c${i}`, stream))
    t.equal(r.status, 200)
    want.set(stream, [...(want.get(stream) ?? []), `c${i}`])
  }
  await platform.waitFor((all) => perKey(all).size === 80, 20_000, 'every notification')
  await waitFor(() => queue(a).outbox.counts.rows === 0 && queue(b).outbox.counts.rows === 0 ? true : undefined, 5000, 'both replicas to see the queue empty')
  const keys = perKey(platform.received)
  t.same([...keys.values()].filter((rs) => rs.length !== 1).map((rs) => rs[0]!.body.client_id), [], 'each delivered exactly once')
  for (const [stream, clients] of want) {
    t.same(platform.of('on_stop').filter((r) => r.body.stream === stream).map((r) => r.body.client_id), clients, `${stream}: in the order the hooks were received, across both replicas`)
  }
  t.same(await cluster.query('SELECT count(*)::int AS n FROM srs_hooks.forward_outbox', [], url), [{ n: 0 }], 'nothing left in the shared queue')

  // A stop received by A, that the platform keeps failing; a play of the stream at B waits for it.
  platform.mode = { kind: 'ok' }
  platform.modes.set('on_stop', { kind: 'status', status: 500 })
  t.equal((await postHook(a.hookBase, 'on_stop', stop('s1', 'cam9'))).status, 200)
  await platform.waitFor((all) => all.filter((x) => x.body.client_id === 's1').length >= 2, 5000, 'the stop to be tried twice')
  const playing = postHook(b.hookBase, 'on_play', play('p1', 'cam9'))
  t.same((await postHook(b.hookBase, 'on_play', play('p2', 'cam8'))).reply, { code: 0, msg: null }, 'another stream\'s decision does not wait')
  t.notOk(platform.received.some((x) => x.body.client_id === 'p1'), 'the play is not asked while the stop before it waits')
  const status = await (await fetch(`${b.url}/admin-api/video/camera/forwarding`)).json() as Record<string, any>
  t.match(status, { code: 0, dead: 0 })
  platform.modes.delete('on_stop')
  const r = await playing
  t.same(r.reply, { code: 0, msg: null })
  t.same(platform.received.filter((x) => x.body.stream === 'cam9').map((x) => x.action).slice(-2), ['on_stop', 'on_play'], 'the platform got the stop (from A) before the play (at B)')
})

t.test('a notification received while the shared queue is still being prepared (another replica holds its creation lock) waits for it within the write bound and is queued in PostgreSQL, not the spool', async (t) => {
  const url = await cluster.database()
  const locker = new pg.Client({ connectionString: url })
  await locker.connect()
  t.teardown(() => locker.end())
  const lock = 'srs-hooks forward srs_hooks'
  await locker.query('SELECT pg_advisory_lock(hashtext($1))', [lock])
  const outbox = PgOutbox.open({ url, schema: 'srs_hooks', queryTimeoutMs: 10_000, writeTimeoutMs: 10_000, retryMs: 100, poolMax: 2, dir: t.testdir(), max: 100, log: pino({ level: 'silent' }) })
  t.teardown(() => outbox.close())
  await outbox.start(50)
  let seq: number | undefined
  const added = outbox.add({ lane: '/live/cam1', target: 'srs', action: 'on_stop', body: '{}', key: 'k-at-start', at: 1 }).then((s) => { seq = s })
  await waitFor(async () => (await locker.query('SELECT count(*)::int AS n FROM pg_locks WHERE locktype = \'advisory\' AND NOT granted')).rows[0].n === 1, 5000, 'the creation to wait for the lock')
  t.equal(seq, undefined, 'not answered from the spool meanwhile')
  await locker.query('SELECT pg_advisory_unlock(hashtext($1))', [lock])
  await added
  t.equal(outbox.counters.spooled, 0, 'nothing spooled')
  t.match(await cluster.query('SELECT seq, idempotency_key FROM srs_hooks.forward_outbox', [], url), [{ seq, idempotency_key: 'k-at-start' }], 'queued in PostgreSQL')
})

t.test('a replica dies holding a delivery: its lease lapses and the other replica delivers the row, with the same key; nothing is lost', async (t) => {
  const platform = await platformFor(t)
  const url = await cluster.database()
  const proxy = await PgProxy.start(cluster.port)
  t.teardown(() => proxy.close())
  const env = { SRS_API_URL: 'none', FORWARD_URL: platform.url, FORWARD_TIMEOUT_MS: '1000', DATABASE_WRITE_TIMEOUT_MS: '300', DATABASE_QUERY_TIMEOUT_MS: '1000', FORWARD_RETRY_MAX_MS: '50' }
  const a = await startApp(t, { ...env, DATABASE_URL: proxy.via(url) })
  // The platform holds the first delivery's answer.
  platform.mode = { kind: 'slow', ms: 20_000 }
  t.equal((await postHook(a.hookBase, 'on_stop', stop('held', 'cam1'))).status, 200)
  t.equal((await postHook(a.hookBase, 'on_stop', stop('next', 'cam1'))).status, 200)
  await platform.waitFor((all) => all.length === 1, 5000, 'the first delivery to reach the platform')
  const [claimed] = await cluster.query('SELECT claimed_by, claimed_until FROM srs_hooks.forward_outbox ORDER BY seq LIMIT 1', [], url)
  t.equal(claimed.claimed_by, queue(a).delivery.replica, 'the row is claimed by the replica delivering it')
  // A dies (as PostgreSQL sees it: its sessions cut, none opened again); B is started.
  proxy.set('reset')
  const killed = Date.now()
  platform.mode = { kind: 'ok' }
  const b = await startApp(t, { ...env, DATABASE_URL: url })
  await platform.waitFor((all) => all.some((x) => x.body.client_id === 'next'), 15_000, 'the other replica to take the rows over')
  const tookOver = Date.now() - killed
  t.comment(`taken over after ${tookOver} ms (lease ${2 * (1000 + 300)} ms)`)
  const held = platform.received.filter((x) => x.body.client_id === 'held')
  t.equal(held.length, 2, 'the held one delivered again by the other replica (at least once)')
  t.equal(held[0]!.headers['idempotency-key'], held[1]!.headers['idempotency-key'], 'with the same Idempotency-Key')
  t.same(platform.received.map((x) => x.body.client_id), ['held', 'held', 'next'], 'in order; nothing lost')
  t.ok(Date.now() - claimed.claimed_until < 5000)
  await waitFor(() => queue(b).outbox.counts.rows === 0 ? true : undefined, 5000, 'the queue to empty')
})

t.test('PostgreSQL hanging, then down: notifications are answered within the write bound, kept in DATA_DIR, and delivered once it is back, in order, each once; also after a restart', async (t) => {
  const platform = await platformFor(t)
  const url = await cluster.database()
  const proxy = await PgProxy.start(cluster.port)
  t.teardown(() => proxy.close())
  const dataDir = await mkdtemp(join(tmpdir(), 'srs-hooks-pgoutbox-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env = {
    SRS_API_URL: 'none',
    FORWARD_URL: platform.url,
    DATABASE_URL: proxy.via(url),
    DATA_DIR: dataDir,
    FORWARD_TIMEOUT_MS: '500',
    DATABASE_WRITE_TIMEOUT_MS: '300',
    DATABASE_QUERY_TIMEOUT_MS: '1000',
    SPOOL_RETRY_MS: '100',
    FORWARD_RETRY_MAX_MS: '50'
  }
  const first = await startApp(t, env)
  t.equal((await postHook(first.hookBase, 'on_stop', stop('n0', 'cam1'))).status, 200)
  await platform.waitFor((all) => all.length === 1, 5000, 'a notification through PostgreSQL')
  await waitFor(() => queue(first).outbox.counts.rows === 0 ? true : undefined, 5000, 'its row to leave the queue')
  const sent: string[] = ['n0']
  let slowest = 0
  for (const mode of ['hang', 'reset'] as const) {
    proxy.set(mode)
    for (let i = 0; i < 5; i++) {
      const id = `${mode}${i}`
      const r = await postHook(first.hookBase, 'on_stop', stop(id, i % 2 === 0 ? 'cam1' : 'cam2'))
      t.equal(r.status, 200, `${id}: acknowledged`)
      slowest = Math.max(slowest, r.ms)
      sent.push(id)
    }
  }
  t.comment(`slowest answer while PostgreSQL hangs or is down: ${Math.round(slowest)} ms`)
  // A decision for a stream with nothing spooled: its queue cannot be read within DATABASE_WRITE_TIMEOUT_MS, and
  // the platform is asked without waiting further.
  const other = await postHook(first.hookBase, 'on_play', play('p0', 'cam9'))
  t.same(other.reply, { code: 0, msg: null })
  t.ok(platform.received.some((x) => x.body.client_id === 'p0'), 'the platform is asked')
  t.ok(other.ms < 300 + 1000, 'within DATABASE_WRITE_TIMEOUT_MS and a margin')
  t.ok(slowest < 300 + 1000, 'answered within DATABASE_WRITE_TIMEOUT_MS and a margin')
  const q = queue(first)
  t.equal(q.outbox.spooled, 10, 'kept in DATA_DIR/outbox.db')
  t.equal(q.delivery.depth, 10)
  t.ok(q.delivery.oldestAgeMs()! >= 0)
  const ready = await (await fetch(`${first.url}/readyz`)).json() as Record<string, any>
  t.match(ready.forward, { depth: 10, msg: 'ok' }, 'notifications are still taken: the forwarding check holds')
  // A decision for a stream whose notifications wait in the spool: it waits for them to its bound, and
  // FORWARD_FAIL_MODE (closed) answers it in time.
  const decided = await postHook(first.hookBase, 'on_play', play('p1', 'cam1'))
  t.match(decided.reply, { code: 1019, msg: /FORWARD_FAIL_MODE=closed/ })
  t.notOk(platform.received.some((x) => x.body.client_id === 'p1'), 'not asked before the stream\'s notifications')
  t.ok(platform.received.every((x) => x.body.client_id !== 'hang0'), 'nothing delivered while PostgreSQL is out of reach')

  proxy.set('pass')
  await platform.waitFor((all) => sent.every((id) => all.some((x) => x.body.client_id === id)), 10_000, 'everything acknowledged, once PostgreSQL is back')
  t.equal(q.outbox.spooled, 0, 'the spool is moved into PostgreSQL')
  for (const stream of ['cam1', 'cam2']) {
    const want = sent.filter((id) => id === 'n0' ? stream === 'cam1' : Number(id.slice(-1)) % 2 === (stream === 'cam1' ? 0 : 1))
    t.same(platform.of('on_stop').filter((x) => x.body.stream === stream).map((x) => x.body.client_id), want, `${stream} in order`)
  }
  t.equal(perKey(platform.received).size, platform.of('on_stop').length, 'each once')

  // Hanging again, and srs-hooks restarted: what the spool holds is moved and delivered by the next run.
  proxy.set('hang')
  t.equal((await postHook(first.hookBase, 'on_stop', stop('late', 'cam3'))).status, 200)
  await first.app.close()
  proxy.set('pass')
  await startApp(t, env)
  await platform.waitFor((all) => all.some((x) => x.body.client_id === 'late'), 10_000, 'the spool left by the previous run')
  t.equal(platform.received.filter((x) => x.body.client_id === 'late').length, 1)
})

t.test('dead letters on the shared queue: listed, counted, retried, and delivered by whichever replica; rows another replica left; a full queue', async (t) => {
  const platform = await platformFor(t)
  const url = await cluster.database()
  platform.modes.set('on_close', { kind: 'status', status: 500 })
  const env = { SRS_API_URL: 'none', FORWARD_URL: platform.url, DATABASE_URL: url, FORWARD_MAX_AGE: '1s', FORWARD_RETRY_MAX_MS: '100', FORWARD_OUTBOX_MAX: '20' }
  const a = await startApp(t, env)
  const b = await startApp(t, env)
  t.equal((await postHook(a.hookBase, 'on_close', { ...stop('old', 'cam1'), action: 'on_close' })).status, 200)
  platform.refused.set('cam2', 7)
  t.equal((await postHook(a.hookBase, 'on_stop', stop('refused', 'cam2'))).status, 200)
  // Rows as other replicas leave them: one for ZLMediaKit (this pair forwards SRS's hooks only), one
  // received before every replica was down longer than FORWARD_MAX_AGE, one with the newcomer of a takeover.
  const now = Date.now()
  const insert = async (lane: string, target: string, action: string, client: string, since: number, replacedBy: string | null): Promise<void> => {
    await cluster.query(`INSERT INTO srs_hooks.forward_outbox (lane, target, action, body, idempotency_key, replaced_by, created_at, since, next_at)
      VALUES ($1, $2, $3, $4, gen_random_uuid()::text, $5, $6, $6, $6)`, [lane, target, action, JSON.stringify(stop(client, 'x')), replacedBy, since], url)
  }
  await insert('zlm:/live/z', 'zlm', 'on_stream_changed', 'zlm', now, null)
  await insert('srs:/live/cam4', 'srs', 'on_stop', 'stale', now - 60_000, null)
  await insert('srs:/live/cam5', 'srs', 'on_unpublish', 'replaced', now, 'newcomer')
  await platform.waitFor((all) => all.some((x) => x.body.client_id === 'replaced'), 5000, 'the row with its newcomer')
  t.equal(platform.of('on_unpublish')[0]!.headers['x-srs-hooks-replaced-by'], 'newcomer', 'sent with X-Srs-Hooks-Replaced-By')
  await waitFor(() => queue(b).outbox.counts.dead === 4 ? true : undefined, 10_000, 'four dead letters, as another replica sees it')
  const api = `${b.url}/admin-api/video/camera/forwarding`
  const status = await (await fetch(api)).json() as Record<string, any>
  t.match(status, { code: 0, dead: 4, depth: 0, rows: 4 })
  const dead = await (await fetch(`${api}/dead`)).json() as Record<string, any>
  t.match(dead.items, [
    { action: 'on_close', lane: 'srs:/live/cam1', last_error: /older than FORWARD_MAX_AGE: .*HTTP 500/ },
    { action: 'on_stop', last_error: /older than FORWARD_MAX_AGE: refused/ },
    { target: 'zlm', last_error: /older than FORWARD_MAX_AGE: .*no platform URL for zlm's hooks/ },
    { lane: 'srs:/live/cam4', last_error: 'older than FORWARD_MAX_AGE: never tried' }
  ])
  t.notOk(platform.received.some((x) => x.body.client_id === 'stale'), 'too old when first claimed: set aside, not sent')
  const metrics = await (await fetch(`${b.url}/metrics`)).text()
  t.match(metrics, /srs_hooks_forward_dead_letters 4/)
  platform.modes.clear()
  platform.refused.clear()
  const retried = await (await fetch(`${api}/dead/retry`, { method: 'POST' })).json() as Record<string, any>
  t.same(retried, { code: 0, retried: 4 })
  for (const [i, client] of [[0, 'old'], [1, 'refused'], [3, 'stale']] as const) {
    await platform.waitFor((all) => all.some((x) => x.body.client_id === client && x.headers['idempotency-key'] === dead.items[i].idempotency_key), 5000, `the retried ${client}`)
  }
  await waitFor(() => queue(a).outbox.counts.rows === 1 && queue(b).outbox.counts.rows === 1 ? true : undefined, 5000, 'only the ZLMediaKit row to stay')

  // Past FORWARD_OUTBOX_MAX rows in the queue: refused clearly, not acknowledged.
  platform.mode = { kind: 'status', status: 500 }
  let refused: Awaited<ReturnType<typeof postHook>> | undefined
  let taken = 0
  for (let i = 0; i < 25 && refused === undefined; i++) {
    const r = await postHook(a.hookBase, 'on_stop', stop(`f${i}`, 'cam6'))
    if (r.status === 200) taken++
    else refused = r
  }
  t.equal(taken, 19, 'taken up to FORWARD_OUTBOX_MAX with the row already there')
  t.match(refused, { status: 503, reply: { code: 1103, msg: /outbox is full \(FORWARD_OUTBOX_MAX=20\)/ } })
})
