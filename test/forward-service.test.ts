import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import type { Dispatcher } from 'undici'
import { Codes } from '../src/errors.js'
import { PlatformClient, type Target } from '../src/forward/client.js'
import { Delivery, type DeliveryResult } from '../src/forward/delivery.js'
import { Outbox } from '../src/forward/outbox.js'
import { ForwardService, type ForwardRequest } from '../src/forward/service.js'
import { LogCapture, waitFor } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'

/**
 * The forwarding service and its delivery on their own, against a real platform server and a real
 * outbox file: each hook's lane (the stream whose order it keeps), requests without their raw body,
 * a 4xx verdict, a publish verdict remembered from on_connect, and notifications the delivery meets
 * in odd states (a replaced publisher's, a target without a URL, one too old before its first
 * attempt, one gone from the file, one the platform refuses).
 */

async function rig (t: Test, opts: { clients?: Array<Target>, maxAgeMs?: number, now?: () => number, start?: boolean } = {}) {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-forward-service-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const outbox = Outbox.open({ dir, max: 100 })
  const clients: Partial<Record<Target, PlatformClient>> = {}
  for (const target of opts.clients ?? ['srs']) clients[target] = new PlatformClient({ url: platform.url, headers: {} })
  const logs = new LogCapture()
  const log = pino(logs.stream)
  const results: Array<[Target, DeliveryResult]> = []
  const now = opts.now ?? Date.now
  const delivery = new Delivery({
    outbox, clients, concurrency: 4, timeoutMs: 2000, maxAgeMs: opts.maxAgeMs ?? 60_000, retryMaxMs: 50, now, log, onResult: (target, r) => results.push([target, r])
  })
  const svc = new ForwardService({ clients, outbox, delivery, timeoutMs: 2000, failMode: 'closed', now, log })
  t.teardown(async () => {
    await delivery.stop()
    await outbox.close()
    for (const c of Object.values(clients)) await c.close()
  })
  if (opts.start !== false) await delivery.start()
  return { platform, outbox, delivery, svc, logs, results }
}

const req = (body: Record<string, unknown>): ForwardRequest => ({ body, log: pino({ level: 'silent' }), hookLog: { outcome: 'allowed', code: 0 } })

