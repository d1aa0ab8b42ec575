// Tests of the SRS simulator itself, against a tiny hooks server that records what it receives.

import t from 'tap'
import http from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EventEmitter } from 'node:events'
import { Agent, request } from 'undici'
import { SrsSimulator, SrsCode, atoi, hookErrorCode } from './fixtures/srs-sim.js'
import type { HookCall, SimOptions } from './fixtures/srs-sim.js'

/** what the helpers need from a tap test */
interface Test { teardown: (fn: () => unknown) => void }

// ------------------------------------------------------------------ helpers

interface Received {
  hook: string
  url: string
  headers: IncomingHttpHeaders
  raw: string
  body: Record<string, unknown>
  remotePort: number
  /** resolves when the simulator dropped this connection before we answered */
  aborted: Promise<void>
}

interface Reply {
  status?: number
  body?: string
  /** never answer */
  hang?: boolean
  /** headers and part of a body, then the connection is cut */
  cut?: boolean
  /** headers and part of a body, then nothing more */
  stall?: boolean
}

type Replier = (r: Received) => Reply | Promise<Reply>

interface HooksServer {
  base: string
  received: Received[]
  reply: (fn: Replier) => void
  waitFor: (pred: (r: Received) => boolean, ms?: number) => Promise<Received>
  hooksOf: (clientId: string) => string[]
}

const BASE_PATH = '/admin-api/video/camera/callback'

async function hooksServer (t: Test): Promise<HooksServer> {
  const received: Received[] = []
  const events = new EventEmitter()
  let replier: Replier = () => ({})
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const url = req.url as string
      const r: Received = {
        hook: new URL('http://x' + url).pathname.split('/').pop() as string,
        url,
        headers: req.headers,
        raw,
        body: JSON.parse(raw) as Record<string, unknown>,
        remotePort: req.socket.remotePort as number,
        aborted: new Promise((resolve) => res.on('close', () => { if (!res.writableFinished) resolve() }))
      }
      received.push(r)
      events.emit('received', r)
      Promise.resolve(replier(r)).then((reply) => {
        if (reply.hang === true) return
        if (reply.stall === true) {
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '20' })
          res.write('{"code":')
          return
        }
        if (reply.cut === true) {
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '20' })
          res.write('{"code":', () => res.destroy())
          return
        }
        res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' })
        res.end(reply.body ?? '{"code":0,"data":null}')
      }, (err: Error) => { res.writeHead(500).end(err.message) })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const port = (server.address() as AddressInfo).port
  return {
    base: `http://127.0.0.1:${port}${BASE_PATH}`,
    received,
    reply: (fn) => { replier = fn },
    waitFor: async (pred, ms = 10_000) => {
      const found = received.find(pred)
      if (found !== undefined) return found
      return await new Promise<Received>((resolve, reject) => {
        const on = (r: Received): void => {
          if (!pred(r)) return
          clearTimeout(timer)
          events.off('received', on)
          resolve(r)
        }
        const timer = setTimeout(() => {
          events.off('received', on)
          reject(new Error('hooks server: no matching request in time'))
        }, ms)
        events.on('received', on)
      })
    },
    hooksOf: (clientId) => received.filter((r) => r.body.client_id === clientId).map((r) => r.hook)
  }
}

