import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { Agent } from 'undici'
import { SrsApiError } from '../src/errors.js'
import { bodyText } from '../src/http/dispatcher.js'
import { SrsApi } from '../src/srs/api.js'
import { json, StubServer, type StubHandler } from './fixtures/stub-server.js'

const envelope = { code: 0, server: 'vid-1', service: 's1', pid: '1' }
const stream = (i: number, active = true) => ({
  id: `vid-${String(i).padStart(7, '0')}`,
  name: `s${i}`,
  vhost: 'vid-v',
  app: 'live',
  url: `/live/s${i}`,
  clients: 1,
  recv_bytes: 10,
  publish: active ? { active: true, cid: `c${i}` } : { active: false }
})

async function setup (t: Test, handler: StubHandler, opts: Partial<ConstructorParameters<typeof SrsApi>[0]> = {}) {
  const stub = await StubServer.start(handler)
  const api = new SrsApi({ url: stub.url, timeoutMs: 500, retries: 2, pageSize: 10, random: () => 0, ...opts })
  t.teardown(async () => { await api.close(); await stub.close() })
  return { stub, api }
}

async function failure (p: Promise<unknown>): Promise<SrsApiError> {
  try {
    await p
  } catch (err) {
    if (err instanceof SrsApiError) return err
    throw err
  }
  throw new Error('expected the call to fail')
}

t.test('reads versions, streams, one stream, clients and one client', async (t) => {
  const { api, stub } = await setup(t, (req, res) => {
    const url = req.url ?? ''
    if (url === '/api/v1/versions') return json(res, { ...envelope, data: { major: 6, minor: 0, revision: 184, version: '6.0.184' } })
    if (url.startsWith('/api/v1/streams/?')) return json(res, { ...envelope, streams: [stream(1), { ...stream(2, false), url: undefined, clients: undefined, recv_bytes: undefined }, { ...stream(3), publish: undefined }] })
    if (url === '/api/v1/streams/vid-0000001') return json(res, { ...envelope, stream: stream(1) })
    if (url === '/api/v1/streams/vid-gone') return json(res, { code: 2048 })
    if (url.startsWith('/api/v1/clients/?')) return json(res, { ...envelope, clients: [{ id: 'c1', stream: 'vid-0000001', type: 'fmle-publish', publish: true }] })
    if (url === '/api/v1/clients/c1') return json(res, { ...envelope, client: { id: 'c1', stream: 'vid-0000001', url: '/live/s1', name: 's1', ip: '10.0.0.7', type: 'fmle-publish', publish: true, alive: 1.5, recv_bytes: 99 } })
    if (url === '/api/v1/clients/odd') return json(res, { ...envelope, client: { id: 'odd' } })
    if (url === '/api/v1/clients/gone') return json(res, { code: 2049 })
    json(res, {}, 404)
  })
  t.same(await api.versions(), { version: '6.0.184', major: 6, minor: 0, revision: 184 })
  const streams = await api.streams(0, 10)
  t.same(streams[0], { id: 'vid-0000001', name: 's1', app: 'live', vhost: 'vid-v', url: '/live/s1', clients: 1, recv_bytes: 10, publish: { active: true, cid: 'c1' } })
  t.same(streams[1], { id: 'vid-0000002', name: 's2', app: 'live', vhost: 'vid-v', publish: { active: false } })
  t.same(streams[2]?.publish, { active: false }, 'a stream without publish is not published')
  t.equal((await api.stream('vid-0000001'))?.publish.cid, 'c1')
  t.equal(await api.stream('vid-gone'), null, '2048 means no such stream')
  t.equal((await api.clients(0, 10))[0]?.id, 'c1')
  t.same(await api.client('c1'), { id: 'c1', stream: 'vid-0000001', type: 'fmle-publish', publish: true, url: '/live/s1', name: 's1', ip: '10.0.0.7', alive: 1.5, recv_bytes: 99 })
  t.same(await api.client('odd'), { id: 'odd', stream: '', type: '', publish: false }, 'missing fields read as empty')
  t.equal(await api.client('gone'), null, '2049 means the client is gone')
  t.ok(stub.requests.every((r) => r.headers.authorization === undefined), 'no credentials unless configured')
})

