import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { Codes } from '../src/errors.js'
import { PlatformClient } from '../src/forward/client.js'
import { Delivery } from '../src/forward/delivery.js'
import { Outbox } from '../src/forward/outbox.js'
import { LogCapture, postHook, startApp } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'
import { diskFullStore, dvr } from './fixtures/recordings-suite.js'

/**
 * Delivery to the platform when things go wrong around it: a decision hook waiting for its
 * stream's queued notifications (drained in time, or its bound running out), the outbox's file
 * failing in the middle of a delivery or when delivery starts, an outbox.db of a newer schema or
 * one that cannot be opened, and a notification srs-hooks itself failed to process.
 */

const stop = (client: string, stream: string) => ({ action: 'on_stop', client_id: client, vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })
const play = (client: string, stream: string) => ({ action: 'on_play', client_id: client, ip: '10.0.0.5', vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })

async function platformFor (t: Test): Promise<PlatformServer> {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  return platform
}

t.test('a decision hook waits for its stream\'s queued notifications, and reaches the platform after them', async (t) => {
  const platform = await platformFor(t)
  platform.modes.set('on_stop', { kind: 'status', status: 500 })
  const { hookBase, logs } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url, FORWARD_TIMEOUT_MS: '10000', FORWARD_RETRY_MAX_MS: '50' })
  t.equal((await postHook(hookBase, 'on_stop', stop('v1', 'cam1'))).status, 200, 'the notification is acknowledged')
  await platform.waitFor((r) => r.some((x) => x.action === 'on_stop'), 5000, 'its first attempt')
  t.equal((await postHook(hookBase, 'on_hls', { ...stop('v1', 'cam1'), action: 'on_hls' })).status, 200, 'and a second one behind it')
  const playing = postHook(hookBase, 'on_play', play('v2', 'cam1'))
  // Another stream's decision does not wait for cam1's queue.
  const other = await postHook(hookBase, 'on_play', play('v3', 'cam2'))
  t.same(other.reply, { code: 0, msg: null })
  // cam1's notification keeps failing: the play waits (it has 10 s).
  await platform.waitFor((r) => r.filter((x) => x.action === 'on_stop').length >= 3, 5000, 'two retries of the notification')
  t.notOk(platform.received.some((x) => x.action === 'on_play' && x.body.stream === 'cam1'), 'the platform is not asked the play while the stop before it is queued')
  platform.modes.delete('on_stop')
  const r = await playing
  t.same({ status: r.status, reply: r.reply }, { status: 200, reply: { code: 0, msg: null } })
  const cam1 = platform.received.filter((x) => x.body.stream === 'cam1').map((x) => x.action)
  t.same(cam1.slice(-3), ['on_stop', 'on_hls', 'on_play'], 'asked last, once both notifications before it were delivered')
  t.equal(cam1.filter((a) => a === 'on_hls').length, 1)
  t.match(await logs.wait((l) => l.action === 'on_play' && l.client === 'v2'), { outcome: 'allowed', platform: 'allowed' })
})

for (const mode of ['open', 'closed'] as const) {
  t.test(`a decision hook whose stream's notification stays queued past FORWARD_TIMEOUT_MS is answered in time by FORWARD_FAIL_MODE=${mode}`, async (t) => {
    const platform = await platformFor(t)
    platform.modes.set('on_stop', { kind: 'status', status: 503 })
    // Were a few ms of the bound left after the wait (timers are not exact), the platform would not answer in them either.
    platform.modes.set('on_play', { kind: 'slow', ms: 20_000 })
    const { hookBase, logs, app } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url, FORWARD_TIMEOUT_MS: '400', FORWARD_RETRY_MAX_MS: '50', FORWARD_FAIL_MODE: mode })
    await postHook(hookBase, 'on_stop', stop('v1', 'cam1'))
    await platform.waitFor((r) => r.some((x) => x.action === 'on_stop'), 5000, 'its first attempt')
    const r = await postHook(hookBase, 'on_play', play('v2', 'cam1'))
    t.ok(r.ms >= 390, `it waited its bound (${Math.round(r.ms)} ms)`)
    // A behaviour bound, generous: the hook is answered soon after FORWARD_TIMEOUT_MS, not at SRS's 30 s.
    t.ok(r.ms < 400 + 2000, `and no longer (${Math.round(r.ms)} ms)`)
    if (mode === 'open') t.same(r.reply, { code: 0, msg: null })
    else t.match(r.reply, { code: Codes.PLATFORM_UNAVAILABLE, msg: /(no time left to ask the platform|no answer within \d+ ms); FORWARD_FAIL_MODE=closed refuses/ })
    t.match(await logs.wait((l) => l.action === 'on_play' && l.client === 'v2'), { platform: `failed-${mode}` })
    t.match(logs.find((l) => l.component === 'forward' && l.action === 'on_play'), { lane: 'srs:/live/cam1', err: /no time left|no answer within/ })
    t.equal(app.forward!.delivery.depth, 1, 'the notification still waits, in its place')
    platform.modes.delete('on_stop')
    await platform.waitFor(() => app.forward!.delivery.depth === 0, 5000, 'the notification to be delivered')
  })
}