function gate (): { promise: Promise<void>, open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** Poll a condition until it holds or the deadline passes. */
async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const agent = new Agent({ keepAliveTimeout: 2_000 })
t.teardown(async () => await agent.close())

interface ApiAnswer { status: number, headers: Record<string, string | string[] | undefined>, text: string, json: Record<string, any> }

async function api (sim: SrsSimulator, path: string, opts: { method?: 'GET' | 'DELETE' | 'POST' | 'PUT', headers?: Record<string, string> } = {}): Promise<ApiAnswer> {
  const res = await request(sim.apiUrl + path, { method: opts.method ?? 'GET', headers: opts.headers, dispatcher: agent })
  const text = await res.body.text()
  let json: Record<string, any> = {}
  try { json = JSON.parse(text) } catch {}
  return { status: res.statusCode, headers: res.headers, text, json }
}

async function start (t: Test, opts: SimOptions = {}): Promise<SrsSimulator> {
  const sim = await SrsSimulator.start(opts)
  t.teardown(async () => await sim.close())
  return sim
}

async function setup (t: Test, opts: SimOptions = {}): Promise<{ sim: SrsSimulator, hooks: HooksServer }> {
  const hooks = await hooksServer(t)
  const sim = await start(t, { hookBase: hooks.base, hookTimeoutMs: 5_000, ...opts })
  return { sim, hooks }
}

async function streamByName (sim: SrsSimulator, name: string): Promise<Record<string, any> | undefined> {
  const { json } = await api(sim, '/api/v1/streams/?count=1000')
  return (json.streams as Array<Record<string, any>>).find((s) => s.name === name)
}

async function clientGone (sim: SrsSimulator, id: string): Promise<boolean> {
  return (await api(sim, `/api/v1/clients/${id}`)).json.code === 2049
}

// ------------------------------------------------------------------ publish path

t.test('v6: an accepted publish sends on_connect then on_publish with SRS bodies, one connection each', async (t) => {
  const { sim, hooks } = await setup(t, { hookQuery: '?token=abc', serverId: 'vid-test001' })
  const res = await sim.publish({ app: 'live', stream: 'cam1', param: '?key=k1' })
  t.match(res, { ok: true, code: 0, reason: '' })
  t.match(res.clientId, /^[a-z0-9]{8}$/)
  t.same(hooks.received.map((r) => r.hook), ['on_connect', 'on_publish'])

  const [connect, publish] = hooks.received as [Received, Received]
  t.equal(connect.url, `${BASE_PATH}/on_connect?token=abc`, 'the hook URL keeps its query')
  t.equal(connect.raw, JSON.stringify({
    server_id: 'vid-test001',
    service_id: sim.serviceId,
    action: 'on_connect',
    client_id: res.clientId,
    ip: '127.0.0.1',
    vhost: '__defaultVhost__',
    app: 'live',
    stream: 'cam1',
    param: '?key=k1',
    tcUrl: 'rtmp://127.0.0.1:1935/live',
    pageUrl: ''
  }), 'on_connect body: SRS keys in SRS order, compact')
  const stream = await streamByName(sim, 'cam1')
  t.ok(stream)
  t.equal(publish.raw, JSON.stringify({
    server_id: 'vid-test001',
    service_id: sim.serviceId,
    action: 'on_publish',
    client_id: res.clientId,
    ip: '127.0.0.1',
    vhost: '__defaultVhost__',
    app: 'live',
    tcUrl: 'rtmp://127.0.0.1:1935/live',
    stream: 'cam1',
    param: '?key=k1',
    stream_url: '/live/cam1',
    stream_id: stream?.id
  }), 'on_publish body, stream_id is the API stream id')
  for (const r of hooks.received) {
    t.equal(r.headers['content-type'], 'application/json')
    t.equal(r.headers['user-agent'], 'SRS/6.0.184(Hang)')
    t.equal(r.headers.connection, 'Keep-Alive')
  }
  t.not(connect.remotePort, publish.remotePort, 'each hook on a new TCP connection')

  t.match(sim.serviceId, /^[a-z0-9]{8}$/)
  t.equal(sim.activePublisher('live', 'cam1'), res.clientId)
  t.same(sim.clientIds(), [res.clientId])
  t.match(stream, {
    name: 'cam1',
    app: 'live',
    vhost: /^vid-[a-z0-9]{7}$/,
    url: '/live/cam1',
    tcUrl: 'rtmp://127.0.0.1:1935/live',
    clients: 1,
    publish: { active: true, cid: res.clientId },
    video: { codec: 'H264' },
    audio: { codec: 'AAC' }
  })
  t.match(stream?.id, /^vid-[a-z0-9]{7}$/)
  t.not(stream?.vhost, '__defaultVhost__', 'the API vhost is a vhost id')

  const client = await api(sim, `/api/v1/clients/${res.clientId}`)
  t.match(client.json, {
    code: 0,
    server: 'vid-test001',
    service: sim.serviceId,
    pid: String(process.pid),
    client: { id: res.clientId, stream: stream?.id, vhost: stream?.vhost, type: 'fmle-publish', publish: true, name: 'cam1', url: '/live/cam1', kbps: { recv_30s: 0, send_30s: 0 } }
  })
  t.type(client.json.client.alive, 'number')

  const calls = sim.hookCalls
  t.same(calls.map((c) => [c.hook, c.status, c.accepted, c.code, c.clientId]), [
    ['on_connect', 200, true, 0, res.clientId],
    ['on_publish', 200, true, 0, res.clientId]
  ])
  t.equal(calls[1]?.replyBody, '{"code":0,"data":null}')
  t.equal(calls[1]?.raw, publish.raw)
  t.same(calls[1]?.body, publish.body)
  t.ok((calls[1]?.ms ?? -1) >= 0)
})

t.test('v6: the new publisher is listed in /api/v1/clients while its on_publish is pending', async (t) => {
  const { sim, hooks } = await setup(t)
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const onPublish = await hooks.waitFor((r) => r.hook === 'on_publish')
  const id = onPublish.body.client_id as string
  const client = await api(sim, `/api/v1/clients/${id}`)
  t.match(client.json.client, { type: 'fmle-publish', publish: true })
  const stream = await streamByName(sim, 'cam1')
  t.same(stream?.publish, { active: false }, 'nobody publishes yet: no cid')
  t.equal(stream?.id, onPublish.body.stream_id)
  t.equal(sim.activePublisher('live', 'cam1'), undefined)
  g.open()
  t.match(await pending, { ok: true, clientId: id })
  t.equal(sim.activePublisher('live', 'cam1'), id)
})

t.test('v4: no service_id/stream_url/stream_id, a pending publisher is not listed, short envelope, no API auth', async (t) => {
  const { sim, hooks } = await setup(t, { version: '4', auth: { username: 'u', password: 'p' } })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1', param: '?k=1' })
  const onPublish = await hooks.waitFor((r) => r.hook === 'on_publish')
  const id = onPublish.body.client_id as string
  t.same(await api(sim, `/api/v1/clients/${id}`).then((a) => a.json), { code: 2049 }, 'not registered before acquire')
  t.same((await api(sim, '/api/v1/streams/')).json.streams, [])
  g.open()
  t.match(await pending, { ok: true })

  const [connect] = hooks.received as [Received]
  t.same(Object.keys(connect.body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'pageUrl'])
  t.same(Object.keys(onPublish.body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'stream', 'param'])
  t.equal(connect.headers['user-agent'], 'SRS/4.0.271(Leo)')

  const streams = await api(sim, '/api/v1/streams/')
  t.same(Object.keys(streams.json), ['code', 'server', 'streams'], 'SRS 4 envelope: code and server only')
  t.equal(streams.status, 200, 'API auth does not exist in SRS 4')
  const stream = streams.json.streams[0]
  t.notOk('tcUrl' in stream)
  t.notOk('url' in stream)
  t.match(stream, { name: 'cam1', publish: { active: true, cid: id } })
  const client = (await api(sim, `/api/v1/clients/${id}`)).json.client
  t.notOk('kbps' in client)
  t.notOk('name' in client)
  t.same((await api(sim, '/api/v1/versions')).json, { code: 0, server: sim.serverId, data: { major: 4, minor: 0, revision: 271, version: '4.0.271' } })

  // a second publisher: 1028, and SRS 4 still sends its on_unpublish
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(second, { ok: false, code: SrsCode.StreamBusy })
  t.same(hooks.hooksOf(second.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])

  await sim.stop(id)
  const unpublish = await hooks.waitFor((r) => r.hook === 'on_unpublish' && r.body.client_id === id)
  t.same(Object.keys(unpublish.body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'stream', 'param'], 'SRS 4 on_unpublish has no tcUrl')
  const left = (await api(sim, '/api/v1/streams/')).json.streams
  t.match(left, [{ name: 'cam1', clients: 0, publish: { active: false, cid: id } }], 'SRS 4 keeps stream entries')
})

t.test('v6: a second publisher passes on_publish, fails acquire with 1028, then sends only on_close', async (t) => {
  const { sim, hooks } = await setup(t)
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(second, { ok: false, code: 1028 })
  t.match(second.reason, /busy/)
  t.same(hooks.hooksOf(second.clientId), ['on_connect', 'on_publish', 'on_close'])
  t.equal(sim.activePublisher('live', 'cam1'), first.clientId)
  t.same(sim.clientIds(), [first.clientId], 'the refused client left the statistics')
  const close = hooks.received.find((r) => r.hook === 'on_close') as Received
  t.same(Object.keys(close.body), ['server_id', 'service_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'send_bytes', 'recv_bytes'])
  t.type(close.body.recv_bytes, 'number')
})

t.test('5-early: the publisher refused with 1028 also sends on_unpublish with its own client_id', async (t) => {
  const { sim, hooks } = await setup(t, { version: '5-early' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(second, { ok: false, code: 1028 })
  t.same(hooks.hooksOf(second.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
  t.equal(sim.activePublisher('live', 'cam1'), first.clientId, 'the stray on_unpublish did not release the stream')
  t.equal(hooks.received[0]?.headers['user-agent'], 'SRS/5.0.213(Bee)')
  t.equal(sim.version, '5.0.213')
})

t.test('v4: a refused publisher\'s on_unpublish names only itself; the holder keeps the stream, active, as its cid', async (t) => {
  const { sim, hooks } = await setup(t, { version: '4' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const second = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.2' })
  t.match(second, { ok: false, code: SrsCode.StreamBusy })
  const stray = hooks.received.find((r) => r.hook === 'on_unpublish')!
  t.match(stray.body, { client_id: second.clientId, ip: '10.0.0.2', stream: 'cam1' })
  t.notOk('stream_id' in stray.body, 'nothing but the client id tells it from the holder\'s')
  t.equal(sim.activePublisher('live', 'cam1'), first.clientId)
  t.match(await streamByName(sim, 'cam1'), { clients: 1, publish: { active: true, cid: first.clientId } })
  t.same(sim.clientIds(), [first.clientId], 'the refused client was never listed')
})

t.test('v4: a kicked publisher\'s stream is publishable once publish.active is false, before its on_unpublish is answered', async (t) => {
  const { sim, hooks } = await setup(t, { version: '4' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_unpublish') await g.promise
    return {}
  })
  t.same((await api(sim, `/api/v1/clients/${first.clientId}`, { method: 'DELETE' })).json, { code: 0, server: sim.serverId })
  await hooks.waitFor((r) => r.hook === 'on_unpublish' && r.body.client_id === first.clientId)
  t.match(await streamByName(sim, 'cam1'), { publish: { active: false, cid: first.clientId } })
  t.equal((await api(sim, `/api/v1/clients/${first.clientId}`)).json.client?.id, first.clientId, 'still listed')
  hooks.reply(() => ({}))
  const next = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(next.ok, 'SRS 4 made the stream publishable before publish.active=false')
  g.open()
  await until('the kicked client left', async () => await clientGone(sim, first.clientId))
})

t.test('5-pre55: SRS 4\'s hook and API shapes, a pending publisher unlisted, a refused one\'s on_unpublish; stream entries removed', async (t) => {
  const { sim, hooks } = await setup(t, { version: '5-pre55', auth: { username: 'u', password: 'p' } })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const onPublish = await hooks.waitFor((r) => r.hook === 'on_publish')
  const id = onPublish.body.client_id as string
  t.same(Object.keys(onPublish.body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'stream', 'param'])
  t.equal(onPublish.headers['user-agent'], 'SRS/5.0.54(Bee)')
  t.same((await api(sim, `/api/v1/clients/${id}`)).json, { code: 2049 }, 'not registered before acquire')
  g.open()
  t.match(await pending, { ok: true })
  const versions = await api(sim, '/api/v1/versions')
  t.equal(versions.status, 200, 'no API auth before 5.0.152')
  t.same(versions.json.data, { major: 5, minor: 0, revision: 54, version: '5.0.54' })
  const stream = await streamByName(sim, 'cam1')
  t.notOk('url' in stream!)
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(hooks.hooksOf(second.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
  await sim.stop(id)
  t.equal(await streamByName(sim, 'cam1'), undefined, 'the entry goes with its last client (5.0.42+)')
})

t.test('v5: a publisher refused with 1028 sends no on_unpublish', async (t) => {
  const { sim, hooks } = await setup(t, { version: '5' })
  await sim.publish({ app: 'live', stream: 'cam1' })
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(hooks.hooksOf(second.clientId), ['on_connect', 'on_publish', 'on_close'])
})

t.test('7-token: a second publisher is refused before on_publish; the token frees after on_unpublish, before on_close', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const second = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(second, { ok: false, code: 1028 })
  t.same(hooks.hooksOf(second.clientId), ['on_connect', 'on_close'], 'no on_publish at all')
  t.equal(hooks.received[0]?.headers['user-agent'], 'SRS/7.0.62(Hang)')

  // hold the first publisher's on_close: its token is already free, so a newcomer gets in
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_close' && r.body.client_id === first.clientId) await g.promise
    return {}
  })
  const stopping = sim.stop(first.clientId)
  await hooks.waitFor((r) => r.hook === 'on_close' && r.body.client_id === first.clientId)
  const third = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(third, { ok: true })
  t.same(hooks.hooksOf(third.clientId), ['on_connect', 'on_publish'])
  g.open()
  await stopping
  t.equal(sim.activePublisher('live', 'cam1'), third.clientId)
})

t.test('7-token: a publisher refused in on_publish frees its token', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  hooks.reply((r) => r.hook === 'on_publish' && r.body.param === '?bad' ? { body: '{"code":1}' } : {})
  t.match(await sim.publish({ app: 'live', stream: 'cam1', param: '?bad' }), { ok: false, code: 3064 })
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: true })
})

t.test('v7: 7.0.18 bodies as observed', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7' })
  const res = await sim.publish({ app: 'live', stream: 'cam2', ip: '10.0.0.9', tcUrl: 'rtmp://srs:1935/live' })
  t.equal(hooks.received[0]?.headers['user-agent'], 'SRS/7.0.18(Hang)')
  t.match(hooks.received[1]?.body, { client_id: res.clientId, ip: '10.0.0.9', tcUrl: 'rtmp://srs:1935/live' })
  t.same((await api(sim, '/api/v1/versions')).json.data, { major: 7, minor: 0, revision: 18, version: '7.0.18' })
})

t.test('a refused on_connect sends on_close and never registers the client', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_connect' ? { status: 403, body: 'denied' } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(res, { ok: false, code: 4005 })
  t.match(res.reason, /^on_connect: http: status 403/)
  t.same(hooks.hooksOf(res.clientId), ['on_connect', 'on_close'])
  t.same(sim.clientIds(), [])
  t.same((await api(sim, '/api/v1/streams/')).json.streams, [])
})

t.test('a refused on_publish sends on_close, unregisters and removes the stream entry', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_publish' ? { body: '{"code":403,"msg":"no"}' } : {})
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(res, { ok: false, code: 3064 })
  t.same(hooks.hooksOf(res.clientId), ['on_connect', 'on_publish', 'on_close'])
  t.same(sim.clientIds(), [])
  t.same((await api(sim, '/api/v1/streams/')).json.streams, [])
  t.equal(sim.activePublisher('live', 'cam1'), undefined)
})

t.test('a hook answered {"code":"0"}, HTTP 500, a non-JSON body or a timeout refuses the publisher', async (t) => {
  const cases: Array<[string, Reply, number]> = [
    ['string code', { body: '{"code":"0"}' }, 3064],
    ['float code', { body: '{"code":0.0}' }, 3064],
    ['HTTP 500', { status: 500, body: '{"code":0}' }, 4005],
    ['not JSON', { body: 'OK' }, 3008],
    ['0 with a newline', { body: '0\n' }, 3008],
    ['empty', { body: '' }, 3008],
    ['cut mid-body', { cut: true }, 1007],
    ['stalled mid-body', { stall: true }, 1011],
    ['timeout', { hang: true }, 1011]
  ]
  const { sim, hooks } = await setup(t, { hookTimeoutMs: 300 })
  const replies = new Map<string, Reply>(cases.map(([name, reply]) => [name, reply]))
  hooks.reply((r) => r.hook === 'on_publish' ? replies.get(r.body.stream as string) as Reply : {})
  for (const [name, , code] of cases) {
    const res = await sim.publish({ app: 'live', stream: name })
    t.match(res, { ok: false, code }, name)
    t.same(hooks.hooksOf(res.clientId), ['on_connect', 'on_publish', 'on_close'], name + ': on_close follows')
  }
  const timedOut = sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.stream === 'timeout') as HookCall
  t.equal(timedOut.status, null)
  t.ok(timedOut.ms >= 290, 'waited for the hook timeout')
  const hung = hooks.received.find((r) => r.hook === 'on_publish' && r.body.stream === 'timeout') as Received
  await hung.aborted
  t.pass('the simulator dropped the timed-out connection')
  t.same(sim.clientIds(), [])
})

t.test('replies SRS accepts: "0", {"code":0} and status 201', async (t) => {
  const { sim, hooks } = await setup(t)
  const bodies = new Map([['a', '0'], ['b', '{ "code": 0, "data": {"code": 1} }'], ['c', '{"code":0}']])
  hooks.reply((r) => ({ status: r.body.stream === 'c' ? 201 : 200, body: bodies.get(r.body.stream as string) as string }))
  for (const stream of bodies.keys()) t.match(await sim.publish({ app: 'live', stream }), { ok: true }, stream)
})

t.test('hookErrorCode follows SrsHttpHooks::do_post', async (t) => {
  t.equal(hookErrorCode(200, '0'), 0)
  t.equal(hookErrorCode(201, '{"code":0}'), 0)
  t.equal(hookErrorCode(200, '{"code":-0}'), 0)
  t.equal(hookErrorCode(200, '{"a":"}\\"x","code":0}'), 0, 'strings with escapes and braces are skipped')
  t.equal(hookErrorCode(200, '{"n":[1,{"code":1}],"code":0}'), 0, 'nested code members are not the top-level one')
  t.equal(hookErrorCode(200, '{"code":0,"code":1}'), 0, 'the first code member counts')
  t.equal(hookErrorCode(204, '0'), 4005)
  t.equal(hookErrorCode(200, '"0"'), 3008)
  t.equal(hookErrorCode(200, 'true'), 3008)
  t.equal(hookErrorCode(200, '[0]'), 3008)
  t.equal(hookErrorCode(200, 'null'), 3008)
  t.equal(hookErrorCode(200, '{}'), 3064)
  t.equal(hookErrorCode(200, '{"code":1}'), 3064)
  t.equal(hookErrorCode(200, '{"code":1e0}'), 3064)
  t.equal(hookErrorCode(200, '{"code":null}'), 3064)
})

t.test('a hooks server that refuses connections fails the hook with 1018; an invalid hook URL with 3007', async (t) => {
  const sim = await start(t, { hookBase: 'http://127.0.0.1:1/cb' })
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(res, { ok: false, code: SrsCode.StConnect })
  t.same(sim.hookCalls.map((c) => [c.hook, c.status, c.accepted]), [['on_connect', null, false], ['on_close', null, false]])
  sim.setHookBase('not a url')
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: false, code: SrsCode.HttpParseUri })
  sim.setHookBase('http://no-such-host.invalid/cb')
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: false, code: SrsCode.DnsResolve })
})