t.test('allStreams pages until a short page, with the slash SRS routes need', async (t) => {
  const all = Array.from({ length: 25 }, (_, i) => stream(i))
  const { api, stub } = await setup(t, (req, res) => {
    const q = new URL(req.url ?? '', 'http://x').searchParams
    const start = Number(q.get('start'))
    json(res, { ...envelope, streams: all.slice(start, start + Number(q.get('count'))) })
  })
  const got = await api.allStreams()
  t.equal(got.length, 25)
  t.same(stub.requests.map((r) => r.url), [
    '/api/v1/streams/?start=0&count=10', '/api/v1/streams/?start=10&count=10', '/api/v1/streams/?start=20&count=10'
  ])
})

t.test('a kick answers kicked, or gone for 2049, and is never retried', async (t) => {
  let status = 200
  const { api, stub } = await setup(t, (req, res) => {
    if (status !== 200) return json(res, {}, status)
    json(res, req.url === '/api/v1/clients/gone' ? { code: 2049 } : envelope)
  })
  t.equal(await api.kick('c1'), 'kicked')
  t.equal(stub.requests[0]?.method, 'DELETE')
  t.equal(await api.kick('gone'), 'gone')
  status = 500
  const err = await failure(api.kick('c1'))
  t.equal(err.kind, 'http_status')
  t.equal(stub.requests.length, 3, 'one DELETE, no retry')
})

t.test('Basic credentials are sent; a 401 is an unauthorized error, not retried', async (t) => {
  const { api, stub } = await setup(t, (req, res) => {
    if (req.headers.authorization !== 'Basic ' + Buffer.from('admin:pw').toString('base64')) {
      res.writeHead(401, { 'www-authenticate': 'Basic' })
      return res.end()
    }
    json(res, { ...envelope, streams: [] })
  }, { auth: { username: 'admin', password: 'pw' } })
  t.same(await api.streams(0, 10), [])
  const bad = new SrsApi({ url: stub.url, timeoutMs: 500, retries: 2, pageSize: 10, auth: { username: 'admin', password: 'wrong' } })
  t.teardown(() => bad.close())
  const err = await failure(bad.streams(0, 10))
  t.equal(err.kind, 'unauthorized')
  t.equal(err.detail, 401)
  t.equal(err.retryable, false)
  t.equal(stub.requests.length, 2)
})

t.test('a 5xx read is retried with backoff, then reported', async (t) => {
  let n = 0
  const { api, stub } = await setup(t, (_req, res) => {
    n++
    if (n < 3) return json(res, { error: true }, 503)
    json(res, { ...envelope, streams: [] })
  })
  t.same(await api.streams(0, 10), [], 'the third try succeeds')
  n = -10
  const err = await failure(api.streams(0, 10))
  t.equal(err.kind, 'http_status')
  t.equal(err.detail, 503)
  t.equal(stub.requests.length, 6, 'three tries each (retries=2)')
})

t.test('garbage is a bad_body error, not retried', async (t) => {
  const bodies = ['<html>oops</html>', '[1,2]', '{"code":"0"}', 'null']
  let i = 0
  const { api, stub } = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(bodies[i++])
  })
  for (const body of bodies) {
    const err = await failure(api.streams(0, 10))
    t.equal(err.kind, 'bad_body', body)
  }
  t.equal(stub.requests.length, bodies.length)
})

t.test('answers of the wrong shape are bad_body errors', async (t) => {
  const answers: unknown[] = [
    { ...envelope }, // versions without data
    { ...envelope }, // streams without a list
    { ...envelope, streams: [{ id: 1 }] }, // stream without a string id
    { ...envelope }, // clients without a list
    { ...envelope, client: 'x' }
  ]
  let i = 0
  const { api } = await setup(t, (_req, res) => json(res, answers[i++]))
  t.equal((await failure(api.versions())).kind, 'bad_body')
  t.equal((await failure(api.streams(0, 10))).kind, 'bad_body')
  t.equal((await failure(api.streams(0, 10))).kind, 'bad_body')
  t.equal((await failure(api.clients(0, 10))).kind, 'bad_body')
  t.equal((await failure(api.client('c'))).kind, 'bad_body')
})

