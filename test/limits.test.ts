import { symlinkSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { serverOptionsOf } from '../src/http/edge.js'
import { postHook, startApp, startWorld, waitFor } from './fixtures/app.js'
import { dvr } from './fixtures/recordings-suite.js'

/**
 * What a stranger can hold: connections, memory, the files srs-hooks looks at. Each bound is
 * reached over real sockets and HTTP, and hooks stay answered while it is.
 */

const CALLBACK = '/admin-api/video/camera/callback'

const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const m = new RegExp(`^srs_hooks_${name} (\\d+)$`, 'm').exec(text)
  return m === null ? NaN : Number(m[1])
}

/** A raw connection and what it received until it closed. */
interface Held { socket: Socket, received: string, closed: boolean }

async function hold (port: number, send: string): Promise<Held> {
  return await new Promise((resolve, reject) => {
    const h: Held = { socket: connect(port, '127.0.0.1'), received: '', closed: false }
    h.socket.setEncoding('utf8')
    h.socket.on('data', (d: string) => { h.received += d })
    h.socket.on('close', () => { h.closed = true })
    h.socket.on('error', () => {})
    h.socket.once('connect', () => {
      if (send !== '') h.socket.write(send)
      resolve(h)
    })
    h.socket.once('error', reject)
  })
}

const partialBody = (path: string): string =>
  `POST ${path} HTTP/1.1\r\nHost: srs-hooks\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"action":"on_publish","client_id":`

t.test('REQUEST_TIMEOUT_MS and MAX_CONNECTIONS are read, checked and defaulted', async (t) => {
  const c = loadConfig({})
  t.equal(c.REQUEST_TIMEOUT_MS, 10_000)
  t.equal(c.MAX_CONNECTIONS, 2048)
  t.throws(() => loadConfig({ REQUEST_TIMEOUT_MS: '50' }), /REQUEST_TIMEOUT_MS="50"/)
  t.throws(() => loadConfig({ MAX_CONNECTIONS: '0' }), /MAX_CONNECTIONS="0"/)
  t.same(serverOptionsOf(10_000), { headersTimeout: 10_000, requestTimeout: 10_000, connectionsCheckingInterval: 1000 }, 'a 10 s bound is enforced within a second')
  t.equal(serverOptionsOf(100).connectionsCheckingInterval, 25)
})

t.test('220 clients that send headers and part of a body are answered 408 and closed within the bound, while hooks are answered', async (t) => {
  const timeoutMs = 4000
  const { sim, url, hookBase, app, logs } = await startWorld(t, { REQUEST_TIMEOUT_MS: String(timeoutMs) })
  const { port } = app.server.address() as { port: number }
  // Half on the hook front's path (a sized body), half on Fastify's (chunked), and a few that send
  // only part of their headers or nothing at all.
  const opened = Date.now()
  const held = await Promise.all(Array.from({ length: 220 }, async (_, i) => {
    const send = i % 10 === 9
      ? (i % 20 === 9 ? '' : `POST ${CALLBACK}/on_publish HTTP/1.1\r\nHost: x\r\nContent-Ty`)
      : i % 2 === 0
        ? partialBody(`${CALLBACK}/on_publish`)
        : `POST ${CALLBACK}/on_play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"act\r\n`
    return await hold(port, send)
  }))
  // Hooks are answered meanwhile, on both request paths: a publish through SRS, and a hook with a chunked body.
  const cam = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(cam.ok, 'a camera publishes')
  const played = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'p1', ip: '10.0.0.2', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '' })
  t.same(played.reply, { code: 0, msg: null })
  const stillHeld = held.filter((h) => !h.closed).length
  t.ok(stillHeld > 0, `while slow clients held their connections (${stillHeld} still open)`)
  // Every one is cut: within the bound and Node's check interval, with a margin for a loaded machine.
  await waitFor(() => held.every((h) => h.closed), timeoutMs + 150 + 5000, 'every slow connection closed')
  t.ok(Date.now() - opened >= timeoutMs - 100, 'not before the bound')
  t.ok(held.every((h) => h.received.startsWith('HTTP/1.1 408')), 'each one answered 408')
  for (const h of held) {
    t.match(h.received, /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*Connection: close[\s\S]*\r\n\r\n\{"code":4008,"msg":"the request's headers and body did not arrive within 4000 ms \(REQUEST_TIMEOUT_MS\)"\}$/)
  }
  t.equal(await metric(url, 'request_timeouts_total'), 220)
  const line = await logs.wait((l) => l.msg === 'request not received in time: answered 408, connection closed')
  t.match(line, { level: 40, caller: '127.0.0.1', timeoutMs })
  t.same((await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'p2', ip: '10.0.0.3', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '' })).reply, { code: 0, msg: null }, 'and after')
})