t.test('without hookBase no hooks are sent and everything is allowed; hooks not configured are skipped', async (t) => {
  const sim = await start(t)
  const res = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(res, { ok: true })
  t.same(sim.hookCalls, [])
  await t.rejects(sim.dvr(res.clientId), /on_dvr is not configured/)
  await t.rejects(sim.hls(res.clientId), /on_hls is not configured/)

  const hooks = await hooksServer(t)
  sim.setHookBase(hooks.base + '/', '?x=1')
  const other = await sim.publish({ app: 'live', stream: 'cam2' })
  t.equal(hooks.received[0]?.url, `${BASE_PATH}/on_connect?x=1`, 'trailing slash of the base dropped')
  await sim.stop(other.clientId)
  t.same(hooks.hooksOf(other.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])

  const subset = await start(t, { hookBase: hooks.base, hooks: ['on_publish'] })
  const third = await subset.publish({ app: 'live', stream: 'cam3' })
  await subset.stop(third.clientId)
  t.same(hooks.hooksOf(third.clientId), ['on_publish'])
})

t.test('different clients are served concurrently', async (t) => {
  const { sim, hooks } = await setup(t)
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish' && r.body.stream === 'slow') await g.promise
    return {}
  })
  const slow = sim.publish({ app: 'live', stream: 'slow' })
  await hooks.waitFor((r) => r.hook === 'on_publish' && r.body.stream === 'slow')
  const fast = await sim.publish({ app: 'live', stream: 'fast' })
  t.match(fast, { ok: true }, 'a blocked on_publish does not hold other clients')
  g.open()
  t.match(await slow, { ok: true })
})

// ------------------------------------------------------------------ kick and release

t.test('a kick answers at once and releases asynchronously: on_unpublish, on_close, then 2049', async (t) => {
  const { sim, hooks } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const unpublishGate = gate()
  const closeGate = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_unpublish') await unpublishGate.promise
    if (r.hook === 'on_close') await closeGate.promise
    return {}
  })

  const del = await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' })
  t.same(del.json, { code: 0, server: sim.serverId, service: sim.serviceId, pid: String(process.pid) })
  t.match((await api(sim, `/api/v1/clients/${a.clientId}`)).json, { code: 0, client: { id: a.clientId } }, 'still listed right after DELETE')
  t.same(sim.kicks, [a.clientId])

  const unpublish = await hooks.waitFor((r) => r.hook === 'on_unpublish')
  t.equal(unpublish.body.client_id, a.clientId)
  t.same(Object.keys(unpublish.body), ['server_id', 'service_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'stream', 'param', 'stream_url', 'stream_id'])
  let stream = await streamByName(sim, 'cam1')
  t.same(stream?.publish, { active: false, cid: a.clientId }, 'released before on_unpublish: inactive, cid kept')
  t.equal(sim.activePublisher('live', 'cam1'), undefined, 'can_publish is true again')
  t.match((await api(sim, `/api/v1/clients/${a.clientId}`)).json, { code: 0 }, 'still listed during on_unpublish')

  // a second DELETE is answered 0 and starts nothing
  t.equal((await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' })).json.code, 0)
  unpublishGate.open()
  await hooks.waitFor((r) => r.hook === 'on_close')
  t.match((await api(sim, `/api/v1/clients/${a.clientId}`)).json, { code: 0 }, 'still listed during on_close')
  closeGate.open()
  await until('the kicked client is gone', async () => await clientGone(sim, a.clientId))
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'], 'one release only')
  t.same(sim.kicks, [a.clientId, a.clientId])
  stream = await streamByName(sim, 'cam1')
  t.equal(stream, undefined, 'no clients and inactive: the stream entry is removed')
  t.same(await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' }).then((x) => x.json), { code: 2049 })
  await t.rejects(sim.stop(a.clientId), /no active publisher/)
})

t.test('the release waits releaseDelayMs after the DELETE', async (t) => {
  const { sim, hooks } = await setup(t, { releaseDelayMs: 300 })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const t0 = Date.now()
  await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' })
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId, 'not released yet')
  const unpublish = await sim.waitForHook((c) => c.hook === 'on_unpublish')
  t.ok(unpublish.startedAt - t0 >= 290, 'released after the delay')
  sim.setReleaseDelay(0)
  const b = await sim.publish({ app: 'live', stream: 'cam2' })
  await api(sim, `/api/v1/clients/${b.clientId}`, { method: 'DELETE' })
  await hooks.waitFor((r) => r.hook === 'on_close' && r.body.client_id === b.clientId)
  t.pass()
})

t.test('a stalled publisher is released by a kick the same way, and a newcomer then gets the stream', async (t) => {
  const { sim, hooks } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' })
  await hooks.waitFor((r) => r.hook === 'on_unpublish' && r.body.client_id === a.clientId)
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: true })
  await until('the kicked client is gone', async () => await clientGone(sim, a.clientId))
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
})

t.test('a stream with a player stays listed after its publisher leaves', async (t) => {
  const { sim } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  await sim.stop(a.clientId)
  const stream = await streamByName(sim, 'cam1')
  t.match(stream, { clients: 1, publish: { active: false, cid: a.clientId }, video: null, audio: null })
  await sim.stopPlayer(p.clientId)
  t.equal(await streamByName(sim, 'cam1'), undefined)
})

t.test('kicking a publisher whose on_publish is pending interrupts that hook and refuses it', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_publish' ? { hang: true } : {})
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const onPublish = await hooks.waitFor((r) => r.hook === 'on_publish')
  const id = onPublish.body.client_id as string
  await t.rejects(sim.stop(id), /no active publisher/, 'a pending publisher cannot stop cleanly')
  t.equal((await api(sim, `/api/v1/clients/${id}`, { method: 'DELETE' })).json.code, 0)
  const res = await pending
  t.match(res, { ok: false, code: SrsCode.SocketRead })
  await onPublish.aborted
  t.same(hooks.hooksOf(id), ['on_connect', 'on_publish', 'on_close'])
  t.same(sim.kicks, [id])
})