t.test('an unexpected SRS code is an api_code error', async (t) => {
  const { api } = await setup(t, (req, res) => json(res, { code: req.method === 'DELETE' ? 400 : 2048 }))
  const err = await failure(api.client('c1'))
  t.equal(err.kind, 'api_code', '2048 is not an answer for a client')
  t.equal(err.detail, 2048)
  t.equal((await failure(api.kick('hls-viewer'))).detail, 400, 'a kick of a client without a connection')
})

t.test('a slow SRS times out within SRS_API_TIMEOUT_MS on every try', async (t) => {
  const { api } = await setup(t, () => { /* never answers */ }, { timeoutMs: 100, retries: 1 })
  const started = Date.now()
  const err = await failure(api.streams(0, 10))
  const took = Date.now() - started
  t.equal(err.kind, 'timeout')
  t.ok(err.retryable)
  t.ok(took >= 190 && took < 2000, `two tries of 100 ms (took ${took} ms)`)
})

t.test('a body that stalls half-way times out too', async (t) => {
  const { api } = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 })
    res.write('{"code":0,')
  }, { timeoutMs: 100, retries: 0 })
  t.equal((await failure(api.streams(0, 10))).kind, 'timeout')
})

t.test('the caller\'s deadline bounds the call and its retries', async (t) => {
  let now = 1000
  const { api, stub } = await setup(t, (_req, res) => json(res, {}, 500), { now: () => now, random: () => 1 })
  const none = await failure(api.streams(0, 10, { deadline: 1000 }))
  t.equal(none.kind, 'deadline', 'no time left: fails without a request, as a used-up bound, not as SRS timing out')
  t.equal(stub.requests.length, 0)
  const err = await failure(api.streams(0, 10, { deadline: 1010 }))
  t.equal(err.kind, 'http_status', 'a retry that would pass the deadline is not made')
  t.equal(stub.requests.length, 1)
  now = 0
})

t.test('a dead SRS is unreachable', async (t) => {
  const stub = await StubServer.start(() => {})
  const url = stub.url
  await stub.close()
  const api = new SrsApi({ url, timeoutMs: 500, retries: 1, pageSize: 10, random: () => 0 })
  t.teardown(() => api.close())
  const err = await failure(api.stream('vid-1'))
  t.equal(err.kind, 'unreachable')
  t.equal(api.requests, 2, 'retried once')
  t.match(err.message, /unreachable/)
})

t.test('a connection reset mid-answer is unreachable', async (t) => {
  const { api } = await setup(t, (req) => { req.socket.destroy() }, { retries: 0 })
  t.equal((await failure(api.streams(0, 10))).kind, 'unreachable')
})

t.test('an injected dispatcher is used and left open on close', async (t) => {
  const stub = await StubServer.start((_req, res) => json(res, { ...envelope, streams: [] }))
  const agent = new Agent()
  const api = new SrsApi({ url: stub.url, timeoutMs: 500, retries: 0, pageSize: 10, dispatcher: agent })
  t.same(await api.streams(0, 10), [])
  await api.close()
  t.equal(agent.closed, false)
  await agent.close()
  await stub.close()
})

t.test('a body is decoded as its chunks arrive, characters split between chunks included', async (t) => {
  const text = JSON.stringify({ code: 0, streams: [{ name: 'caméra-東京-🎥' }] })
  const bytes = Buffer.from(text)
  // One byte per chunk: every character of more than one byte is split.
  t.equal(await bodyText(Readable.from(Array.from(bytes, (b) => Buffer.of(b)))), text)
  t.equal(await bodyText(Readable.from([])), '', 'an empty body')
  t.equal(await bodyText(Readable.from([Buffer.from('\ufeff{"code":0}')])), '{"code":0}', 'a byte order mark dropped, as body.text() drops it')
  const broken = new Readable({ read () { this.destroy(new Error('reset')) } })
  await t.rejects(bodyText(broken), /reset/, 'a body cut short fails the read')
})

t.test('names in other scripts survive a listing that arrives a byte at a time', async (t) => {
  const name = 'caméra-東京-🎥'
  const bytes = Buffer.from(JSON.stringify({ ...envelope, streams: [{ ...stream(1), name }] }))
  const { api } = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    let sent = 0
    const next = (): void => {
      if (sent === bytes.length) res.end()
      else res.write(bytes.subarray(sent, ++sent), () => setImmediate(next))
    }
    next()
  })
  t.equal((await api.streams(0, 10))[0]?.name, name)
})
