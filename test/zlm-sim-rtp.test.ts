// Tests of the ZLMediaKit simulator's RTP server lifecycle (docs/zlm-protocol.md section 4): openRtpServer,
// closeRtpServer, listRtpServer, getRtpInfo, the timeout and the silent detach.

import t from 'tap'
import http from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ZlmSimulator, DEFAULT_VHOST } from './fixtures/zlm-sim.js'
import type { ZlmSimOptions } from './fixtures/zlm-sim.js'

interface Test { teardown: (fn: () => unknown) => void }

// ------------------------------------------------------------------ helpers (the same in every zlm-sim test file)

interface Received { hook: string, url: string, headers: IncomingHttpHeaders, raw: string, body: Record<string, any> }
interface Reply { status?: number, body?: string, hang?: boolean }
type Replier = (r: Received) => Reply | Promise<Reply>

interface HooksServer {
  base: string
  received: Received[]
  reply: (fn: Replier) => void
  of: (hook: string) => Received[]
}

async function hooksServer (t: Test): Promise<HooksServer> {
  const received: Received[] = []
  let replier: Replier = () => ({})
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString()
      const url = req.url as string
      const r: Received = { hook: new URL('http://x' + url).pathname.split('/').pop() as string, url, headers: req.headers, raw, body: JSON.parse(raw) }
      received.push(r)
      void Promise.resolve(replier(r)).then((reply) => {
        if (reply.hang === true) return
        res.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' })
        res.end(reply.body ?? '{"code":0,"msg":"success"}')
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/index/hook`,
    received,
    reply: (fn) => { replier = fn },
    of: (hook) => received.filter((r) => r.hook === hook)
  }
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

async function api (sim: ZlmSimulator, name: string, params: Record<string, string | number> = {}): Promise<Record<string, any>> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))
  q.set('secret', sim.secret)
  return await new Promise((resolve, reject) => {
    http.get(`${sim.apiUrl}/index/api/${name}?${q.toString()}`, { agent: false }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => resolve(JSON.parse(text)))
    }).on('error', reject)
  })
}

async function setup (t: Test, opts: ZlmSimOptions = {}): Promise<{ sim: ZlmSimulator, hooks: HooksServer }> {
  const hooks = await hooksServer(t)
  const sim = await ZlmSimulator.start({ hookBase: hooks.base, aliveIntervalSec: 0, retryDelayMs: 50, rtpPortRange: [30000, 30099], ...opts })
  t.teardown(async () => await sim.close())
  return { sim, hooks }
}

const changed = (r: Received, regist: boolean): boolean => r.hook === 'on_stream_changed' && r.body.regist === regist

// ------------------------------------------------------------------ the RTP server map

t.test('openRtpServer gives -300 while the map holds vhost/app/stream_id; closeRtpServer then openRtpServer works', async (t) => {
  const { sim } = await setup(t)
  const open = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' })
  t.same(open, { code: 0, port: 30000 })
  t.same(await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' }), { code: -300, msg: 'This stream already exists' })
  t.same(await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1', app: 'rtp', vhost: DEFAULT_VHOST }), { code: -300, msg: 'This stream already exists' }, 'app rtp and the default vhost are the defaults')
  t.same((await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1', app: 'other' })).code, 0, 'another app is another key')
  t.same(await api(sim, 'listRtpServer'), {
    code: 0,
    data: [
      { vhost: DEFAULT_VHOST, app: 'rtp', stream_id: 'gb1', port: 30000, ssrc: 0, tcp_mode: 0, only_track: 0 },
      { vhost: DEFAULT_VHOST, app: 'other', stream_id: 'gb1', port: 30002, ssrc: 0, tcp_mode: 0, only_track: 0 }
    ]
  })
  t.same(await api(sim, 'closeRtpServer', { stream_id: 'gb1' }), { code: 0, hit: 1 })
  t.same(await api(sim, 'closeRtpServer', { stream_id: 'gb1' }), { code: 0, hit: 0 })
  t.same(await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' }), { code: 0, port: 30004 }, 'reopened at once (the port pool cycles)')
  t.same(await api(sim, 'openRtpServer', { stream_id: 'x' }), { code: -300, msg: 'Required parameter missed: "port", "stream_id"' }, 'port is required, 0 included')
  t.same(await api(sim, 'closeRtpServer'), { code: -300, msg: 'Required parameter missed: "stream_id"' })

  const opts = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb2', enable_tcp: 1, only_audio: 1, ssrc: 123, re_use_port: 1 })
  t.equal(opts.code, 0)
  t.match(sim.listRtpServers().find((s) => s.streamId === 'gb2'), { tcpMode: 1, onlyTrack: 1, ssrc: 123, reUsePort: true })
  t.equal((await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb3', tcp_mode: 2, only_track: 2 })).code, 0)
  t.match(sim.listRtpServers().find((s) => s.streamId === 'gb3'), { tcpMode: 2, onlyTrack: 2 })

  const empty = await setup(t)
  t.same(await api(empty.sim, 'listRtpServer'), { code: 0 }, 'no data member when empty')
})

t.test('port 0 takes an even pair of the range; a busy fixed port is -400, re_use_port helps only if both set it', async (t) => {
  const { sim } = await setup(t, { rtpPortRange: [30001, 30006] })
  t.same(await api(sim, 'openRtpServer', { port: 0, stream_id: 'a' }), { code: 0, port: 30002 }, 'the first even port')
  t.same(await api(sim, 'openRtpServer', { port: 0, stream_id: 'b' }), { code: 0, port: 30004 })
  const full = await api(sim, 'openRtpServer', { port: 0, stream_id: 'c' })
  t.same(full, { code: -400, msg: 'Create RTP port :::0 failed:no free port in 30001-30006' }, 'no even pair left in the range')
  t.same(await api(sim, 'openRtpServer', { port: 30002, stream_id: 'c' }), { code: -400, msg: 'Create RTP port :::30002 failed:address already in use' })
  t.same(await api(sim, 'openRtpServer', { port: 30002, stream_id: 'c', re_use_port: 1 }), { code: -400, msg: 'Create RTP port :::30002 failed:address already in use' }, 'the first socket did not set SO_REUSEPORT')
  t.same(await api(sim, 'openRtpServer', { port: 30001, stream_id: 'c', local_ip: '0.0.0.0' }), { code: -400, msg: 'Create rtcp port 0.0.0.0:30002 failed:address already in use' }, 'the RTCP port (port + 1) is busy')
  t.same(sim.listRtpServers().map((s) => s.streamId), ['a', 'b'], 'a failed open leaves no entry')
  t.same(await api(sim, 'closeRtpServer', { stream_id: 'a' }), { code: 0, hit: 1 })
  t.same(await api(sim, 'openRtpServer', { port: 0, stream_id: 'c' }), { code: 0, port: 30002 }, 'the freed pair is found again')

  t.same(await api(sim, 'openRtpServer', { port: 30010, stream_id: 'r1', re_use_port: 1 }), { code: 0, port: 30010 })
  t.same(await api(sim, 'openRtpServer', { port: 30010, stream_id: 'r2', re_use_port: 1 }), { code: 0, port: 30010 }, 'both with SO_REUSEPORT')
  t.same(await api(sim, 'closeRtpServer', { stream_id: 'r1' }), { code: 0, hit: 1 })
  t.same(sim.listRtpServers().filter((s) => s.port === 30010).map((s) => s.streamId), ['r2'])
})

t.test('getRtpInfo looks at the media source: exist:false until RTP data arrived and its on_publish was accepted', async (t) => {
  const { sim, hooks } = await setup(t)
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  hooks.reply(async (r) => {
    if (r.hook === 'on_publish') await gate
    return {}
  })
  const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' })
  t.same(await api(sim, 'getRtpInfo', { stream_id: 'gb1' }), { code: 0, exist: false }, 'opened, no data yet')
  t.equal(sim.sendRtp(port, { ip: '10.1.1.1', peerPort: 5000 }), 'pending')
  t.equal(sim.sendRtp(port), 'pending')
  const pub = await until('on_publish', () => hooks.of('on_publish')[0])
  t.same(pub.body, {
    app: 'rtp',
    hook_index: pub.body.hook_index,
    id: 'gb1',
    ip: '10.1.1.1',
    mediaServerId: sim.mediaServerId,
    originType: 3,
    originTypeStr: 'rtp_push',
    params: '',
    port: 5000,
    protocol: 'rtp',
    schema: 'rtp',
    stream: 'gb1',
    vhost: DEFAULT_VHOST
  })
  t.same(await api(sim, 'getRtpInfo', { stream_id: 'gb1' }), { code: 0, exist: false }, 'on_publish pending: still no source')
  release()
  await until('registered', () => sim.schemas('rtp', 'gb1').length === 4)
  t.equal(sim.sendRtp(port), 'live')
  t.same(await api(sim, 'getRtpInfo', { stream_id: 'gb1' }), { code: 0, exist: true, identifier: 'gb1', local_ip: '::', local_port: port, peer_ip: '10.1.1.1', peer_port: 5000 })
  const list = await api(sim, 'getMediaList', { schema: 'rtsp', app: 'rtp' })
  t.match(list.data, [{ originType: 3, originTypeStr: 'rtp_push', originUrl: 'rtp://__defaultVhost__/rtp/gb1', originSock: { identifier: 'gb1', local_port: port }, totalBytes: 1400 }])
  t.equal(sim.owner('rtp', 'gb1'), 'gb1')
  t.same(await api(sim, 'getRtpInfo', { stream_id: 'gb1', app: 'other', vhost: 'v' }), { code: 0, exist: false })
  t.same(await api(sim, 'getRtpInfo'), { code: -300, msg: 'Required parameter missed: "stream_id"' })
  t.equal(sim.sendRtp(port + 100), 'no-server')
})

t.test('without data for timeoutSec the entry is erased first, then on_rtp_server_timeout, so its handler reopens at once', async (t) => {
  const { sim, hooks } = await setup(t, { rtpTimeoutSec: 0.4, rtpCheckMs: 50 })
  const reopened: Array<Record<string, any>> = []
  hooks.reply(async (r) => {
    if (r.hook === 'on_rtp_server_timeout') reopened.push(await api(sim, 'openRtpServer', { port: r.body.local_port, stream_id: r.body.stream_id }))
    return {}
  })
  const opened = Date.now()
  const { port } = await api(sim, 'openRtpServer', { port: 30020, stream_id: 'gb1', ssrc: 7, re_use_port: 1 })
  const timeout = await until('on_rtp_server_timeout', () => hooks.of('on_rtp_server_timeout')[0], 3000)
  t.ok(Date.now() - opened >= 400, 'not before timeoutSec')
  t.same(timeout.body, {
    app: 'rtp',
    hook_index: timeout.body.hook_index,
    local_port: port,
    mediaServerId: sim.mediaServerId,
    re_use_port: true,
    ssrc: 7,
    stream_id: 'gb1',
    tcp_mode: 0,
    vhost: DEFAULT_VHOST
  })
  t.equal(timeout.headers['x-vhost'], DEFAULT_VHOST)
  await until('the handler answered', () => reopened.length === 1)
  t.same(reopened[0], { code: 0, port: 30020 }, 'reopened on the same port from the hook handler')
  t.same(sim.listRtpServers().map((s) => s.streamId), ['gb1'])
})

t.test('a stream whose RTP stops times out: entry erased, on_rtp_server_timeout, then the stream unregisters', async (t) => {
  const { sim, hooks } = await setup(t, { rtpTimeoutSec: 0.3, rtpCheckMs: 50, flowThresholdKB: 0 })
  const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' })
  const sender = sim.startRtpSender(port, { intervalMs: 20 })
  await until('registered', () => sim.schemas('rtp', 'gb1').length === 4)
  // a sentinel opened now without data times out after timeoutSec; the stream with data must outlive it
  await api(sim, 'openRtpServer', { port: 0, stream_id: 'sentinel' })
  await until('the sentinel timed out', () => hooks.of('on_rtp_server_timeout').find((r) => r.body.stream_id === 'sentinel'), 3000)
  t.same(sim.listRtpServers().map((s) => s.streamId), ['gb1'], 'alive while data flows')
  sender.stop()
  t.equal(sender.last(), 'live')
  // the last packet, at a known time
  t.equal(sim.sendRtp(port), 'live')
  const stoppedAt = Date.now()
  const timeout = await until('on_rtp_server_timeout', () => hooks.of('on_rtp_server_timeout').find((r) => r.body.stream_id === 'gb1'), 3000)
  t.ok(Date.now() - stoppedAt >= 250, 'about timeoutSec after the last packet')
  const offs = await until('4 unregistrations', () => hooks.received.filter((r) => changed(r, false)).length === 4 && hooks.received.filter((r) => changed(r, false)))
  const flow = await until('on_flow_report', () => hooks.of('on_flow_report').find((r) => r.body.id === 'gb1'))
  t.match(flow.body, { schema: 'rtp', protocol: 'udp', id: 'gb1', player: false, stream: 'gb1', ip: '127.0.0.1' })
  t.ok(timeout.body.hook_index < flow.body.hook_index, 'the timeout hook before the process goes')
  t.ok(offs.every((r) => r.body.hook_index > flow.body.hook_index), 'then the flow report, then the unregistrations')
  t.equal(sim.sendRtp(port), 'no-server', 'the socket is closed')
})

t.test('frames count for the timeout only once on_publish accepted: a pending RTP publish still times out', async (t) => {
  const { sim, hooks } = await setup(t, { rtpTimeoutSec: 0.3, rtpCheckMs: 50 })
  hooks.reply((r) => r.hook === 'on_publish' ? { hang: true } : {})
  const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' })
  const sender = sim.startRtpSender(port, { intervalMs: 20 })
  t.teardown(sender.stop)
  await until('on_rtp_server_timeout', () => hooks.of('on_rtp_server_timeout')[0], 3000)
  t.same(sim.listRtpServers(), [])
  t.same(sim.schemas('rtp', 'gb1'), [])
})

t.test('the RTP server vanishes without any hook when another publisher owns rtp/<stream_id>', async (t) => {
  const { sim, hooks } = await setup(t, { rtpTimeoutSec: 0.5, rtpCheckMs: 50 })
  const rtmp = await sim.publish({ app: 'rtp', stream: 'gb1' })
  const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' })
  t.equal(sim.sendRtp(port), 'pending')
  await until('the RTP on_publish', () => hooks.of('on_publish').find((r) => r.body.originTypeStr === 'rtp_push'))
  await until('its answer', () => sim.calls('on_publish').length === 2)
  t.same(await api(sim, 'getRtpInfo', { stream_id: 'gb1' }), { code: 0, exist: false }, 'the source is the RTMP one')
  t.equal(sim.sendRtp(port), 'detached', '"media source already existed": the process detaches')
  t.same(await api(sim, 'listRtpServer'), { code: 0 }, 'only listRtpServer shows it gone')
  // a sentinel opened now times out after timeoutSec; by then gb1's timeout would have come too
  await api(sim, 'openRtpServer', { port: 0, stream_id: 'sentinel' })
  await until('the sentinel timed out', () => hooks.of('on_rtp_server_timeout').length > 0, 3000)
  t.same(hooks.of('on_rtp_server_timeout').map((r) => r.body.stream_id), ['sentinel'], 'no on_rtp_server_timeout for gb1')
  t.equal(sim.owner('rtp', 'gb1'), rtmp.id)
  t.same(await api(sim, 'closeRtpServer', { stream_id: 'gb1' }), { code: 0, hit: 0 })
})

t.test('a refused RTP on_publish detaches the process at the next packet, silently', async (t) => {
  const { sim, hooks } = await setup(t)
  hooks.reply((r) => r.hook === 'on_publish' ? { body: '{"code":403,"msg":"no"}' } : {})
  const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1' })
  sim.sendRtp(port)
  await until('refused', () => sim.calls('on_publish').length === 1)
  t.equal(sim.listRtpServers().length, 1)
  t.equal(sim.sendRtp(port), 'detached')
  t.same(sim.listRtpServers(), [])
  t.equal(hooks.of('on_rtp_server_timeout').length, 0)
})

t.test('closeRtpServer then openRtpServer on the same port while the sender keeps sending: the stream comes back', async (t) => {
  const { sim, hooks } = await setup(t)
  const { port } = await api(sim, 'openRtpServer', { port: 30040, stream_id: 'gb1' })
  const sender = sim.startRtpSender(port)
  t.teardown(sender.stop)
  await until('registered', () => sim.schemas('rtp', 'gb1').length === 4)
  t.same(await api(sim, 'closeRtpServer', { stream_id: 'gb1' }), { code: 0, hit: 1 })
  t.same(sim.schemas('rtp', 'gb1'), [], 'the process and its source go with the server')
  await until('4 unregistrations', () => hooks.received.filter((r) => changed(r, false)).length === 4)
  t.same(await api(sim, 'openRtpServer', { port: 30040, stream_id: 'gb1' }), { code: 0, port: 30040 })
  await until('registered again', () => hooks.received.filter((r) => changed(r, true)).length === 8)
  t.equal(hooks.of('on_publish').length, 2, 'a new on_publish for the new process')
  t.equal(hooks.of('on_rtp_server_timeout').length, 0)
})

t.test('an ssrc filter drops other packets; updateRtpServerSSRC changes it', async (t) => {
  const { sim } = await setup(t, { hooks: ['on_stream_changed'] })
  const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: 'gb1', ssrc: 1000 })
  t.equal(sim.sendRtp(port, { ssrc: 2000 }), 'ssrc-mismatch')
  t.same(await api(sim, 'updateRtpServerSSRC', { stream_id: 'gb1', ssrc: 2000 }), { code: 0 })
  t.equal(sim.sendRtp(port, { ssrc: 2000 }), 'pending')
  await until('on_publish not configured: allowed', () => sim.sendRtp(port, { ssrc: 2000 }) === 'live')
  t.same(await api(sim, 'updateRtpServerSSRC', { stream_id: 'nope', ssrc: 1 }), { code: -500, msg: 'RtpServer not found by stream_id' })
})

t.test('close_stream and close_streams on an RTP stream remove the RTP server too, without a hook', async (t) => {
  const { sim, hooks } = await setup(t, { closeDelayMs: 20 })
  for (const id of ['a', 'b']) {
    const { port } = await api(sim, 'openRtpServer', { port: 0, stream_id: id })
    sim.sendRtp(port)
    await until('registered', () => sim.schemas('rtp', id).length === 4)
  }
  t.same(await api(sim, 'close_stream', { schema: 'rtmp', vhost: DEFAULT_VHOST, app: 'rtp', stream: 'a' }), { code: 0, msg: 'success', result: 0 })
  t.same(sim.listRtpServers().map((s) => s.streamId), ['b'])
  t.same(await api(sim, 'close_streams', { app: 'rtp', stream: 'b' }), { code: 0, count_hit: 4, count_closed: 4 })
  await until('gone', () => sim.listRtpServers().length === 0)
  t.equal(hooks.of('on_rtp_server_timeout').length, 0)
})