t.test('hlsOnRelease: the release POSTs on_hls and waits for its reply before unpublishing', async (t) => {
  const { sim, hooks } = await setup(t, { hlsOnRelease: true })
  const a = await sim.publish({ app: 'live', stream: 'cam1', param: '?k=1' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_hls') await g.promise
    return {}
  })
  await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' })
  const onHls = await hooks.waitFor((r) => r.hook === 'on_hls')
  const stream = await streamByName(sim, 'cam1')
  t.same(stream?.publish, { active: true, cid: a.clientId }, 'still active while on_hls is pending')
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  t.notOk(hooks.received.some((r) => r.hook === 'on_unpublish'))
  t.match(onHls.raw, /"duration":10\.00,/, 'duration printed with 2 decimals')
  t.same(Object.keys(onHls.body), ['server_id', 'service_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'stream', 'param', 'duration', 'cwd', 'file', 'url', 'm3u8', 'm3u8_url', 'seq_no', 'stream_url', 'stream_id'])
  t.match(onHls.body, { client_id: a.clientId, seq_no: 0, url: 'live/cam1-0.ts', m3u8_url: 'live/cam1.m3u8', stream_id: stream?.id })
  g.open()
  await hooks.waitFor((r) => r.hook === 'on_close')
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_hls', 'on_unpublish', 'on_close'])
  const vhosts = (await api(sim, '/api/v1/vhosts/')).json.vhosts
  t.match(vhosts, [{ name: '__defaultVhost__', hls: { enabled: true } }])
})

t.test('hlsOnRelease: a hung on_hls delays the release by the hook timeout', async (t) => {
  const { sim, hooks } = await setup(t, { hlsOnRelease: true, hookTimeoutMs: 300 })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  hooks.reply((r) => r.hook === 'on_hls' ? { hang: true } : {})
  await sim.stop(a.clientId)
  const hls = sim.hookCalls.find((c) => c.hook === 'on_hls') as HookCall
  t.match(hls, { accepted: false, code: SrsCode.SocketTimeout })
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_hls', 'on_unpublish', 'on_close'])
})

t.test('stop: a publisher that stops by itself releases, sends on_unpublish and on_close, and leaves', async (t) => {
  const { sim, hooks } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  await sim.stop(a.clientId)
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
  t.same(sim.clientIds(), [])
  t.same(sim.kicks, [])
  t.equal(sim.activePublisher('live', 'cam1'), undefined)
  await t.rejects(sim.stop('nobody00'), /no active publisher/)
})

// ------------------------------------------------------------------ players, dvr, hls

t.test('play: on_connect, register as rtmp-play, on_play; stopPlayer sends on_stop and on_close', async (t) => {
  const { sim, hooks } = await setup(t)
  const pub = await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await sim.play({ app: 'live', stream: 'cam1', param: '?t=1' })
  t.match(p, { ok: true })
  const onPlay = hooks.received.find((r) => r.hook === 'on_play') as Received
  t.same(Object.keys(onPlay.body), ['server_id', 'service_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'stream', 'tcUrl', 'param', 'pageUrl', 'stream_url', 'stream_id'])
  t.match((await api(sim, `/api/v1/clients/${p.clientId}`)).json.client, { type: 'rtmp-play', publish: false })
  t.match(await streamByName(sim, 'cam1'), { clients: 2 })
  await t.rejects(sim.stop(p.clientId), /no active publisher/)
  await t.rejects(sim.stopPlayer(pub.clientId), /no active player/)
  await t.rejects(sim.dvr(p.clientId), /unknown publisher/)
  await sim.stopPlayer(p.clientId)
  t.same(hooks.hooksOf(p.clientId), ['on_connect', 'on_play', 'on_stop', 'on_close'])
  const onStop = hooks.received.find((r) => r.hook === 'on_stop') as Received
  t.same(Object.keys(onStop.body), ['server_id', 'service_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'stream', 'param', 'stream_url', 'stream_id'])
  t.equal(await clientGone(sim, p.clientId), true)
})

t.test('play: refusals and kicks', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => {
    if (r.hook === 'on_play' && r.body.param === '?deny') return { body: '{"code":1}' }
    if (r.hook === 'on_connect' && r.body.param === '?nope') return { status: 404 }
    if (r.hook === 'on_play' && r.body.param === '?hang') return { hang: true }
    return {}
  })
  const denied = await sim.play({ app: 'live', stream: 'cam1', param: '?deny' })
  t.match(denied, { ok: false, code: 3064, reason: /^on_play: / })
  t.same(hooks.hooksOf(denied.clientId), ['on_connect', 'on_play', 'on_close'], 'no on_stop after a refused on_play')
  const nope = await sim.play({ app: 'live', stream: 'cam1', param: '?nope' })
  t.match(nope, { ok: false, code: 4005, reason: /^on_connect: / })

  const p = await sim.play({ app: 'live', stream: 'cam1' })
  await api(sim, `/api/v1/clients/${p.clientId}`, { method: 'DELETE' })
  await until('the kicked player is gone', async () => await clientGone(sim, p.clientId))
  t.same(hooks.hooksOf(p.clientId), ['on_connect', 'on_play', 'on_stop', 'on_close'])

  const hanging = sim.play({ app: 'live', stream: 'cam1', param: '?hang' })
  const onPlay = await hooks.waitFor((r) => r.hook === 'on_play' && r.body.param === '?hang')
  await t.rejects(sim.stopPlayer(onPlay.body.client_id as string), /no active player/)
  await api(sim, `/api/v1/clients/${onPlay.body.client_id as string}`, { method: 'DELETE' })
  t.match(await hanging, { ok: false, code: SrsCode.SocketRead })
})

t.test('v4 player bodies have no tcUrl, stream_url or stream_id', async (t) => {
  const { sim, hooks } = await setup(t, { version: '4' })
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  await sim.stopPlayer(p.clientId)
  const [, play, stop] = hooks.received as [Received, Received, Received]
  t.same(Object.keys(play.body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'stream', 'param', 'pageUrl'])
  t.same(Object.keys(stop.body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'stream', 'param'])
})

t.test('dvr and hls POST for the publisher, in SRS order, one at a time', async (t) => {
  const { sim, hooks } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1', vhost: 'cams.example.com' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_dvr' && r.body.file === 'first.flv') await g.promise
    return {}
  })
  const first = sim.dvr(a.clientId, 'first.flv')
  await hooks.waitFor((r) => r.hook === 'on_dvr')
  const second = sim.dvr(a.clientId)
  // the global DVR worker: the second on_dvr is not sent while the first one waits
  const hls = await sim.hls(a.clientId)
  t.equal(hooks.received.filter((r) => r.hook === 'on_dvr').length, 1)
  g.open()
  const [c1, c2] = await Promise.all([first, second])
  t.match(c1, { hook: 'on_dvr', accepted: true, clientId: a.clientId })
  t.ok(c2.startedAt >= c1.startedAt + c1.ms, 'the second on_dvr was sent after the first was answered')
  t.same(Object.keys(c1.body), ['server_id', 'service_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'tcUrl', 'stream', 'param', 'cwd', 'file', 'stream_url', 'stream_id'])
  t.match(c2.body, { file: /^\.\/objs\/nginx\/html\/live\/cam1\.\d+\.flv$/, stream_url: 'cams.example.com/live/cam1', vhost: 'cams.example.com' })
  t.match(hls.body, { seq_no: 0 })
  t.match((await sim.hls(a.clientId)).body, { seq_no: 1 })

  // after the publisher left, its on_dvr still goes out (SRS's DVR worker is async); no stream_id without a stream
  await sim.stop(a.clientId)
  t.match((await sim.hls(a.clientId)).body, { client_id: a.clientId, seq_no: 2 }, 'a late on_hls too')
  const late = await sim.dvr(a.clientId)
  t.equal(late.body.client_id, a.clientId)
  t.notOk('stream_id' in late.body)
  t.equal(late.body.stream_url, 'cams.example.com/live/cam1')
  await t.rejects(sim.dvr('nobody00'), /unknown publisher/)

  const vhosts = (await api(sim, '/api/v1/vhosts/')).json.vhosts as Array<Record<string, any>>
  t.same(vhosts.map((v) => v.name).sort(), ['__defaultVhost__', 'cams.example.com'])
})

t.test('v4 on_dvr and on_hls bodies', async (t) => {
  const { sim } = await setup(t, { version: '4' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(Object.keys((await sim.dvr(a.clientId)).body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'stream', 'param', 'cwd', 'file'])
  t.same(Object.keys((await sim.hls(a.clientId)).body), ['server_id', 'action', 'client_id', 'ip', 'vhost', 'app', 'stream', 'param', 'duration', 'cwd', 'file', 'url', 'm3u8', 'm3u8_url', 'seq_no'])
})

// ------------------------------------------------------------------ HTTP API

t.test('versions per mode', async (t) => {
  const expected: Array<[SimOptions['version'], string]> = [['5', '5.0.216'], ['6', '6.0.184'], ['7-token', '7.0.62']]
  for (const [version, v] of expected) {
    const sim = await start(t, { version })
    const res = await api(sim, '/api/v1/versions')
    t.match(res.json, { code: 0, server: sim.serverId, service: sim.serviceId, pid: String(process.pid), data: { version: v } }, String(version))
    t.equal(res.headers['content-type'], 'application/json')
    t.equal(sim.userAgent.startsWith(`SRS/${v}(`), true)
  }
  const sim = await start(t)
  t.match(sim.serverId, /^vid-[a-z0-9]{7}$/)
})

t.test('/api/v1/streams and /api/v1/clients without the slash redirect with 302, query kept', async (t) => {
  const sim = await start(t)
  for (const name of ['streams', 'clients', 'vhosts']) {
    const res = await api(sim, `/api/v1/${name}?start=1&count=5`)
    t.equal(res.status, 302, name)
    t.equal(res.headers.location, `/api/v1/${name}/?start=1&count=5`)
    t.equal(res.text, `Redirect to /api/v1/${name}/?start=1&count=5`)
  }
  const bare = await api(sim, '/api/v1/streams')
  t.equal(bare.headers.location, '/api/v1/streams/')
})

t.test('paging: count below 10 becomes 10, no maximum, atoi of garbage is 0, ordered by id', async (t) => {
  const sim = await start(t)
  sim.seedLive(25, { prefix: 'cam-' })
  const all = (await api(sim, '/api/v1/streams/?count=100')).json.streams as Array<Record<string, any>>
  t.equal(all.length, 25)
  const ids = all.map((s) => s.id as string)
  t.same(ids, [...ids].sort(), 'ordered by the stream id string')
  t.equal((await api(sim, '/api/v1/streams/')).json.streams.length, 10, 'default count 10')
  t.equal((await api(sim, '/api/v1/streams/?count=3')).json.streams.length, 10, 'count 3 raised to 10')
  const page = (await api(sim, '/api/v1/streams/?start=20&count=abc')).json.streams as Array<Record<string, any>>
  t.same(page.map((s) => s.id), ids.slice(20), 'start=20, count=garbage → 10')
  t.same((await api(sim, '/api/v1/streams/?start=-5&count=12')).json.streams.map((s: any) => s.id), ids.slice(0, 12), 'negative start → 0')
  t.same((await api(sim, '/api/v1/streams/?start=x')).json.streams.map((s: any) => s.id), ids.slice(0, 10))

  const clients = (await api(sim, '/api/v1/clients/?count=5&start=3')).json.clients as Array<Record<string, any>>
  const cids = sim.clientIds()
  t.equal(cids.length, 25)
  t.same(cids, [...cids].sort(), 'clients ordered by id')
  t.same(clients.map((c) => c.id), cids.slice(3, 13))

  t.equal(atoi(' 42x'), 42)
  t.equal(atoi('-3'), -3)
  t.equal(atoi('abc'), 0)
  t.equal(atoi(null), 0)
})

t.test('2048 for an unknown stream, 2049 for an unknown client; wrong method 405; unknown path 404', async (t) => {
  const { sim } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const stream = await streamByName(sim, 'cam1')
  const one = await api(sim, `/api/v1/streams/${stream?.id as string}`)
  t.match(one.json, { code: 0, server: sim.serverId, stream: { id: stream?.id, name: 'cam1' } })
  for (const [method, path, body] of [
    ['GET', '/api/v1/streams/vid-nothere', { code: 2048 }],
    ['DELETE', '/api/v1/streams/vid-nothere', { code: 2048 }],
    ['GET', '/api/v1/clients/nothere0', { code: 2049 }],
    ['DELETE', '/api/v1/clients/nothere0', { code: 2049 }],
    ['DELETE', '/api/v1/clients/', { code: 2049 }],
    ['GET', '/api/v1/vhosts/vid-nothere', { code: 2014 }]
  ] as const) {
    const res = await api(sim, path, { method })
    t.equal(res.status, 200, `${method} ${path}`)
    t.same(res.json, body, `${method} ${path}`)
  }
  for (const [method, path] of [
    ['POST', '/api/v1/streams/'],
    ['DELETE', `/api/v1/streams/${stream?.id as string}`],
    ['PUT', `/api/v1/clients/${a.clientId}`],
    ['POST', '/api/v1/versions'],
    ['POST', '/api/v1/vhosts/']
  ] as const) {
    const res = await api(sim, path, { method })
    t.equal(res.status, 405, `${method} ${path}`)
  }
  const missing = await api(sim, '/api/v1/nothing')
  t.equal(missing.status, 404)
  t.equal(missing.text, 'Not Found')
  t.same(sim.kicks, [], 'unknown ids are not kicks')

  const vhosts = (await api(sim, '/api/v1/vhosts/')).json.vhosts as Array<Record<string, any>>
  t.match(vhosts, [{ id: stream?.vhost, name: '__defaultVhost__', streams: 1, clients: 1 }])
  t.match((await api(sim, `/api/v1/vhosts/${stream?.vhost as string}`)).json, { code: 0, vhost: { name: '__defaultVhost__' } })
  t.ok(sim.apiRequests >= 15)
})

t.test('Basic auth: 401 with WWW-Authenticate when missing or wrong, without it when malformed', async (t) => {
  const sim = await start(t, { auth: { username: 'admin', password: 'secret' } })
  const basic = (s: string): Record<string, string> => ({ authorization: 'Basic ' + Buffer.from(s).toString('base64') })
  const none = await api(sim, '/api/v1/streams/')
  t.equal(none.status, 401)
  t.equal(none.headers['www-authenticate'], 'Basic')
  const wrong = await api(sim, '/api/v1/streams/', { headers: basic('admin:nope') })
  t.equal(wrong.status, 401)
  t.equal(wrong.headers['www-authenticate'], 'Basic')
  for (const headers of [{ authorization: 'Bearer abc' }, basic('admin:se:cret'), { authorization: 'Basic ' }]) {
    const res = await api(sim, '/api/v1/streams/', { headers })
    t.equal(res.status, 401, String(headers.authorization))
    t.equal(res.headers['www-authenticate'], undefined, String(headers.authorization))
  }
  const redirect = await api(sim, '/api/v1/streams')
  t.equal(redirect.status, 401, 'the redirect is behind auth too')
  const ok = await api(sim, '/api/v1/streams/', { headers: basic('admin:secret') })
  t.equal(ok.status, 200)
  t.same(ok.json.streams, [])
  t.equal((await api(sim, '/other')).status, 404, 'auth only applies to /api/ paths')
})

t.test('API faults: down, slow, garbage, unauthorized, error500, then recovery', async (t) => {
  const sim = await start(t)
  t.equal((await api(sim, '/api/v1/versions')).status, 200, 'a kept-alive connection exists')

  sim.setFault('down')
  await t.rejects(api(sim, '/api/v1/versions'), 'a dead SRS: the request fails at the socket')
  await t.rejects(api(sim, '/api/v1/streams/'))

  sim.setFault('garbage')
  const garbage = await api(sim, '/api/v1/streams/')
  t.equal(garbage.status, 200)
  t.throws(() => JSON.parse(garbage.text))

  sim.setFault('unauthorized')
  const unauth = await api(sim, '/api/v1/streams/')
  t.equal(unauth.status, 401)
  t.equal(unauth.headers['www-authenticate'], 'Basic')

  sim.setFault('error500')
  t.equal((await api(sim, '/api/v1/streams/')).status, 500)

  sim.setFault('slow', { slowMs: 300 })
  const t0 = Date.now()
  const slow = await api(sim, '/api/v1/streams/')
  t.ok(Date.now() - t0 >= 290, 'answered after slowMs')
  t.equal(slow.json.code, 0)

  sim.setFault('none')
  t.equal((await api(sim, '/api/v1/versions')).json.code, 0)
})

t.test('apiDelayMs delays every answer; close() drops answers still waiting', async (t) => {
  const sim = await SrsSimulator.start({ apiDelayMs: 200 })
  const t0 = Date.now()
  t.equal((await api(sim, '/api/v1/versions')).status, 200)
  t.ok(Date.now() - t0 >= 190)
  sim.setFault('slow', { slowMs: 60_000 })
  const hanging = api(sim, '/api/v1/versions')
  await until('the slow request arrived', () => sim.apiRequests === 2)
  await sim.close()
  await t.rejects(hanging)
  await sim.close()
  t.pass('close is idempotent')
})

// ------------------------------------------------------------------ statistics

t.test('recv_bytes grows for a live publisher and stays frozen for a stalled one', async (t) => {
  const { sim } = await setup(t, { bytesPerSecond: 1_000_000, statsIntervalMs: 20 })
  const live = await sim.publish({ app: 'live', stream: 'live1' })
  const stalled = await sim.publish({ app: 'live', stream: 'stalled1', stalled: true })
  const read = async (id: string): Promise<number> => (await api(sim, `/api/v1/clients/${id}`)).json.client.recv_bytes as number
  const live0 = await read(live.clientId)
  const stalled0 = await read(stalled.clientId)
  await until('the live publisher received more bytes', async () => (await read(live.clientId)) > live0)
  t.equal(await read(stalled.clientId), stalled0, 'a stalled publisher receives nothing')
  const s0 = (await streamByName(sim, 'live1'))?.recv_bytes as number
  await until('the live stream received more bytes', async () => ((await streamByName(sim, 'live1'))?.recv_bytes as number) > s0)

  // stall() freezes a live one
  sim.stall(live.clientId)
  // The counters catch up at the next statistics tick (20 ms here), then stay put.
  const stalledAt = Date.now()
  await until('a tick after the stall', () => Date.now() > stalledAt + 40)
  const frozen = await read(live.clientId)
  const mark = Date.now()
  await until('more ticks pass', () => Date.now() > mark + 60)
  t.equal(await read(live.clientId), frozen)
  t.throws(() => sim.stall('nobody00'), /no active publisher/)
})

t.test('recv_bytes moves only at SRS\'s 3 s statistics tick, even for a live publisher (injected clock)', async (t) => {
  let now = 1_700_000_000_000
  const { sim } = await setup(t, { now: () => now })
  const live = await sim.publish({ app: 'live', stream: 'cam1' })
  const read = async (): Promise<number> => (await api(sim, `/api/v1/clients/${live.clientId}`)).json.client.recv_bytes as number
  now += 3000
  const atTick = await read()
  now += 400
  t.equal(await read(), atTick, 'two reads 400 ms apart within one tick see the same bytes')
  now += 2600
  t.ok(await read() > atTick, 'the next tick shows the growth')
})

t.test('kbps.recv_30s is 0 until the first 30 s window closes, then the window rate (injected clock)', async (t) => {
  let now = 1_700_000_000_000
  const { sim } = await setup(t, { now: () => now, bytesPerSecond: 125_000 })
  const live = await sim.publish({ app: 'live', stream: 'cam1' })
  const stalled = await sim.publish({ app: 'live', stream: 'cam2', stalled: true })
  const client = async (id: string): Promise<Record<string, any>> => (await api(sim, `/api/v1/clients/${id}`)).json.client
  now += 29_000
  t.equal((await client(live.clientId)).kbps.recv_30s, 0)
  now += 1_000
  const c = await client(live.clientId)
  t.equal(c.kbps.recv_30s, 1000, '125000 B/s = 1000 kbps')
  t.equal(c.alive, 30)
  t.equal(c.recv_bytes, 3621 + 30 * 125_000)
  t.equal((await client(stalled.clientId)).kbps.recv_30s, 0)
  const s = await streamByName(sim, 'cam1')
  t.match(s, { live_ms: now, frames: 750, recv_bytes: 30 * 125_000, kbps: { recv_30s: 1000 } })

  // after the publisher leaves, the stream keeps its totals while a player holds it
  await sim.play({ app: 'live', stream: 'cam1' })
  await sim.stop(live.clientId)
  t.match(await streamByName(sim, 'cam1'), { frames: 750, recv_bytes: 30 * 125_000, kbps: { recv_30s: 0 } })
})

t.test('seedLive registers n live publishers without hooks, O(n)', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  sim.seedLive(1000, { app: 'cams', prefix: 'c' })
  t.equal(hooks.received.length, 0)
  const list = (await api(sim, '/api/v1/streams/?count=5000')).json.streams as Array<Record<string, any>>
  t.equal(list.length, 1000)
  t.ok(list.every((s) => s.publish.active === true && s.app === 'cams'))
  const id = sim.activePublisher('cams', 'c7')
  t.match(id, /^[a-z0-9]{8}$/)
  t.match((await api(sim, `/api/v1/clients/${id as string}`)).json.client, { type: 'fmle-publish', name: 'c7' })
  t.throws(() => sim.seedLive(1, { app: 'cams', prefix: 'c' }), /already published/)
  const busy = await sim.publish({ app: 'cams', stream: 'c7' })
  t.match(busy, { ok: false, code: 1028 }, 'a seeded publisher holds the token')

  // kick a seeded one: it is released like any other
  await api(sim, `/api/v1/clients/${id as string}`, { method: 'DELETE' })
  await hooks.waitFor((r) => r.hook === 'on_close' && r.body.client_id === id)
  t.match(await sim.publish({ app: 'cams', stream: 'c7' }), { ok: true })

  // stalled seeds keep their bytes; a large seed stays quick
  const big = await start(t)
  const t0 = Date.now()
  big.seedLive(100_000, { stalled: true })
  const page = (await api(big, '/api/v1/streams/?start=99995')).json.streams as Array<Record<string, any>>
  t.equal(page.length, 5)
  t.ok(Date.now() - t0 < 10_000, 'seeding and listing 100,000 streams is quick')
  t.equal(big.clientIds().length, 100_000)
  t.equal(page[0]?.kbps.recv_30s, 0)
})

// ------------------------------------------------------------------ waiting and closing

t.test('waitForHook finds past and future calls and rejects at its deadline', async (t) => {
  const { sim } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal((await sim.waitForHook((c) => c.hook === 'on_connect')).clientId, a.clientId, 'past call')
  const future = sim.waitForHook((c) => c.hook === 'on_unpublish')
  const started: string[] = []
  sim.on('hookStart', (s: { hook: string }) => started.push(s.hook))
  await sim.stop(a.clientId)
  t.equal((await future).clientId, a.clientId, 'future call')
  t.same(started, ['on_unpublish', 'on_close'])
  await t.rejects(sim.waitForHook((c) => c.hook === 'on_dvr', 50), /no matching hook call within 50 ms/)
})

t.test('close() aborts in-flight hooks, ends pending publishes and rejects waiters', async (t) => {
  const hooks = await hooksServer(t)
  const sim = await SrsSimulator.start({ hookBase: hooks.base, releaseDelayMs: 60_000 })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' }) // release waits 60 s
  hooks.reply(() => ({ hang: true }))
  const pending = sim.publish({ app: 'live', stream: 'cam2' })
  const connect = await hooks.waitFor((r) => r.hook === 'on_connect' && r.body.stream === 'cam2')
  const waiter = t.rejects(sim.waitForHook(() => false, 60_000), /simulator closed/)
  await sim.close()
  t.match(await pending, { ok: false, code: SrsCode.SocketRead })
  await connect.aborted
  await waiter
  t.match(await sim.publish({ app: 'live', stream: 'cam3' }), { ok: false }, 'nothing publishes after close')
})

// ------------------------------------------------------------------ the 7.0.62 publish token

t.test('7-token: a second RTMP publisher is refused at the token while still unlisted (2049), and never sends on_publish', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_connect' && r.body.client_id !== first.clientId) await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const connect = await hooks.waitFor((r) => r.hook === 'on_connect' && r.body.client_id !== first.clientId)
  const id = connect.body.client_id as string
  t.same((await api(sim, `/api/v1/clients/${id}`)).json, { code: 2049 }, 'not in the statistics during on_connect')
  g.open()
  const res = await pending
  t.match(res, { ok: false, code: SrsCode.StreamBusy, clientId: id })
  t.equal(res.reason, `acquire stream publish token: stream /live/cam1 is busy, acquired by cid=${first.clientId}, current cid=${id}`)
  t.same(hooks.hooksOf(id), ['on_connect', 'on_close'])
  t.same(sim.clientIds(), [first.clientId], 'never listed')
})

t.test('7-token: players never take the token: on_connect then on_play, next to a publisher or before one', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const pub = await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  t.match(p, { ok: true })
  t.same(hooks.hooksOf(p.clientId), ['on_connect', 'on_play'])
  t.equal(sim.activePublisher('live', 'cam1'), pub.clientId)
  const early = await sim.play({ app: 'live', stream: 'cam2' })
  t.match(await sim.publish({ app: 'live', stream: 'cam2' }), { ok: true }, 'a player holds no token')
  t.match((await api(sim, `/api/v1/clients/${early.clientId}`)).json.client, { type: 'rtmp-play', publish: false })
})

t.test('7-token: the token is held until the holder\'s on_unpublish is answered, though the stream is already released', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const first = await sim.publish({ app: 'live', stream: 'cam1' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_unpublish') await g.promise
    return {}
  })
  const stopping = sim.stop(first.clientId)
  await hooks.waitFor((r) => r.hook === 'on_unpublish' && r.body.client_id === first.clientId)
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: false }, 'released: inactive')
  t.equal(sim.activePublisher('live', 'cam1'), undefined, 'can_publish is true again')
  const refused = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(refused, { ok: false, code: SrsCode.StreamBusy, reason: /acquired by cid=/ }, 'but the token is not free')
  t.same(hooks.hooksOf(refused.clientId), ['on_connect', 'on_close'])
  g.open()
  await stopping
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: true })
})

