import { connect, type Socket } from 'node:net'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { serverOptionsOf } from '../src/http/edge.js'
import { postHook, startApp, startWorld, waitFor } from './fixtures/app.js'

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
  const timeoutMs = 1500
  const { sim, url, hookBase, app, logs } = await startWorld(t, { REQUEST_TIMEOUT_MS: String(timeoutMs) })
  const { port } = app.server.address() as { port: number }
  // Half on the hook front's path (a sized body), half on Fastify's (chunked), and a few that send
  // only part of their headers or nothing at all.
  const held: Held[] = []
  for (let i = 0; i < 220; i++) {
    const send = i % 10 === 9
      ? (i % 20 === 9 ? '' : `POST ${CALLBACK}/on_publish HTTP/1.1\r\nHost: x\r\nContent-Ty`)
      : i % 2 === 0
        ? partialBody(`${CALLBACK}/on_publish`)
        : `POST ${CALLBACK}/on_play HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"act\r\n`
    held.push(await hold(port, send))
  }
  const opened = Date.now()
  // Hooks are answered meanwhile, on both request paths: a publish through SRS, and a hook with a chunked body.
  const cam = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(cam.ok, 'a camera publishes')
  const played = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: 'p1', ip: '10.0.0.2', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '' })
  t.same(played.reply, { code: 0, msg: null })
  t.equal(held.filter((h) => h.closed).length, 0, 'while every slow client still held its connection')
  // Every one is cut: within the bound and Node's check interval, with a margin for a loaded machine.
  await waitFor(() => held.every((h) => h.closed), timeoutMs + 150 + 5000, 'every slow connection closed')
  t.ok(Date.now() - opened >= timeoutMs - 100, 'not before the bound')
  for (const h of held) {
    t.match(h.received, /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*Connection: close[\s\S]*\r\n\r\n\{"code":4008,"msg":"the request's headers and body did not arrive within 1500 ms \(REQUEST_TIMEOUT_MS\)"\}$/)
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
