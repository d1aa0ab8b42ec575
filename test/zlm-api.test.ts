import t, { type Test } from 'tap'
import { ZlmApi, ZlmApiError } from '../src/zlm/api.js'
import { json, StubServer, type StubHandler } from './fixtures/stub-server.js'

/**
 * ZLMediaKit's API client against a programmable server: every code ZLMediaKit answers, every way
 * the answer can be broken, and the secret kept out of URLs and messages.
 */

const SECRET = 'api-secret-0123456789abcdef'

interface Seen { name: string, args: URLSearchParams, url: string, type: string | undefined }

async function setup (t: Test, answer: (name: string, args: URLSearchParams) => unknown, opts: Partial<ConstructorParameters<typeof ZlmApi>[0]> = {}) {
  const seen: Seen[] = []
  const handler: StubHandler = (req, res, body) => {
    const url = req.url ?? ''
    const name = url.replace('/index/api/', '')
    const args = new URLSearchParams(body)
    seen.push({ name, args, url, type: req.headers['content-type'] })
    const a = answer(name, args)
    if (a === 'hang') return
    if (typeof a === 'function') return (a as StubHandler)(req, res, body)
    json(res, a)
  }
  const stub = await StubServer.start(handler)
  const api = new ZlmApi({ url: stub.url, secret: () => SECRET, timeoutMs: 300, retries: 2, random: () => 0, ...opts })
  t.teardown(async () => { await api.close(); await stub.close() })
  return { stub, api, seen }
}

async function failure (p: Promise<unknown>): Promise<ZlmApiError> {
  try {
    await p
  } catch (err) {
    if (err instanceof ZlmApiError) return err
    throw err
  }
  throw new Error('expected the call to fail')
}

const media = (extra: Record<string, unknown> = {}) => ({
  schema: 'rtmp',
  vhost: '__defaultVhost__',
  app: 'live',
  stream: 'cam1',
  originTypeStr: 'rtmp_push',
  totalBytes: 10,
  readerCount: 1,
  totalReaderCount: 2,
  aliveSecond: 3,
  createStamp: 1_700_000_000,
  originSock: { identifier: '6-11', peer_ip: '10.0.0.7', peer_port: 4000 },
  ...extra
})