// ------------------------------------------------------------------ FMLE republish

t.test('7-token: an FMLE republish unpublishes, sends on_connect again with the same client id, retakes the token and publishes on', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  // the first on_connect was answered before this replier: it holds the second one
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_connect' && r.body.client_id === a.clientId) await g.promise
    return {}
  })
  const again = sim.republish(a.clientId)
  await until('the second on_connect arrived', () => hooks.hooksOf(a.clientId).filter((h) => h === 'on_connect').length === 2)
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_connect'], 'its own client id, as a newcomer\'s would be')
  t.match((await api(sim, `/api/v1/clients/${a.clientId}`)).json, { code: 0, client: { id: a.clientId, type: 'fmle-publish' } }, 'the same connection stays listed')
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: false, cid: a.clientId })
  t.equal(sim.activePublisher('live', 'cam1'), undefined)
  g.open()
  t.match(await again, { ok: true, clientId: a.clientId, code: 0 })
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_connect', 'on_publish'])
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: true, cid: a.clientId })
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: false, code: SrsCode.StreamBusy }, 'the token is held again')
  await sim.stop(a.clientId)
  t.same(hooks.hooksOf(a.clientId).slice(-2), ['on_unpublish', 'on_close'])
})

t.test('7-token: a newcomer that takes the token while the republishing holder is in on_connect wins; the holder gets 1028 and closes', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  // the first on_connect was answered before this replier: it holds the second one
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_connect' && r.body.client_id === a.clientId) await g.promise
    return {}
  })
  const again = sim.republish(a.clientId)
  await until('the second on_connect arrived', () => hooks.hooksOf(a.clientId).filter((h) => h === 'on_connect').length === 2)
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: true }, 'the token was free')
  t.same(hooks.hooksOf(b.clientId), ['on_connect', 'on_publish'])
  g.open()
  const res = await again
  t.match(res, { ok: false, code: SrsCode.StreamBusy, clientId: a.clientId })
  t.match(res.reason, `acquired by cid=${b.clientId}, current cid=${a.clientId}`)
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_connect', 'on_close'])
  t.equal(sim.activePublisher('live', 'cam1'), b.clientId)
  await until('the holder left', async () => await clientGone(sim, a.clientId))
})