t.test('each hook\'s lane: SRS\'s stream_url (or one built alike), a client\'s last stream for on_close; ZLMediaKit\'s vhost/app/stream or its server', async (t) => {
  const { svc } = await rig(t)
  t.equal(svc.laneOf('srs', 'on_publish', { client_id: 'c1', vhost: 'v1', app: 'live', stream: 'cam1', stream_url: 'v1/live/cam1' }), 'srs:v1/live/cam1')
  t.equal(svc.laneOf('srs', 'on_close', { client_id: 'c1', vhost: 'v1', app: 'live' }), 'srs:v1/live/cam1', 'on_close follows its client\'s stream')
  t.equal(svc.laneOf('srs', 'on_close', { client_id: 'c9', vhost: 'v1', app: 'live' }), 'srs:client:c9', 'a client never seen on a stream: its own lane')
  t.equal(svc.laneOf('srs', 'on_play', { client_id: 'c2', vhost: 'v1', app: 'live', stream: 'cam1.flv' }), 'srs:v1/live/cam1', 'built as SRS does, a player\'s extension dropped')
  t.equal(svc.laneOf('srs', 'on_play', { client_id: 'c3', app: 'live', stream: 'cam1.m3u8', stream_url: '' }), 'srs:/live/cam1', 'no vhost: the default one')
  t.equal(svc.laneOf('srs', 'on_connect', { client_id: 'c4', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/other' }), 'srs:/live/cam1', 'on_connect: built, whatever its stream_url')
  t.equal(svc.laneOf('zlm', 'on_stream_changed', { mediaServerId: 'z1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }), 'zlm:/live/cam1')
  t.equal(svc.laneOf('zlm', 'on_publish', { mediaServerId: 'z1', vhost: 'v2', app: 'live', stream: 'cam1' }), 'zlm:v2/live/cam1')
  t.equal(svc.laneOf('zlm', 'on_record_mp4', { mediaServerId: 'z1', app: 'live', stream: 'cam1' }), 'zlm:/live/cam1')
  t.equal(svc.laneOf('zlm', 'on_server_keepalive', { mediaServerId: 'z1' }), 'zlm:server:z1', 'hooks without a stream: per server')
})

t.test('a request without its raw body: the body is sent as JSON; a 4xx verdict refuses with 1018; hooks not forwarded keep their handler', async (t) => {
  const { svc, platform } = await rig(t)
  const body = { action: 'on_stop', client_id: 'c1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' }
  t.same(await svc.notify('srs', 'on_stop', req(body)), { forward: 'queued' })
  await platform.waitFor((r) => r.some((x) => x.action === 'on_stop'))
  t.equal(platform.of('on_stop')[0]!.raw, JSON.stringify(body))

  platform.modes.set('on_play', { kind: 'status', status: 403 })
  const handler = async () => ({ code: 0, msg: null })
  const play = svc.wrap('srs', 'on_play', handler)
  const r = req({ ...body, action: 'on_play', client_id: 'c2' })
  t.match(await play(r), { code: Codes.PLATFORM_REFUSED, msg: /refused by the platform \(HTTP 403: \{"code":500,"msg":"boom"\}\)/ })
  t.match(r.hookLog, { outcome: 'refused-platform', code: Codes.PLATFORM_REFUSED, platform: 'refused' })
  t.equal(platform.of('on_play')[0]!.raw, JSON.stringify(r.body))
  const own = svc.wrap('srs', 'on_publish', async () => ({ code: 1004, msg: 'invalid stream key' }))
  const refused = req({ ...body, action: 'on_publish', client_id: 'c3' })
  t.same(await own(refused), { code: 1004, msg: 'invalid stream key' }, 'refused by srs-hooks\' own checks')
  t.same(refused.hookLog, { outcome: 'allowed', code: 0 }, 'its line as the handler left it')
  t.equal(platform.of('on_publish').length, 0, 'without asking the platform')
  t.equal(svc.wrap('srs', 'on_rtsp_auth', handler), handler, 'not a hook of the platform\'s')
  t.equal(svc.wrap('zlm', 'on_publish', handler), handler, 'no FORWARD_ZLM_URL: ZLMediaKit\'s as they are')
})

t.test('a publish verdict remembered from on_connect answers the client\'s on_publish once, on its stream only', async (t) => {
  const { svc, platform } = await rig(t)
  const publish = { action: 'on_publish', client_id: 'c1', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' }
  svc.remember('c1', 'srs:/live/cam1', { code: 451, msg: 'refused by the platform (code 451: suspended)' })
  const wrapped = svc.wrap('srs', 'on_publish', async () => ({ code: 0, msg: null }))
  const r = req(publish)
  t.same(await wrapped(r), { code: 451, msg: 'refused by the platform (code 451: suspended)' })
  t.match(r.hookLog, { platform: 'refused-at-connect', outcome: 'refused-platform' })
  t.equal(platform.received.length, 0, 'the platform is not asked again')
  const again = req(publish)
  t.same(await wrapped(again), { code: 0, msg: null }, 'once: the next on_publish is asked')
  t.match(again.hookLog, { platform: 'allowed' })
  svc.remember('c2', 'srs:/live/cam2', undefined)
  const other = req({ ...publish, client_id: 'c2' })
  await wrapped(other)
  t.match(other.hookLog, { platform: 'allowed' }, 'remembered for another stream: asked')
  t.equal(platform.of('on_publish').length, 2)
})

t.test('a deferred takeover\'s check without the client\'s IP sends an empty one, and asks once', async (t) => {
  const { svc, platform } = await rig(t)
  const check = svc.deferredCheck({ server: 's1', client: 'c1', ip: undefined, vhost: '__defaultVhost__', app: 'live', stream: 'cam1', key: '/live/cam1' })
  t.equal(await check.beforeEviction('holder'), undefined)
  t.equal(await check.ask(), undefined)
  t.equal(platform.of('on_publish').length, 1)
  t.match(platform.of('on_publish')[0]!.body, { ip: '', param: '', client_id: 'c1', server_id: 's1', stream_url: '/live/cam1' })
  t.same(await svc.notify('srs', 'on_unpublish', req({ client_id: 'holder', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' })), { forward: 'not-forwarded-replaced', replacedBy: 'c1' })
})

t.test('the delivery\'s odd rows: a replaced publisher\'s header, a target without a URL, one gone from the file, one the platform refuses', async (t) => {
  const { platform, outbox, delivery, results, logs } = await rig(t, { start: false })
  const at = Date.now()
  const add = async (lane: string, target: Target, action: string, key: string, replacedBy?: string) =>
    await outbox.add({ lane, target, action, body: JSON.stringify({ action, key }), key, replacedBy, at })
  await add('srs:/live/cam1', 'srs', 'on_unpublish', 'k1', 'newcomer-1')
  await add('zlm:/live/cam2', 'zlm', 'on_stream_changed', 'k2')
  await delivery.start()
  await platform.waitFor((r) => r.some((x) => x.headers['idempotency-key'] === 'k1'))
  t.equal(platform.received[0]!.headers['x-srs-hooks-replaced-by'], 'newcomer-1', 'a row stored with who replaced its publisher says so')
  await waitFor(() => delivery.lastError.zlm, 5000, 'the ZLMediaKit row to fail')
  t.match(delivery.lastError.zlm, { action: 'on_stream_changed', error: 'no platform URL for zlm\'s hooks' }, 'a row whose target has no URL any more waits, and says why')
  t.ok(results.some(([target, r]) => target === 'zlm' && r === 'failed'))
  await waitFor(() => delivery.depth === 1, 5000, 'only the ZLMediaKit row to wait')

  // A row gone from the file (removed by another process): skipped, the lane goes on.
  delivery.added({ seq: 10_000, lane: 'srs:/live/cam3', since: at, attempts: 0, nextAt: at })
  await add('srs:/live/cam3', 'srs', 'on_stop', 'k3')
  const k3 = (await outbox.waiting()).find((w) => w.lane === 'srs:/live/cam3')!
  delivery.added(k3)
  await platform.waitFor((r) => r.some((x) => x.headers['idempotency-key'] === 'k3'))
  t.notOk(platform.received.some((x) => x.headers['idempotency-key'] === undefined))

  platform.modes.set('on_dvr', { kind: 'status', status: 409 })
  await add('srs:/live/cam4', 'srs', 'on_dvr', 'k4')
  delivery.added((await outbox.waiting()).find((w) => w.lane === 'srs:/live/cam4')!)
  await waitFor(() => results.some(([, r]) => r === 'refused'), 5000, 'the refusal')
  t.match(delivery.lastError.srs, { action: 'on_dvr', error: /^refused: HTTP 409/ })
  t.match(await logs.wait((l) => /did not take a notification/.test(l.msg) && l.action === 'on_dvr'), { error: /^refused: HTTP 409/ })
  platform.modes.delete('on_dvr')
  await platform.waitFor(() => results.filter(([, r]) => r === 'delivered').length === 3, 5000, 'the refused one delivered once taken')
})

t.test('a row already older than FORWARD_MAX_AGE at its first attempt becomes a dead letter with "not delivered"', async (t) => {
  let clock = 1_800_000_000_000
  const { outbox, delivery, platform, results } = await rig(t, { maxAgeMs: 1000, now: () => clock, start: false })
  await outbox.add({ lane: 'srs:/live/cam1', target: 'srs', action: 'on_stop', body: '{}', key: 'k1', at: clock })
  clock += 1001
  await delivery.start()
  await waitFor(() => outbox.counts.dead === 1, 5000, 'the dead letter')
  t.match(await outbox.dead(0, 10), [{ key: 'k1', lastError: 'older than FORWARD_MAX_AGE: not delivered' }])
  t.same(results, [['srs', 'dead']])
  t.equal(platform.received.length, 0, 'never sent')
})

t.test('the client: a URL without a path posts to /; a failure without a code says its message; a dispatcher of its own is left open', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const bare = new PlatformClient({ url: `http://127.0.0.1:${String(platform.port)}`, headers: {} })
  t.teardown(() => bare.close())
  t.equal(bare.where, `http://127.0.0.1:${String(platform.port)}/`)
  t.match(await bare.post('on_publish', '{}', 2000), { ok: true, status: 200 })
  t.equal(platform.received[0]!.path, '/')
  let closed = false
  const failing = { request: async () => { throw new Error('socket hang up') }, close: async () => { closed = true } } as unknown as Dispatcher
  const c = new PlatformClient({ url: platform.url, headers: {}, dispatcher: failing })
  t.match(await c.post('on_publish', '{}', 2000), { ok: false, kind: 'unreachable', message: 'socket hang up' })
  t.match(await c.post('on_publish', '{}', 0), { ok: false, kind: 'timeout', message: 'no time left to ask the platform', ms: 0 })
  await c.close()
  t.equal(closed, false, 'not its own to close')
})