t.test('reads the media list, sessions, configuration and the RTP map; acts on sessions and RTP servers', async (t) => {
  const { api, seen } = await setup(t, (name, args) => {
    switch (name) {
      case 'getMediaList': return args.get('stream') === 'none' ? { code: 0 } : { code: 0, data: [media(), media({ schema: 'rtsp', originSock: null, originTypeStr: undefined, totalBytes: 'x' })] }
      case 'getAllSession': return { code: 0, data: [{ id: '6-11', peer_ip: '10.0.0.7', peer_port: 4000, local_port: 1935, typeid: 'mediakit::RtmpSession' }, { id: '7-12' }] }
      case 'getServerConfig': return { code: 0, data: [{ 'general.mediaServerId': 'zlm-1', 'api.secret': SECRET, 'hook.timeoutSec': '10', odd: 5 }] }
      case 'listRtpServer': return { code: 0, data: [{ vhost: '__defaultVhost__', app: 'rtp', stream_id: 'gb1', port: 30000, ssrc: 7, tcp_mode: 1 }, { stream_id: 'gb2', port: 30002 }] }
      case 'kick_session': return args.get('id') === 'gone' ? { code: -1, msg: 'can not find the target' } : { code: 0 }
      case 'openRtpServer': return { code: 0, port: 30004 }
      case 'closeRtpServer': return { code: 0, hit: args.get('stream_id') === 'gb1' ? 1 : 0 }
    }
    return { code: -1 }
  })
  const list = await api.mediaList({ vhost: '__defaultVhost__', app: 'live', stream: 'cam1' })
  t.same(list[0], { schema: 'rtmp', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', originTypeStr: 'rtmp_push', identifier: '6-11', peerIp: '10.0.0.7', peerPort: 4000, totalBytes: 10, readerCount: 1, totalReaderCount: 2, aliveSecond: 3, createStamp: 1_700_000_000 })
  t.match(list[1], { schema: 'rtsp', originTypeStr: 'unknown', identifier: undefined, totalBytes: undefined }, 'a source without an origin (a crashed publisher left it)')
  t.same(await api.mediaList({ stream: 'none' }), [], 'no data member: nothing')
  t.same(await api.sessions({ peer_ip: '10.0.0.7' }), [
    { id: '6-11', peerIp: '10.0.0.7', peerPort: 4000, localPort: 1935, typeid: 'mediakit::RtmpSession' },
    { id: '7-12', peerIp: '', peerPort: 0, localPort: 0, typeid: '' }
  ])
  t.same(await api.serverConfig(), { 'general.mediaServerId': 'zlm-1', 'api.secret': SECRET, 'hook.timeoutSec': '10' }, 'string values only')
  t.same(await api.rtpServers(), [
    { vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb1', port: 30000, ssrc: 7, tcpMode: 1 },
    { vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb2', port: 30002, ssrc: 0, tcpMode: 0 }
  ])
  t.equal(await api.kickSession('6-11'), 'kicked')
  t.equal(await api.kickSession('gone'), 'gone', '-1 "can not find the target": the session is gone')
  t.equal(await api.openRtpServer({ vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb 3', port: 0, tcpMode: 0, ssrc: 0 }), 30004)
  t.equal(await api.closeRtpServer({ vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb1' }), true)
  t.equal(await api.closeRtpServer({ vhost: '__defaultVhost__', app: 'rtp', streamId: 'gb9' }), false)
  t.ok(seen.every((s) => s.type === 'application/x-www-form-urlencoded' && s.args.get('secret') === SECRET), 'every call is a form carrying the secret')
  t.ok(seen.every((s) => !s.url.includes(SECRET)), 'the secret is never in a URL')
  t.equal(seen.find((s) => s.name === 'openRtpServer')!.args.get('stream_id'), 'gb 3', 'values are percent-encoded')
  t.equal(api.requests, seen.length)
})

t.test('every failure code is an error of its kind, naming the call, never the secret', async (t) => {
  const { api } = await setup(t, (name, args) => {
    const code = Number(args.get('stream') ?? args.get('id') ?? args.get('stream_id'))
    return { code, msg: code === -300 ? 'This stream already exists' : `failed with ${code}` }
  })
  for (const code of [-1, -100, -200, -300, -400, -500, 7]) {
    const e = await failure(api.mediaList({ stream: String(code) }))
    t.equal(e.kind, code === -100 ? 'unauthorized' : 'api_code', `code ${code}`)
    t.equal(e.detail, code)
    t.equal(e.retryable, false, 'not retried')
    t.notOk(e.message.includes(SECRET))
  }
  const exists = await failure(api.openRtpServer({ vhost: 'v', app: 'rtp', streamId: '-300', port: 0, tcpMode: 0, ssrc: 0 }))
  t.match(exists, { kind: 'api_code', detail: -300, zlmMsg: 'This stream already exists' })
  t.match(exists.message, /openRtpServer: ZLMediaKit answered code -300 "This stream already exists"/)
  const auth = await failure(api.kickSession('-100'))
  t.match(auth.message, /refused the API secret \(-100 "failed with -100"\); set ZLM_SECRET/)
  t.equal((await failure(api.kickSession('-500'))).detail, -500, 'kick_session maps only -1 to gone')
})

t.test('a broken answer is bad_body: not JSON, no integer code, data of the wrong shape', async (t) => {
  const answers: Record<string, unknown> = {
    notJson: (_req: unknown, res: import('node:http').ServerResponse) => { res.writeHead(200); res.end('{"code":0,"data":[{"app":') },
    noCode: { data: [] },
    floatCode: { code: 0.5 },
    array: [0],
    dataObject: { code: 0, data: {} },
    entryNotObject: { code: 0, data: [1] },
    entryWithoutNames: { code: 0, data: [{ schema: 'rtmp' }] }
  }
  const { api } = await setup(t, (_name, args) => answers[args.get('stream')!])
  for (const what of Object.keys(answers)) {
    const e = await failure(api.mediaList({ stream: what }))
    t.equal(e.kind, 'bad_body', what)
    t.equal(e.retryable, false)
  }
})

t.test('answers of the wrong shape for sessions, configuration, the RTP map and an open', async (t) => {
  const { api } = await setup(t, (name) => {
    switch (name) {
      case 'getAllSession': return { code: 0, data: [{ peer_ip: 'x' }] }
      case 'getServerConfig': return { code: 0 }
      case 'listRtpServer': return { code: 0, data: [{ stream_id: 'gb1' }] }
      case 'openRtpServer': return { code: 0 }
    }
  })
  t.match(await failure(api.sessions({})), { kind: 'bad_body', message: /a session without id/ })
  t.match(await failure(api.serverConfig()), { kind: 'bad_body', message: /no data\[0\]/ })
  t.match(await failure(api.rtpServers()), { kind: 'bad_body', message: /without stream_id or port/ })
  t.match(await failure(api.openRtpServer({ vhost: 'v', app: 'a', streamId: 's', port: 0, tcpMode: 0, ssrc: 0 })), { kind: 'bad_body', message: /no integer port/ })
})

t.test('HTTP errors: 5xx reads are retried, then fail; other statuses are not retried', async (t) => {
  let calls = 0
  const { api } = await setup(t, (_name, args) => (_req: unknown, res: import('node:http').ServerResponse) => {
    calls++
    res.writeHead(Number(args.get('stream')))
    res.end('<html>error</html>')
  })
  t.match(await failure(api.mediaList({ stream: '500' })), { kind: 'http_status', detail: 500 })
  t.equal(calls, 3, 'one call and two retries')
  calls = 0
  t.match(await failure(api.mediaList({ stream: '404' })), { kind: 'http_status', detail: 404 })
  t.equal(calls, 1)
})

t.test('a dead API is unreachable and retried for reads; the request was not sent', async (t) => {
  const stub = await StubServer.start((_req, res) => json(res, { code: 0 }))
  const url = stub.url
  await stub.close()
  const api = new ZlmApi({ url, secret: () => SECRET, timeoutMs: 300, retries: 1, random: () => 0 })
  t.teardown(() => api.close())
  const e = await failure(api.mediaList({}))
  t.match(e, { kind: 'unreachable', unknownOutcome: false })
  t.equal(api.up, false)
  t.equal(api.requests, 2, 'retried once')
})

t.test('a slow API times out within ZLM_API_TIMEOUT_MS or the caller\'s deadline; the outcome of an action is unknown', async (t) => {
  const { api } = await setup(t, () => 'hang', { retries: 0 })
  const started = Date.now()
  const e = await failure(api.openRtpServer({ vhost: 'v', app: 'a', streamId: 's', port: 0, tcpMode: 0, ssrc: 0 }))
  t.match(e, { kind: 'timeout', unknownOutcome: true })
  t.ok(Date.now() - started < 2000, 'bounded')
  const deadline = Date.now() + 100
  const d = await failure(api.mediaList({}, { deadline }))
  t.equal(d.kind, 'timeout')
  t.ok(Date.now() - deadline < 500, 'the deadline wins over the timeout')
  t.match(await failure(api.mediaList({}, { deadline: Date.now() - 1 })), { kind: 'deadline', message: /no time left/ }, 'nothing is sent past the deadline')
})

t.test('a retry stops at the caller\'s deadline', async (t) => {
  const { api, seen } = await setup(t, () => (_req: unknown, res: import('node:http').ServerResponse) => { res.writeHead(503); res.end() }, { random: () => 1, retries: 5 })
  // The first pause (25 ms) would end past the deadline: the failure is thrown at once.
  const e = await failure(api.mediaList({}, { deadline: Date.now() + 10 }))
  t.equal(e.kind, 'http_status')
  t.equal(seen.length, 1, 'no retry that could not finish in time')
})

t.test('without a secret nothing is sent; a secret can be tried for one call', async (t) => {
  let secret: string | undefined
  const { api, seen } = await setup(t, (_name, args) => args.get('secret') === 'other-secret' ? { code: 0, data: [{}] } : { code: -100, msg: 'Incorrect secret' }, { secret: () => secret })
  t.match(await failure(api.serverConfig()), { kind: 'unauthorized', message: /no API secret for this ZLMediaKit yet/ })
  t.equal(seen.length, 0, 'nothing was sent')
  t.same(await api.serverConfig({ secret: 'other-secret' }), {})
  secret = 'wrong'
  t.match(await failure(api.serverConfig()), { kind: 'unauthorized', detail: -100 })
})

t.test('a connection cut in the middle of an answer is unreachable, its outcome unknown', async (t) => {
  const { api } = await setup(t, () => (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
    res.write('{"code":0,"data":[')
    setImmediate(() => res.socket?.destroy())
  }, { retries: 0 })
  const e = await failure(api.kickSession('6-11'))
  t.match(e, { kind: 'unreachable', unknownOutcome: true })
  t.equal(api.up, false)
})

t.test('a failure code without words, an origin named by an empty id, an error whose code is on its cause', async (t) => {
  const { api } = await setup(t, (name) => name === 'getMediaList'
    ? { code: 0, data: [{ schema: 'rtmp', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', originSock: { identifier: '' } }] }
    : { code: -500 })
  t.equal((await api.mediaList({}))[0]!.identifier, undefined, 'an empty identifier is no origin')
  const e = await failure(api.kickSession('x'))
  t.match(e, { kind: 'api_code', detail: -500, zlmMsg: undefined, message: /kick_session: ZLMediaKit answered code -500$/ })
  const dispatcher = { request: async () => { throw Object.assign(new Error('socket hang up'), { cause: { code: 'ECONNREFUSED' } }) }, close: async () => {} }
  const api2 = new ZlmApi({ url: 'http://127.0.0.1:1', secret: () => SECRET, timeoutMs: 100, retries: 0, dispatcher: dispatcher as never })
  t.match(await failure(api2.mediaList({})), { kind: 'unreachable', unknownOutcome: false }, 'refused: the request was not sent')
  await api2.close()
})