t.test('republish: SRS 4 sends no second on_connect; SRS 6 does; a refused second on_publish closes the connection', async (t) => {
  const v4 = await setup(t, { version: '4' })
  const a = await v4.sim.publish({ app: 'live', stream: 'cam1' })
  t.match(await v4.sim.republish(a.clientId), { ok: true, clientId: a.clientId })
  t.same(v4.hooks.hooksOf(a.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_publish'])

  const { sim, hooks } = await setup(t, { version: '6' })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(await sim.republish(b.clientId), { ok: true })
  t.same(hooks.hooksOf(b.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_connect', 'on_publish'])
  hooks.reply((r) => r.hook === 'on_publish' ? { body: '{"code":1}' } : {})
  t.match(await sim.republish(b.clientId), { ok: false, code: SrsCode.ResponseCode, reason: /^on_publish: / })
  t.same(hooks.hooksOf(b.clientId).slice(5), ['on_unpublish', 'on_connect', 'on_publish', 'on_close'])
  t.equal(await clientGone(sim, b.clientId), true)

  const p = await sim.play({ app: 'live', stream: 'cam2' })
  const s = await sim.publish({ app: 'live', stream: 'cam3', protocol: 'srt' })
  for (const id of ['nobody00', p.clientId, s.clientId, b.clientId]) {
    await t.rejects(sim.republish(id), /no active RTMP publisher/, id)
  }
})

// ------------------------------------------------------------------ SRT and WebRTC publishers

t.test('7-token SRT: the token comes before on_connect, so a refused SRT publisher sends no hook; the holder frees it after on_close', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const x = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'srt' })
  t.match(x, { ok: true })
  t.same(hooks.hooksOf(x.clientId), ['on_connect', 'on_publish'])
  t.match(hooks.received[0]?.body, { tcUrl: 'srt://127.0.0.1:10080/live', stream: 'cam1' })
  t.match((await api(sim, `/api/v1/clients/${x.clientId}`)).json.client, { type: 'srt-publish', publish: true })
  t.equal(sim.activePublisher('live', 'cam1'), x.clientId)

  const n = hooks.received.length
  const srt = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'srt' })
  const rtc = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'rtc' })
  t.match(srt, { ok: false, code: SrsCode.StreamBusy, reason: /acquired by cid=/ })
  t.match(rtc, { ok: false, code: SrsCode.StreamBusy })
  t.equal(hooks.received.length, n, 'no hook at all for a refused SRT or WebRTC publisher')
  const rtmp = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(hooks.hooksOf(rtmp.clientId), ['on_connect', 'on_close'], 'RTMP gets on_connect first')

  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_close' && r.body.client_id === x.clientId) await g.promise
    return {}
  })
  const stopping = sim.stop(x.clientId)
  await hooks.waitFor((r) => r.hook === 'on_close' && r.body.client_id === x.clientId)
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: false, code: SrsCode.StreamBusy }, 'still held during on_close')
  g.open()
  await stopping
  t.same(hooks.hooksOf(x.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
  t.equal(await clientGone(sim, x.clientId), true)
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: true })
})