t.test('the bound is on receiving a request, not on answering it: a takeover that waits longer than it is answered', async (t) => {
  const { sim } = await startWorld(t, { REQUEST_TIMEOUT_MS: '300', TAKEOVER_TIMEOUT_MS: '3000' }, { releaseDelayMs: 800 })
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const started = Date.now()
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok, 'the newcomer is allowed after the release')
  t.ok(Date.now() - started >= 700, 'its on_publish waited for the release, past REQUEST_TIMEOUT_MS')
})

t.test('past MAX_CONNECTIONS new connections are closed at once, counted and logged; a hook gets in once the holders are cut', async (t) => {
  const { url, hookBase, app, logs } = await startApp(t, { MAX_CONNECTIONS: '16', REQUEST_TIMEOUT_MS: '1000' })
  const { port } = app.server.address() as { port: number }
  const held: Held[] = []
  for (let i = 0; i < 16; i++) held.push(await hold(port, partialBody(`${CALLBACK}/on_publish`)))
  const refused = await hold(port, '')
  await waitFor(() => refused.closed, 5000, 'the connection past the cap closed')
  t.equal(refused.received, '', 'closed without a word')
  const line = await logs.wait((l) => l.msg === 'connections refused: MAX_CONNECTIONS are held')
  t.match(line, { level: 40, dropped: 1, maxConnections: 16 })
  const more = await hold(port, '')
  await waitFor(() => more.closed, 5000, 'the next one closed too')
  t.equal(logs.lines.filter((l) => l.msg === 'connections refused: MAX_CONNECTIONS are held').length, 1, 'a flood is not a line per connection')
  t.equal(app.edge.dropped, 2)
  await waitFor(() => held.every((h) => h.closed), 8000, 'the holders cut by REQUEST_TIMEOUT_MS')
  const r = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'p1', ip: '10.0.0.2', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '' })
  t.same(r.reply, { code: 0, msg: null })
  t.equal(await metric(url, 'connections_dropped_total'), 2)
})