t.test('the outbox failing in the middle of a delivery: logged, tried again later, nothing lost', async (t) => {
  const platform = await platformFor(t)
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-outbox-fail-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const outbox = Outbox.open({ dir, max: 100 })
  t.teardown(() => outbox.close())
  const client = new PlatformClient({ url: platform.url, headers: {} })
  t.teardown(() => client.close())
  const logs = new LogCapture()
  const results: string[] = []
  const delivery = new Delivery({
    outbox,
    clients: { srs: client },
    concurrency: 4,
    timeoutMs: 2000,
    maxAgeMs: 60_000,
    retryMaxMs: 100,
    now: Date.now,
    log: pino(logs.stream),
    onResult: (_target, result) => results.push(result)
  })
  t.teardown(() => delivery.stop())
  // A read fails once (the notification's body cannot be read), then a write (its failed attempt cannot be recorded).
  const realGet = outbox.get.bind(outbox)
  const realFailed = outbox.failed.bind(outbox)
  let gets = 0
  let faileds = 0
  outbox.get = async (seqs) => { if (gets++ === 0) throw new Error('disk I/O error'); return await realGet(seqs) }
  outbox.failed = async (...a) => { if (faileds++ === 0) throw new Error('database or disk is full'); await realFailed(...a) }
  const body = JSON.stringify(stop('v1', 'cam1'))
  const seq = await outbox.add({ lane: 'srs:/live/cam1', target: 'srs', action: 'on_stop', body, key: 'key-1', at: Date.now() })
  platform.mode = { kind: 'status', status: 500 }
  await delivery.start()
  t.equal(delivery.depth, 1)
  t.match(await logs.wait((l) => /could not be read or written/.test(l.msg)), { level: 50, err: 'disk I/O error', lane: 'srs:/live/cam1' })
  await logs.wait((l) => l.err === 'database or disk is full', 5000)
  t.equal(platform.received.length >= 1, true, 'tried once the read worked')
  platform.mode = { kind: 'ok' }
  await platform.waitFor(() => delivery.depth === 0 && outbox.counts.rows === 0, 5000, 'the delivery after the failures')
  const got = platform.received.filter((x) => x.headers['idempotency-key'] === 'key-1')
  t.ok(got.length >= 2 && got.every((x) => x.raw === body), 'the same notification each time, as it was written')
  t.same(results.at(-1), 'delivered')
  t.same(await outbox.get([seq]), [], 'gone from the outbox once delivered')
})