t.test('7-token WebRTC: the token before on_publish, no on_connect or on_close; the disposed session frees it before its on_unpublish', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const x = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'rtc', param: '?k=1' })
  t.match(x, { ok: true })
  t.same(hooks.hooksOf(x.clientId), ['on_publish'])
  t.match(hooks.received[0]?.body, { param: '?k=1&upstream=rtc', tcUrl: 'webrtc://127.0.0.1/live', stream_url: '/live/cam1' })
  t.match((await api(sim, `/api/v1/clients/${x.clientId}`)).json.client, { type: 'rtc-publish', publish: true })
  const n = hooks.received.length
  t.match(await sim.publish({ app: 'live', stream: 'cam1', protocol: 'rtc' }), { ok: false, code: SrsCode.StreamBusy })
  t.equal(hooks.received.length, n, 'a refused WebRTC publisher sends no hook')

  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_unpublish') await g.promise
    return {}
  })
  await api(sim, `/api/v1/clients/${x.clientId}`, { method: 'DELETE' })
  const unpublish = await hooks.waitFor((r) => r.hook === 'on_unpublish' && r.body.client_id === x.clientId)
  t.equal(unpublish.body.param, '?k=1&upstream=rtc')
  t.equal(await clientGone(sim, x.clientId), true, 'the session left the statistics before its on_unpublish')
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: true }, 'and its token is free')
  g.open()
  await until('the on_unpublish was answered', () => sim.hookCalls.some((c) => c.hook === 'on_unpublish'))
  t.same(hooks.hooksOf(x.clientId), ['on_publish', 'on_unpublish'])
  const bare = await sim.publish({ app: 'live', stream: 'cam2', protocol: 'rtc' })
  t.equal(sim.hookCalls.find((c) => c.clientId === bare.clientId)?.body.param, 'upstream=rtc')
})

t.test('v6 SRT: on_connect, on_publish, then acquire: 6007 against SRT, 1028 against RTMP, each followed by on_unpublish and on_close', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => {
    if (r.hook === 'on_connect' && r.body.param === '?deny') return { status: 403 }
    if (r.hook === 'on_publish' && r.body.param === '?nope') return { body: '{"code":1}' }
    return {}
  })
  const x = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'srt' })
  t.match(x, { ok: true })
  const srt = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'srt' })
  t.match(srt, { ok: false, code: SrsCode.SrtSourceBusy, reason: 'srt: stream /live/cam1 busy' })
  t.same(hooks.hooksOf(srt.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
  const rtmp = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(rtmp, { ok: false, code: SrsCode.StreamBusy })
  t.same(hooks.hooksOf(rtmp.clientId), ['on_connect', 'on_publish', 'on_close'], 'RTMP is refused by the live source SRT holds')

  await sim.publish({ app: 'live', stream: 'cam2' })
  const onRtmp = await sim.publish({ app: 'live', stream: 'cam2', protocol: 'srt' })
  t.match(onRtmp, { ok: false, code: SrsCode.StreamBusy })
  t.same(hooks.hooksOf(onRtmp.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])

  const denied = await sim.publish({ app: 'live', stream: 'cam3', protocol: 'srt', param: '?deny' })
  t.match(denied, { ok: false, code: SrsCode.HttpStatusInvalid, reason: /^on_connect: / })
  t.same(hooks.hooksOf(denied.clientId), ['on_connect'], 'no on_close after a refused SRT on_connect')
  const nope = await sim.publish({ app: 'live', stream: 'cam3', protocol: 'srt', param: '?nope' })
  t.match(nope, { ok: false, code: SrsCode.ResponseCode, reason: /^on_publish: / })
  t.same(hooks.hooksOf(nope.clientId), ['on_connect', 'on_publish', 'on_close'])
  t.same(sim.clientIds().sort(), [x.clientId, sim.activePublisher('live', 'cam2') as string].sort())

  await api(sim, `/api/v1/clients/${x.clientId}`, { method: 'DELETE' })
  await until('the kicked SRT publisher left', async () => await clientGone(sim, x.clientId))
  t.same(hooks.hooksOf(x.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
})

t.test('v6 WebRTC: 5020 before any hook against WebRTC; on_publish then 1028 against RTMP; refusals leave no client', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_publish' && r.body.stream === 'cam3' ? { body: '{"code":1}' } : {})
  const x = await sim.publish({ app: 'live', stream: 'cam1', protocol: 'rtc' })
  t.match(x, { ok: true })
  const n = hooks.received.length
  t.match(await sim.publish({ app: 'live', stream: 'cam1', protocol: 'rtc' }), { ok: false, code: SrsCode.RtcSourceBusy })
  t.equal(hooks.received.length, n, 'the RTC source busy check comes before the hook')

  await sim.publish({ app: 'live', stream: 'cam2' })
  const onRtmp = await sim.publish({ app: 'live', stream: 'cam2', protocol: 'rtc' })
  t.match(onRtmp, { ok: false, code: SrsCode.StreamBusy })
  t.same(hooks.hooksOf(onRtmp.clientId), ['on_publish'])
  const refused = await sim.publish({ app: 'live', stream: 'cam3', protocol: 'rtc' })
  t.match(refused, { ok: false, code: SrsCode.ResponseCode, reason: /^on_publish: / })
  t.equal(await clientGone(sim, onRtmp.clientId), true)
  t.equal(await clientGone(sim, refused.clientId), true)

  await sim.stop(x.clientId)
  t.same(hooks.hooksOf(x.clientId), ['on_publish', 'on_unpublish'])
  t.equal(sim.activePublisher('live', 'cam1'), undefined)
  await t.rejects(start(t, { version: '4' }).then(async (v4) => await v4.publish({ app: 'live', stream: 'cam1', protocol: 'srt' })), /not modelled for SRS 4/)
})

// ------------------------------------------------------------------ restarts

t.test('restart: connections drop without hooks, hooks in flight are abandoned, the API refuses while down, then SRS is back with the same server id', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  hooks.reply((r) => (r.hook === 'on_publish' && r.body.stream === 'cam2') || r.hook === 'on_play' ? { hang: true } : {})
  const pendingPublish = sim.publish({ app: 'live', stream: 'cam2' })
  const pendingPlay = sim.play({ app: 'live', stream: 'cam1' })
  const onPublish = await hooks.waitFor((r) => r.hook === 'on_publish' && r.body.stream === 'cam2')
  const onPlay = await hooks.waitFor((r) => r.hook === 'on_play' && r.body.client_id !== p.clientId)
  const before = (await api(sim, '/api/v1/versions')).json
  const n = hooks.received.length

  const restarting = sim.restart({ version: '7-token', downMs: 1000 })
  await t.rejects(api(sim, '/api/v1/versions'), 'the API refuses connections while SRS is down')
  t.same(await sim.publish({ app: 'live', stream: 'cam3' }), { clientId: '', ok: false, code: SrsCode.StConnect, reason: 'connect refused: SRS is down' })
  t.match(await sim.play({ app: 'live', stream: 'cam3' }), { ok: false, code: SrsCode.StConnect })
  t.match(await pendingPublish, { ok: false, code: SrsCode.SocketRead, reason: /SRS restarted/ })
  t.match(await pendingPlay, { ok: false })
  await onPublish.aborted
  await onPlay.aborted
  await restarting

  const after = (await api(sim, '/api/v1/versions')).json
  t.equal(after.server, before.server, 'the same server id')
  t.not(after.service, before.service, 'a new service id')
  t.not(after.pid, before.pid, 'a new pid')
  t.equal(after.service, sim.serviceId)
  t.equal(after.pid, sim.processId)
  t.same(after.data, { major: 7, minor: 0, revision: 62, version: '7.0.62' }, 'upgraded across the restart')
  t.equal(sim.userAgent, 'SRS/7.0.62(Hang)')
  t.same((await api(sim, '/api/v1/streams/')).json.streams, [])
  t.same((await api(sim, '/api/v1/clients/')).json.clients, [])
  t.equal(hooks.received.length, n, 'no hook for any dropped connection')
  t.same(hooks.hooksOf(a.clientId), ['on_connect', 'on_publish'])
  t.same(hooks.hooksOf(p.clientId), ['on_connect', 'on_play'])
  t.match(sim.hookCalls.find((c) => c.hook === 'on_publish' && c.body.stream === 'cam2'), { status: null, accepted: false, code: SrsCode.SocketRead })
  await t.rejects(sim.stop(a.clientId), /no active publisher/)
  t.equal(sim.activePublisher('live', 'cam1'), undefined)

  hooks.reply(() => ({}))
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: true })
  const onPublishB = hooks.received.find((r) => r.hook === 'on_publish' && r.body.client_id === b.clientId) as Received
  t.match(onPublishB.body, { server_id: before.server, service_id: after.service })
  t.equal(onPublishB.headers['user-agent'], 'SRS/7.0.62(Hang)')
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: false, code: SrsCode.StreamBusy, reason: /publish token/ }, 'the new version takes the token')
})

t.test('restart during teardowns: releases waiting on a delay, a hook or the unpublish gap send nothing more', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const b = await sim.publish({ app: 'live', stream: 'cam2' })
  const c = await sim.publish({ app: 'live', stream: 'cam3' })
  // a is kicked and waits out a long release delay
  sim.setReleaseDelay(60_000)
  await api(sim, `/api/v1/clients/${a.clientId}`, { method: 'DELETE' })
  // b stops, and its on_unpublish hangs
  hooks.reply((r) => r.hook === 'on_unpublish' && r.body.client_id === b.clientId ? { hang: true } : {})
  const stopB = sim.stop(b.clientId)
  await hooks.waitFor((r) => r.hook === 'on_unpublish' && r.body.client_id === b.clientId)
  // c stops inside a long unpublish gap
  sim.setUnpublishGap(60_000)
  const stopC = sim.stop(c.clientId)
  await until('c is inactive', async () => (await streamByName(sim, 'cam3'))?.publish.active === false)
  const n = hooks.received.length

  await sim.restart()
  await stopB
  await stopC
  t.equal(hooks.received.length, n, 'nothing was sent after the restart')
  t.same(sim.clientIds(), [])
  t.equal(sim.version, '7.0.62', 'the same version when none is given')
  sim.setReleaseDelay(0)
  sim.setUnpublishGap(0)
  const again = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(again, { ok: true }, 'no token survived the restart')
  await sim.stop(again.clientId)
  t.same(hooks.hooksOf(again.clientId), ['on_connect', 'on_publish', 'on_unpublish', 'on_close'])
})

t.test('restart: close() during the downtime ends it; no restart after close or during another', async (t) => {
  const sim = await SrsSimulator.start()
  const restarting = sim.restart({ downMs: 60_000 })
  await t.rejects(sim.restart(), /already restarting/)
  await sim.close()
  await restarting
  await t.rejects(sim.restart(), /simulator closed/)
})

// ------------------------------------------------------------------ several SRS servers

