// Tests of the ZLMediaKit simulator's HTTP API (/index/api/*, docs/zlm-protocol.md section 3).

import t from 'tap'
import http from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { ZlmSimulator, DEFAULT_VHOST, SERVER_NAME } from './fixtures/zlm-sim.js'
import type { ZlmSimOptions } from './fixtures/zlm-sim.js'

interface Test { teardown: (fn: () => unknown) => void }

// ------------------------------------------------------------------ helpers (the same in every zlm-sim test file)

interface Received { hook: string, url: string, headers: IncomingHttpHeaders, raw: string, body: Record<string, any> }

interface HooksServer { base: string, received: Received[] }

async function hooksServer (t: Test): Promise<HooksServer> {
  const received: Received[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const url = req.url as string
      received.push({ hook: new URL('http://x' + url).pathname.split('/').pop() as string, url, headers: req.headers, raw, body: JSON.parse(raw) })
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end('{"code":0,"msg":"success"}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/index/hook`, received }
}

async function until<T> (what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

interface ApiAnswer { status: number, headers: IncomingHttpHeaders, text: string, json: Record<string, any>, socket: Socket, localPort: number }
interface ApiOptions { secret?: string | null, method?: string, type?: string, body?: string, agent?: http.Agent, path?: string }

async function api (sim: ZlmSimulator, name: string, params: Record<string, string | number> = {}, o: ApiOptions = {}): Promise<ApiAnswer> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))
  const secret = o.secret === undefined ? sim.secret : o.secret
  if (secret !== null) q.set('secret', secret)
  const headers: Record<string, string> = {}
  if (o.type !== undefined) headers['Content-Type'] = o.type
  return await new Promise((resolve, reject) => {
    const req = http.request(`${sim.apiUrl}${o.path ?? '/index/api/' + name}?${q.toString()}`, { method: o.method ?? 'GET', agent: o.agent ?? false, headers }, (res) => {
      const socket = req.socket as Socket
      const localPort = socket.localPort as number
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => {
        let json: Record<string, any> = {}
        try { json = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode as number, headers: res.headers, text, json, socket, localPort })
      })
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

async function setup (t: Test, opts: ZlmSimOptions = {}): Promise<{ sim: ZlmSimulator, hooks: HooksServer }> {
  const hooks = await hooksServer(t)
  const sim = await ZlmSimulator.start({ hookBase: hooks.base, aliveIntervalSec: 0, retryDelayMs: 50, ...opts })
  t.teardown(async () => await sim.close())
  return { sim, hooks }
}

const changed = (r: Received, regist: boolean): boolean => r.hook === 'on_stream_changed' && r.body.regist === regist

// ------------------------------------------------------------------ the secret and the arguments

t.test('every API needs the secret, even from 127.0.0.1; a -100 answer shuts the connection down', async (t) => {
  const { sim } = await setup(t, { secret: 'right' })
  const none = await api(sim, 'getMediaList', {}, { secret: null })
  t.same(none.json, { code: -100, msg: 'Please login first' })
  t.equal(none.status, 200)
  const wrong = await api(sim, 'getMediaList', {}, { secret: 'wrong' })
  t.same(wrong.json, { code: -100, msg: 'Incorrect secret' })
  const ok = await api(sim, 'getMediaList')
  t.same(ok.json, { code: 0 })
  t.equal(ok.text, '{\n   "code" : 0\n}\n', 'jsoncpp styled')
  t.equal(ok.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(ok.headers.server, SERVER_NAME)

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const a = await api(sim, 'getMediaList', {}, { agent })
  const b = await api(sim, 'getMediaList', {}, { agent })
  t.equal(a.socket, b.socket, 'a success keeps the connection')
  const refused = await api(sim, 'getMediaList', {}, { agent, secret: 'wrong' })
  await until('the connection closed', () => refused.socket.destroyed)
  t.pass('closed after the answer (ApiRetException)')

  sim.setSecret('rotated')
  t.equal((await api(sim, 'getMediaList', {}, { secret: 'right' })).json.code, -100, 'the old secret no longer works')
  t.equal((await api(sim, 'getMediaList', {}, { secret: 'rotated' })).json.code, 0)
})

t.test('arguments come from a form body, a JSON body and the query; the query wins', async (t) => {
  const { sim } = await setup(t, { secret: 's' })
  const form = await api(sim, 'getMediaList', {}, { secret: null, method: 'POST', type: 'application/x-www-form-urlencoded', body: 'secret=s&flag&bad=%zz&&name=a%20b' })
  t.equal(form.json.code, 0)
  t.same(sim.apiCalls.at(-1)?.args, { secret: 's', flag: '', bad: '%zz', name: 'a b' })
  const json = await api(sim, 'getMediaList', {}, { secret: null, method: 'POST', type: 'application/json', body: '{"secret":"s","n":5,"b":true,"z":null}' })
  t.equal(json.json.code, 0)
  t.same(sim.apiCalls.at(-1)?.args, { b: 'true', n: '5', secret: 's', z: '' })
  const nested = await api(sim, 'getMediaList', {}, { secret: null, method: 'POST', type: 'application/json', body: '{"a":{"x":1},"secret":"s"}' })
  t.equal(nested.json.code, -100, 'asString throws on an object: the members after it are lost')
  const broken = await api(sim, 'getMediaList', {}, { secret: null, method: 'POST', type: 'application/json', body: '{' })
  t.equal(broken.json.code, -100)
  const other = await api(sim, 'getMediaList', {}, { secret: null, method: 'POST', type: 'text/plain', body: 'secret=s' })
  t.equal(other.json.code, -100, 'other content types are ignored')
  const both = await api(sim, 'getMediaList', {}, { secret: 's', method: 'POST', type: 'application/x-www-form-urlencoded', body: 'secret=wrong' })
  t.equal(both.json.code, 0, 'the query wins over the body')
})

t.test('API names are case-insensitive; an unknown path is an HTTP 404', async (t) => {
  const { sim } = await setup(t)
  t.equal((await api(sim, '', {}, { path: '/index/api/GETMEDIALIST' })).json.code, 0)
  const missing = await api(sim, 'nosuch')
  t.equal(missing.status, 404)
})

t.test('faults: down, slow, garbage and error500; apiDelayMs', async (t) => {
  const { sim } = await setup(t)
  sim.setFault('garbage')
  const garbage = await api(sim, 'getMediaList')
  t.equal(garbage.status, 200)
  t.throws(() => JSON.parse(garbage.text), 'unparsable')
  sim.setFault('error500')
  t.equal((await api(sim, 'getMediaList')).status, 500)
  sim.setFault('slow', { slowMs: 150 })
  const started = Date.now()
  t.equal((await api(sim, 'getMediaList')).json.code, 0)
  t.ok(Date.now() - started >= 140, 'answered late')
  sim.setFault('down')
  await t.rejects(api(sim, 'getMediaList'), 'connections are dropped')
  sim.setFault('none')
  t.equal((await api(sim, 'getMediaList')).json.code, 0)
  sim.setFault('slow')
  sim.setFault('none')

  const delayed = await setup(t, { apiDelayMs: 100 })
  const t0 = Date.now()
  await api(delayed.sim, 'getMediaList')
  t.ok(Date.now() - t0 >= 90)
})

// ------------------------------------------------------------------ configuration

t.test('getServerConfig returns every key, mediaServerId included; setServerConfig changes known keys, and they apply', async (t) => {
  const { sim, hooks } = await setup(t, { mediaServerId: 'zlm-a', config: { 'custom.key': 'x' } })
  const cfg = await api(sim, 'getServerConfig')
  t.equal(cfg.json.data.length, 1)
  t.match(cfg.json.data[0], { 'general.mediaServerId': 'zlm-a', 'api.secret': sim.secret, 'custom.key': 'x', 'hook.retry': '1', 'hook.timeoutSec': '10', 'protocol.continue_push_ms': '15000', 'rtp_proxy.timeoutSec': '15' })
  const set = await api(sim, 'setServerConfig', { 'general.mediaServerId': 'zlm-b', 'no.such': '1', 'ffmpeg.bin': '/bin/sh', 'hook.retry': '1' })
  t.same(set.json, { code: 0, changed: 1 }, 'unknown keys, ffmpeg.bin and unchanged values do not count')
  t.equal(sim.config('no.such'), undefined)
  t.equal(sim.config('ffmpeg.bin'), '/usr/bin/ffmpeg')
  t.equal(sim.mediaServerId, 'zlm-b')
  await sim.publish({ app: 'live', stream: 'cam1' })
  const pub = await until('on_publish', () => hooks.received.find((r) => r.hook === 'on_publish'))
  t.equal(pub.body.mediaServerId, 'zlm-b', 'hooks carry the new id')
})

// ------------------------------------------------------------------ media and sessions

t.test('getMediaList: one entry per schema, filtered by schema, vhost, app and stream; no data member when nothing matches', async (t) => {
  const { sim } = await setup(t)
  const a = await sim.publish({ app: 'live', stream: 'a' })
  await sim.publish({ app: 'other', stream: 'b' })
  const all = await api(sim, 'getMediaList')
  t.equal(all.json.data.length, 8)
  const one = await api(sim, 'getMediaList', { app: 'live', stream: 'a', vhost: DEFAULT_VHOST })
  t.same(one.json.data.map((d: any) => d.schema).sort(), ['fmp4', 'rtmp', 'rtsp', 'ts'])
  t.match(one.json.data[0], { app: 'live', stream: 'a', originSock: { identifier: a.id }, originTypeStr: 'rtmp_push' })
  t.equal((await api(sim, 'getMediaList', { schema: 'ts' })).json.data.length, 2)
  t.same((await api(sim, 'getMediaList', { stream: 'nosuch' })).json, { code: 0 })
  t.same((await api(sim, 'isMediaOnline', { schema: 'rtmp', vhost: DEFAULT_VHOST, app: 'live', stream: 'a' })).json, { code: 0, online: true })
  t.same((await api(sim, 'isMediaOnline', { schema: 'hls', vhost: DEFAULT_VHOST, app: 'live', stream: 'a' })).json, { code: 0, online: false })
  t.same((await api(sim, 'isMediaOnline', { schema: 'rtmp' })).json, { code: -300, msg: 'Required parameter missed: "schema", "vhost", "app", "stream"' })
})

t.test('getAllSession lists publishers, players and HTTP sessions, the caller included; local_port and peer_ip filter', async (t) => {
  const { sim } = await setup(t)
  const pub = await sim.publish({ app: 'live', stream: 'a', ip: '10.0.0.5' })
  const player = await sim.play({ app: 'live', stream: 'a', ip: '10.0.0.6' })
  const all = await api(sim, 'getAllSession')
  const byId = new Map<string, any>(all.json.data.map((s: any) => [s.id, s]))
  t.match(byId.get(pub.id), { identifier: pub.id, peer_ip: '10.0.0.5', local_port: 1935, local_ip: '127.0.0.1', typeid: 'mediakit::RtmpSession' })
  t.match(byId.get(player.id), { peer_ip: '10.0.0.6', typeid: 'mediakit::RtmpSession' })
  const http = all.json.data.filter((s: any) => s.typeid === 'mediakit::HttpSession')
  t.ok(http.some((s: any) => s.peer_port === all.localPort), 'the caller\'s own HTTP session')
  t.same((await api(sim, 'getAllSession', { peer_ip: '10.0.0.5' })).json.data.map((s: any) => s.id), [pub.id])
  const rtmp = await api(sim, 'getAllSession', { local_port: 1935 })
  t.same(rtmp.json.data.map((s: any) => s.id).sort(), [pub.id, player.id].sort())
})

t.test('kick_session answers before the close runs; the unregistration follows', async (t) => {
  const { sim, hooks } = await setup(t, { closeDelayMs: 300 })
  const pub = await sim.publish({ app: 'live', stream: 'a' })
  const kick = await api(sim, 'kick_session', { id: pub.id })
  t.same(kick.json, { code: 0 })
  t.equal(sim.owner('live', 'a'), pub.id, 'still publishing when the answer arrives')
  t.equal((await api(sim, 'getMediaList', { schema: 'rtmp' })).json.data.length, 1)
  t.equal(hooks.received.filter((r) => changed(r, false)).length, 0)
  await until('4 unregistrations', () => hooks.received.filter((r) => changed(r, false)).length === 4)
  t.same(sim.kicks, [pub.id])
  t.match(sim.session(pub.id), { kicked: true, state: 'ended' })
  t.same((await api(sim, 'getMediaList')).json, { code: 0 })

  sim.setCloseDelay(0)
  const again = await sim.publish({ app: 'live', stream: 'b' })
  await api(sim, 'kick_session', { id: again.id })
  await until('closed', () => sim.session(again.id)?.state === 'ended')
})

t.test('kick_session: -1 for an unknown id, -300 without one', async (t) => {
  const { sim } = await setup(t)
  t.same((await api(sim, 'kick_session', { id: '999-9' })).json, { code: -1, msg: 'can not find the target' })
  t.same((await api(sim, 'kick_session')).json, { code: -300, msg: 'Required parameter missed: "id"' })
})

t.test('kick_sessions kicks by local_port and peer_ip, spares the caller, and answers before the close', async (t) => {
  const { sim } = await setup(t, { closeDelayMs: 200 })
  const a = await sim.publish({ app: 'live', stream: 'a', ip: '10.0.0.5' })
  const b = await sim.publish({ app: 'live', stream: 'b', ip: '10.0.0.6' })
  const p = await sim.play({ app: 'live', stream: 'b', schema: 'rtsp', ip: '10.0.0.6' })
  const one = await api(sim, 'kick_sessions', { peer_ip: '10.0.0.5' })
  t.same(one.json, { code: 0, count_hit: 1 })
  t.equal(sim.session(a.id)?.state, 'live', 'not closed yet')
  await until('closed', () => sim.session(a.id)?.state === 'ended')
  t.equal(sim.session(b.id)?.state, 'live')
  const rtsp = await api(sim, 'kick_sessions', { local_port: 554 })
  t.same(rtsp.json, { code: 0, count_hit: 1 })
  const everyone = await api(sim, 'kick_sessions')
  t.same(everyone.json.count_hit, 2, 'b and the still-open player; never the caller')
  await until('closed', () => sim.session(b.id)?.state === 'ended')
  t.same(sim.kicks.sort(), [a.id, p.id, b.id, p.id].sort())
  t.equal(sim.session(p.id)?.kicked, true)
})

t.test('close_streams answers at once with count_hit per schema and closes later', async (t) => {
  const { sim, hooks } = await setup(t, { closeDelayMs: 300 })
  const a = await sim.publish({ app: 'live', stream: 'a' })
  await sim.publish({ app: 'live', stream: 'b' })
  const res = await api(sim, 'close_streams', { stream: 'a', force: 1 })
  t.same(res.json, { code: 0, count_hit: 4, count_closed: 4 })
  t.equal(sim.owner('live', 'a'), a.id, 'not closed yet')
  await until('4 unregistrations', () => hooks.received.filter((r) => changed(r, false)).length === 4)
  t.equal(sim.schemas('live', 'b').length, 4, 'the other stream stays')
  t.match(sim.session(a.id), { state: 'ended', kicked: false, endReason: 'close media' })
})

t.test('close_stream: -500 when the stream is not found, -300 without the four arguments', async (t) => {
  const { sim } = await setup(t)
  await sim.publish({ app: 'live', stream: 'a' })
  t.same((await api(sim, 'close_stream', { schema: 'hls', vhost: DEFAULT_VHOST, app: 'live', stream: 'a' })).json, { code: -500, msg: 'can not find the stream' })
  t.same((await api(sim, 'close_stream', { schema: 'rtmp', app: 'live', stream: 'a' })).json, { code: -300, msg: 'Required parameter missed: "schema", "vhost", "app", "stream"' })
  t.same((await api(sim, 'close_stream', { schema: 'rtmp', vhost: DEFAULT_VHOST, app: 'live', stream: 'a', force: 'true' })).json, { code: 0, msg: 'success', result: 0 })
})