t.test('a malformed request or oversized headers are answered with a code and closed', async (t) => {
  const { app } = await startApp(t, {})
  const { port } = app.server.address() as { port: number }
  const bad = await hold(port, 'NOT HTTP\r\n\r\n')
  await waitFor(() => bad.closed, 5000, 'closed')
  t.match(bad.received, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\{"code":4000,"msg":"malformed HTTP request"\}$/)
  const big = await hold(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  await waitFor(() => big.closed, 5000, 'closed')
  t.match(big.received, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n[\s\S]*\{"code":4000,"msg":"the request's headers are too large"\}$/)
  // A caller that resets its connection mid-request: nobody to answer, nothing logged as refused.
  const reset = await hold(port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab')
  reset.socket.resetAndDestroy()
  await waitFor(() => reset.closed, 5000, 'closed')
  t.equal(app.edge.timedOut, 0)
})

t.test('on_dvr: only files under RECORDINGS_ROOTS are examined; others, and links or .. leading out, are indexed with why', async (t) => {
  const root = t.testdir({ live: { 'cam1.1700000000000.flv': 'x'.repeat(9000) }, secret: 'y'.repeat(4242) })
  const recordings = join(root, 'live')
  const outside = join(root, 'secret')
  symlinkSync(outside, join(recordings, 'cam1.1700000001000.flv'))
  const { hookBase, url, app, logs } = await startApp(t, { RECORDINGS_ROOTS: `${recordings}/, /nonexistent/dvr` })
  const sent = [
    { cwd: recordings, file: './cam1.1700000000000.flv' },
    { cwd: '/', file: outside },
    { cwd: recordings, file: '../secret' },
    { cwd: recordings, file: 'cam1.1700000001000.flv' },
    { cwd: recordings, file: '/etc/passwd' }
  ]
  for (const s of sent) t.equal((await postHook(hookBase, 'on_dvr', dvr({ ...s, client_id: `c${s.file.length}` }))).reply.code, 0, `${s.file} acknowledged`)
  await app.recordings.idle()
  const items = (await (await fetch(`${url}/admin-api/video/camera/recordings`)).json() as any).items as any[]
  const by = (file: string): any => items.find((i) => i.file === file)
  t.match(by('./cam1.1700000000000.flv'), { size: 9000, file_error: null }, 'under the root: examined')
  for (const f of [outside, '../secret', '/etc/passwd']) t.match(by(f), { size: null, mtime: null, path: null, file_error: 'outside RECORDINGS_ROOTS: not examined' }, f)
  t.match(by('cam1.1700000001000.flv'), { size: null, file_error: 'links outside RECORDINGS_ROOTS: not examined' }, 'a link out of the root')
  t.notOk(items.some((i) => i.size === 4242), 'the secret file\'s size shows nowhere')
  t.equal(logs.lines.filter((l) => l.msg === 'on_dvr names a file outside RECORDINGS_ROOTS: indexed, not examined').length, 3)
  await logs.wait((l) => l.msg === 'a recorded file\'s links lead outside RECORDINGS_ROOTS: not examined')
  t.throws(() => loadConfig({ RECORDINGS_ROOTS: 'objs/nginx/html' }), /RECORDINGS_ROOTS="objs\/nginx\/html": not an absolute folder: objs\/nginx\/html/)
  t.throws(() => loadConfig({ RECORDINGS_ROOTS: ' , ' }), /RECORDINGS_ROOTS/)
  t.equal(loadConfig({}).RECORDINGS_ROOTS, '/usr/local/srs/objs/nginx/html', 'by default SRS\'s own recordings folder in its image')
})

t.test('hook fields are bounded to what the media servers send: an 8 KB stream_url or app is refused, real lengths pass', async (t) => {
  const { hookBase, app } = await startApp(t, {})
  const publish = { action: 'on_publish', client_id: 'c1', ip: '203.0.113.9', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '?vhost=x', server_id: 'vid-x' }
  for (const [field, value] of [['stream_url', '/live/' + 'x'.repeat(8000)], ['app', 'a'.repeat(600)], ['vhost', 'v'.repeat(300)], ['param', '?k=' + 'p'.repeat(5000)], ['server_id', 's'.repeat(200)]] as const) {
    const r = await postHook(hookBase, 'on_publish', { ...publish, [field]: value })
    t.equal(r.status, 400, field)
    t.match(r.reply, { code: 4000, msg: new RegExp(`body/${field} must not have more than`) })
  }
  const dvrPath = await postHook(hookBase, 'on_dvr', dvr({ file: '/srv/' + 'f'.repeat(5000) }))
  t.equal(dvrPath.status, 400, 'a file path past PATH_MAX')
  t.equal(await app.publishers.store.size(), 0, 'nothing stored from them')
  const real = await postHook(hookBase, 'on_play', { ...publish, action: 'on_play', param: '?token=' + 't'.repeat(3000), tcUrl: 'rtmp://h/live?' + 'q'.repeat(3000), stream_url: '/' + 'a'.repeat(500) + '/' + 's'.repeat(500) })
  t.same(real.reply, { code: 0, msg: null }, 'a 3 KB query and long names are real enough')
})

t.test('the publisher table, flap history and failure counts are bounded in bytes, not only entries', async (t) => {
  const { MemoryPublisherStore, publisherBytes } = await import('../src/publishers/store.js')
  const store = new MemoryPublisherStore(200_000, 1024 * 1024)
  const entry = (i: number, name: string) => ({ server: 's', key: `/live/${name}${i}`, vhost: '__defaultVhost__', app: 'live', stream: `${name}${i}`, clientId: `c${i}`, since: 0, state: 'publishing' as const, takeovers: 0 })
  const long = 'x'.repeat(1500)
  for (let i = 0; i < 1000; i++) await store.set(entry(i, long))
  const kept = await store.list()
  t.ok(kept.length < 120, `${kept.length} forged entries of 1.5 KB names kept in 1 MiB`)
  t.ok(kept.reduce((n, p) => n + publisherBytes(p), 0) <= 1024 * 1024)
  t.equal((await store.get('s', `/live/${long}999`))?.clientId, 'c999', 'the newest kept')
  t.equal((await store.holders(`/live/${long}0`)).length, 0, 'the oldest gone, its indexes too')
  t.equal(await store.deleteByClient('s', 'c0'), undefined)
  for (let i = 0; i < 3000; i++) await store.set(entry(i, 'cam'))
  t.ok(await store.size() >= 1500, 'usual names: thousands fit')
  const { MemoryFlapStore } = await import('../src/publishers/flap.js')
  const flap = new MemoryFlapStore(10_000, 256 * 1024)
  for (let i = 0; i < 1000; i++) await flap.record(`/live/${long}${i}`, 1, 60_000)
  t.ok(flap.size < 100, `${flap.size} streams' flap history in 256 KiB`)
  const { MemoryFailureCounts } = await import('../src/auth/limiter.js')
  const counts = new MemoryFailureCounts({ now: () => 0, maxBytes: 64 * 1024 })
  for (let i = 0; i < 2000; i++) await counts.add(`ip-${'z'.repeat(60)}-${i}`, 1000)
  t.equal(await counts.get(`ip-${'z'.repeat(60)}-0`), 0, 'the oldest IPs forgotten first')
  t.equal(await counts.get(`ip-${'z'.repeat(60)}-1999`), 1)
})

t.test('the recordings index holds RECORDINGS_MAX_ROWS rows: past it on_dvr is refused with a clear reason, logged once', async (t) => {
  const { hookBase, url, app, logs } = await startApp(t, { RECORDINGS_MAX_ROWS: '3' })
  // Counted once the server serves (never on a hook's path).
  await fetch(`${url}/healthz`)
  // The SQLite worker's first start takes seconds under the tests' TypeScript loader on a busy machine.
  await waitFor(() => app.recordings.rows !== null, 30_000, 'the first count')
  for (let i = 0; i < 3; i++) t.equal((await postHook(hookBase, 'on_dvr', dvr({ file: `/srv/dvr/f${i}.flv` }))).reply.code, 0)
  t.equal(app.recordings.rows, 3)
  for (let i = 3; i < 6; i++) {
    const r = await postHook(hookBase, 'on_dvr', dvr({ file: `/srv/dvr/f${i}.flv` }))
    t.equal(r.status, 503)
    t.match(r.reply, { code: 1101, msg: /not stored: the recordings index holds RECORDINGS_MAX_ROWS=3 rows; set RECORDINGS_RETENTION_DAYS or raise RECORDINGS_MAX_ROWS/ })
  }
  t.equal(await app.recordings.count(), 3, 'nothing past the bound stored')
  const full = logs.lines.filter((l) => l.msg?.startsWith('the recordings index is full') === true)
  t.match(full, [{ level: 40, rows: 3, maxRows: 3 }], 'one line for the three')
  t.equal(app.recordings.counters.failed, 3)
})