t.test('two SRS servers side by side: each hook\'s server_id is the server field of that SRS\'s API', async (t) => {
  const hooks = await hooksServer(t)
  const a = await start(t, { hookBase: hooks.base, serverId: 'srs-node-a' })
  const b = await start(t, { hookBase: hooks.base })
  const pa = await a.publish({ app: 'live', stream: 'cam1' })
  const pb = await b.publish({ app: 'live', stream: 'cam1' })
  t.match(pa, { ok: true })
  t.match(pb, { ok: true }, 'the same stream on another server is another stream')
  const va = (await api(a, '/api/v1/versions')).json
  const vb = (await api(b, '/api/v1/versions')).json
  t.equal(va.server, 'srs-node-a')
  t.not(va.server, vb.server)
  t.not(va.service, vb.service)
  t.equal(hooks.received.length, 4)
  for (const r of hooks.received) {
    const v = r.body.client_id === pa.clientId ? va : vb
    t.equal(r.body.server_id, v.server, `${r.hook} of ${r.body.client_id as string}`)
    t.equal(r.body.service_id, v.service)
  }
  t.same(a.clientIds(), [pa.clientId])
  t.same(b.clientIds(), [pb.clientId])
})

// ------------------------------------------------------------------ the unpublish gap

t.test('v6: publish.active=false comes first and can_publish=true after the unpublish gap; a newcomer inside the gap gets 1028', async (t) => {
  const { sim, hooks } = await setup(t, { unpublishGapMs: 3000 })
  t.equal(sim.unpublishGapMs, 3000)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const started = Date.now()
  const stopping = sim.stop(a.clientId)
  await until('the stream is inactive', async () => (await streamByName(sim, 'cam1'))?.publish.active === false)
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId, 'can_publish is still false')
  t.notOk(hooks.received.some((r) => r.hook === 'on_unpublish'), 'no on_unpublish yet')
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(b, { ok: false, code: SrsCode.StreamBusy })
  t.same(hooks.hooksOf(b.clientId), ['on_connect', 'on_publish', 'on_close'])
  await stopping
  const unpublish = sim.hookCalls.find((c) => c.hook === 'on_unpublish') as HookCall
  t.ok(unpublish.startedAt - started >= 2900, 'on_unpublish follows the gap')
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: true })
  for (const version of ['6', '7', '7-token', '7-fixed'] as const) {
    t.equal((await start(t, { version })).unpublishGapMs, 5, `${version}: a gap of a few ms by default`)
  }
})

t.test('v5: can_publish=true comes before active=false: no gap, a newcomer gets in while the old on_unpublish is pending', async (t) => {
  const { sim, hooks } = await setup(t, { version: '5', unpublishGapMs: 60_000 })
  t.equal(sim.unpublishGapMs, 0, 'SRS 5 has no gap')
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_unpublish') await g.promise
    return {}
  })
  const stopping = sim.stop(a.clientId)
  await hooks.waitFor((r) => r.hook === 'on_unpublish')
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: false, cid: a.clientId })
  t.match(await sim.publish({ app: 'live', stream: 'cam1' }), { ok: true })
  g.open()
  await stopping
})

// ------------------------------------------------------------------ the orphaned source of SRS 6 and 7 < 7.0.151

t.test('v6: the next cleanup tick removes the new source of a publisher waiting in on_publish; it then publishes where no player finds it', async (t) => {
  const { sim, hooks } = await setup(t, { sourceTickMs: 60_000 })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish' && r.body.param === '?slow') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1', param: '?slow' })
  const onPublish = await hooks.waitFor((r) => r.hook === 'on_publish')
  const id = onPublish.body.client_id as string
  t.equal(sim.orphaned(id), false)
  t.same(sim.cleanupTick(), ['/live/cam1'], 'stream_die_at_ is 0 for a new source: dead at once')
  t.equal(sim.orphaned(id), true)
  g.open()
  t.match(await pending, { ok: true, clientId: id })
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: true, cid: id }, 'the API shows it published')
  t.equal(sim.activePublisher('live', 'cam1'), id)
  t.equal(sim.playerGetsMedia('live', 'cam1'), false, 'a player would get nothing')
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  t.match(p, { ok: true }, 'the player passes its hooks')
  t.equal(sim.receivesMedia(p.clientId), false, '"create consumer, active=0"')

  // The pool's new source is free: acquire_publish checks the source each publisher fetched, so a second one gets in.
  const dup = await sim.publish({ app: 'live', stream: 'cam1' })
  t.match(dup, { ok: true })
  t.equal(sim.receivesMedia(p.clientId), true, 'the player is on the second publisher\'s source')
  t.equal(sim.playerGetsMedia('live', 'cam1'), true)
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: true, cid: dup.clientId })
  await sim.stop(id)
  t.equal(sim.activePublisher('live', 'cam1'), dup.clientId)
  t.match((await streamByName(sim, 'cam1'))?.publish, { active: false }, 'the statistics stream is per url: the orphan\'s unpublish closes it')
  t.equal(sim.orphaned(id), true, 'known after it left')
  t.throws(() => sim.orphaned('nobody00'), /unknown client/)
})

t.test('7-token: the token does not protect the source before 7.0.151; SRS\'s own timer orphans a publisher waiting in on_publish', async (t) => {
  const { sim, hooks } = await setup(t, { version: '7-token' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const id = (await hooks.waitFor((r) => r.hook === 'on_publish')).body.client_id as string
  // the tick runs every 3 s; a new source is dead at once
  await until('the timer removed the source', () => sim.orphaned(id), 8000)
  g.open()
  t.match(await pending, { ok: true })
  t.equal(sim.playerGetsMedia('live', 'cam1'), false)
  t.equal(sim.activePublisher('live', 'cam1'), id)
})

t.test('v6: the source an old publisher left is removed 3 s after it died, with the newcomer that fetched it', async (t) => {
  const { sim, hooks } = await setup(t, { sourceTickMs: 60_000 })
  const x = await sim.publish({ app: 'live', stream: 'cam1' })
  t.same(sim.cleanupTick(), [], 'a published source is not dead')
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish' && r.body.client_id !== x.clientId) await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const id = (await hooks.waitFor((r) => r.hook === 'on_publish' && r.body.client_id !== x.clientId)).body.client_id as string
  await sim.stop(x.clientId)
  t.same(sim.cleanupTick(), [], 'it died just now')
  t.equal(sim.orphaned(x.clientId), false)
  await until('the source is dead long enough to go', () => sim.cleanupTick().length > 0)
  t.equal(sim.orphaned(id), true)
  g.open()
  t.match(await pending, { ok: true })
  t.equal(sim.playerGetsMedia('live', 'cam1'), false)
})

t.test('v6: players keep their source; a player waiting in on_play can be orphaned too (#4182)', async (t) => {
  const { sim, hooks } = await setup(t, { sourceTickMs: 60_000 })
  const p = await sim.play({ app: 'live', stream: 'cam1' })
  t.same(sim.cleanupTick(), [], 'a source with a consumer is not dead')
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  t.equal(sim.receivesMedia(p.clientId), true)
  t.equal(sim.playerGetsMedia('live', 'cam1'), true)
  sim.stall(a.clientId)
  t.equal(sim.receivesMedia(p.clientId), false, 'a stalled publisher delivers nothing')
  t.equal(sim.playerGetsMedia('live', 'cam1'), false)
  await sim.stop(a.clientId)
  t.same(sim.cleanupTick(), [], 'the player still holds it')
  await sim.stopPlayer(p.clientId)
  t.same(sim.cleanupTick(), [], 'the last consumer left just now: dead in 3 s')
  t.throws(() => sim.receivesMedia(p.clientId), /no active player/)

  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_play' && r.body.stream === 'cam2') await g.promise
    return {}
  })
  const pending = sim.play({ app: 'live', stream: 'cam2' })
  await hooks.waitFor((r) => r.hook === 'on_play' && r.body.stream === 'cam2')
  t.same(sim.cleanupTick(), ['/live/cam2'], 'no consumer yet')
  g.open()
  const q = await pending
  t.match(q, { ok: true })
  await sim.publish({ app: 'live', stream: 'cam2' })
  t.equal(sim.orphaned(q.clientId), true)
  t.equal(sim.receivesMedia(q.clientId), false, 'its source is not the publisher\'s')
  t.equal(sim.playerGetsMedia('live', 'cam2'), true, 'a new player finds the publisher')
})

t.test('SRS 5 removes no source', async (t) => {
  const { sim, hooks } = await setup(t, { version: '5' })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const id = (await hooks.waitFor((r) => r.hook === 'on_publish')).body.client_id as string
  t.same(sim.cleanupTick(), [])
  t.equal(sim.orphaned(id), false)
  g.open()
  t.match(await pending, { ok: true })
  t.equal(sim.playerGetsMedia('live', 'cam1'), true)
})

t.test('7-fixed (7.0.151): a new source has a grace period, and a held token keeps it; once free it goes', async (t) => {
  const graced = await setup(t, { version: '7-fixed', sourceTickMs: 60_000 })
  t.equal(graced.sim.version, '7.0.151')
  const g1 = gate()
  graced.hooks.reply(async (r) => {
    if (r.hook === 'on_play') await g1.promise
    return {}
  })
  const pendingPlay = graced.sim.play({ app: 'live', stream: 'cam1' })
  await graced.hooks.waitFor((r) => r.hook === 'on_play')
  t.same(graced.sim.cleanupTick(), [], 'stream_die_at_ starts at the creation (#4576)')
  g1.open()
  t.match(await pendingPlay, { ok: true })

  const { sim, hooks } = await setup(t, { version: '7-fixed', sourceTickMs: 60_000, sourceCleanupMs: 100 })
  const g = gate()
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await g.promise
    return {}
  })
  const pending = sim.publish({ app: 'live', stream: 'cam1' })
  const id = (await hooks.waitFor((r) => r.hook === 'on_publish')).body.client_id as string
  const since = Date.now()
  await until('the grace period is over', () => Date.now() > since + 200)
  t.same(sim.cleanupTick(), [], 'the pending publisher\'s token keeps its source (#4693)')
  g.open()
  const a = await pending
  t.match(a, { ok: true })
  t.equal(sim.orphaned(id), false)
  t.equal(sim.playerGetsMedia('live', 'cam1'), true)
  await sim.stop(a.clientId)
  await until('the free, dead source is removed', () => sim.cleanupTick().length > 0)
})