t.test('an outbox.db of a newer schema, or one that cannot be opened, stops the start naming DATA_DIR', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-outbox-newer-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const db = new Database(join(dir, 'outbox.db'))
  db.pragma('user_version = 2')
  db.close()
  const config = (dataDir: string) => loadConfig({ SRS_API_URL: 'none', FORWARD_URL: 'http://127.0.0.1:9/cb/{action}', DATA_DIR: dataDir, RECONCILE_INTERVAL_MS: '0' })
  const logger = pino({ level: 'silent' })
  await t.rejects(buildApp(config(dir), { logger }), {
    message: `cannot open the forwarding outbox in DATA_DIR=${dir}: ${join(dir, 'outbox.db')} has schema version 2, newer than this srs-hooks knows (1)`
  })
  // outbox.db a folder: the recordings index beside it opens, the outbox cannot.
  const other = join(dir, 'other')
  await mkdir(join(other, 'outbox.db'), { recursive: true })
  await t.rejects(buildApp(config(other), { logger }), { message: new RegExp(`^cannot open the forwarding outbox in DATA_DIR=${other}: .+`) })
  // The file of the newer version is left as it was.
  const again = new Database(join(dir, 'outbox.db'))
  t.equal(again.pragma('user_version', { simple: true }), 2)
  again.close()
})

t.test('the outbox unreadable when delivery starts: logged, what it holds is kept and delivered after a restart', async (t) => {
  const platform = await platformFor(t)
  const dataDir = await mkdtemp(join(tmpdir(), 'srs-hooks-outbox-start-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env = { SRS_API_URL: 'none', FORWARD_URL: platform.url, DATA_DIR: dataDir }
  await platform.down()
  const first = await startApp(t, env)
  t.equal((await postHook(first.hookBase, 'on_stop', stop('kept', 'cam1'))).status, 200)
  await first.app.close()

  await platform.up()
  const logs = new LogCapture()
  const second = await buildApp(loadConfig({ ...env, RECONCILE_INTERVAL_MS: '0', LOG_LEVEL: 'debug' }), { logger: pino({ level: 'debug' }, logs.stream) })
  t.teardown(() => second.close())
  // Its file unreadable from now on, as a failed disk would leave it.
  await second.forward!.outbox.close()
  await second.listen({ host: '127.0.0.1', port: 0 })
  await fetch(`http://127.0.0.1:${String((second.server.address() as { port: number }).port)}/healthz`)
  t.match(await logs.wait((l) => /the outbox could not be read/.test(l.msg), 10_000), { level: 50, component: 'forward', msg: /notifications are kept and delivered after a restart/ })
  t.equal(platform.received.length, 0, 'nothing delivered')
  await second.close()

  const third = await startApp(t, env)
  await platform.waitFor((r) => r.some((x) => x.body.client_id === 'kept'), 10_000, 'the kept notification')
  await platform.waitFor(() => third.app.forward!.outbox.counts.rows === 0, 5000, 'the outbox to empty')
})

t.test('a notification srs-hooks failed to process (a 503 on_dvr) is still forwarded; one it refused as malformed (400) is not', async (t) => {
  const platform = await platformFor(t)
  const broken = await diskFullStore(t.testdir())
  const { hookBase, logs } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url }, { recordings: broken })
  const failed = await postHook(hookBase, 'on_dvr', dvr({ client_id: 'full' }))
  t.equal(failed.status, 503, 'SRS gets the failure, and retries it')
  t.match(failed.reply, { code: Codes.RECORDING_NOT_STORED, msg: /not stored: SQLITE_FULL/ })
  await platform.waitFor((r) => r.some((x) => x.action === 'on_dvr' && x.body.client_id === 'full'), 5000, 'the on_dvr at the platform')
  t.equal(platform.of('on_dvr')[0]!.raw, JSON.stringify(dvr({ client_id: 'full' })), 'with its body as sent')
  await logs.wait((l) => l.action === 'on_dvr' && l.status === 503)

  const malformed = await postHook(hookBase, 'on_dvr', dvr({ client_id: 'nul', file: '/srv/srs/dvr/a\u0000.flv' }))
  t.equal(malformed.status, 400)
  t.equal(malformed.reply.code, Codes.INVALID_BODY)
  await logs.wait((l) => l.action === 'on_dvr' && l.status === 400)
  // Its stream's next notification reaches the platform; the malformed one never did before it.
  await postHook(hookBase, 'on_stop', stop('after', 'cam1'))
  await platform.waitFor((r) => r.some((x) => x.body.client_id === 'after'), 5000, 'the next notification')
  t.notOk(platform.received.some((x) => x.body.client_id === 'nul'), 'the malformed one is not forwarded')
})
