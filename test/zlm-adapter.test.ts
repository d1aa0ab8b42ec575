import t, { type Test } from 'tap'
import { ZlmMediaServer } from '../src/zlm/adapter.js'
import { ZlmApi } from '../src/zlm/api.js'
import { zlmLiveView } from '../src/zlm/view.js'
import type { ZlmNode } from '../src/zlm/servers.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * The ZLMediaKit adapter against answers the simulator does not give: a pull source, sources
 * without counters, an older ZLMediaKit that ignores the stream filter.
 */

const KEY = '/live/cam1'
const ref = { key: KEY, vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }

async function adapter (t: Test, media: unknown[], sessions: unknown[] = []) {
  const stub = await StubServer.start((req, res) => {
    const name = (req.url ?? '').replace('/index/api/', '')
    json(res, name === 'getAllSession' ? { code: 0, data: sessions } : { code: 0, data: media })
  })
  const api = new ZlmApi({ url: stub.url, secret: () => 's', timeoutMs: 500, retries: 0 })
  t.teardown(async () => { await api.close(); await stub.close() })
  return new ZlmMediaServer(api, { id: 'z1', hookBudgetMs: 9000 })
}

const source = (extra: Record<string, unknown>) => ({ schema: 'rtmp', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', ...extra })

t.test('a stream ZLMediaKit pulls itself is held, but never evicted', async (t) => {
  const z = await adapter(t, [source({ originTypeStr: 'pull', originSock: { identifier: 'proxy-1' } })])
  t.match(await z.live(ref, Date.now() + 1000), { active: true, holder: 'proxy-1', keep: /ZLMediaKit's own pull source, not by a publisher's session/ })
})

t.test('an older ZLMediaKit lists every stream of the app: only the stream\'s own sources count', async (t) => {
  const z = await adapter(t, [
    source({ stream: 'cam2', originTypeStr: 'rtmp_push', originSock: { identifier: 'other' } }),
    source({ schema: 'rtsp', originTypeStr: 'rtmp_push', originSock: { identifier: 'h-1' } })
  ])
  t.same(await z.live(ref, Date.now() + 1000), { active: true, holder: 'h-1', url: KEY })
  t.equal(await z.released('other', ref, { active: true }, 'publish', Date.now() + 1000), true, 'another stream\'s publisher does not hold this one')
})

t.test('a holder listed without counters or a creation time reads as unknown, which takeover-stale takes as sending', async (t) => {
  const z = await adapter(t, [source({ originTypeStr: 'rtmp_push', originSock: { identifier: 'h-1', peer_ip: '10.0.0.7' } })])
  t.same(await z.read('h-1', { active: true, url: KEY }, Date.now() + 1000), { bytes: undefined, info: { ip: '10.0.0.7', since: undefined } })
  t.same(await z.read('h-2', { active: true, url: KEY }, Date.now() + 1000), { gone: true })
})

t.test('published lists each stream once with its origin; a source a dead publisher left is nobody\'s', async (t) => {
  const z = await adapter(t, [
    source({ originTypeStr: 'rtmp_push', originSock: { identifier: 'h-1' } }),
    source({ schema: 'rtsp', originTypeStr: 'rtmp_push', originSock: { identifier: 'h-1' } }),
    source({ stream: 'left', originTypeStr: 'unknown', originSock: null }),
    source({ app: 'rtp', stream: 'gb1', originTypeStr: 'rtp_push', originSock: { identifier: 'gb1' } })
  ])
  t.same(await z.published(), [
    { key: KEY, vhost: '__defaultVhost__', app: 'live', stream: 'cam1', holder: 'h-1' },
    { key: '/rtp/gb1', vhost: '__defaultVhost__', app: 'rtp', stream: 'gb1', holder: 'gb1' }
  ])
})

t.test('a newcomer is verified by its session: the hook\'s id, address and (when given) port', async (t) => {
  const z = await adapter(t, [], [{ id: 'n-1', peer_ip: '10.0.0.2', peer_port: 5000 }])
  const live = { active: true, holder: 'h-1', url: KEY }
  const deadline = Date.now() + 1000
  t.equal(await z.verify({ id: 'n-1', ip: '10.0.0.2', port: 5000 }, ref, live, deadline), true)
  t.equal(await z.verify({ id: 'n-1', ip: '10.0.0.2' }, ref, live, deadline), true, 'no port in the hook: the id and address')
  t.equal(await z.verify({ id: 'n-1', ip: '' }, ref, live, deadline), false, 'no address: not verified')
  t.equal(await z.verify({ id: 'n-1', ip: '10.0.0.9', port: 5000 }, ref, live, deadline), false)
})

t.test('the operator\'s view of a stream listed without reader counts', async (t) => {
  const z = await adapter(t, [source({ originTypeStr: 'rtmp_push', originSock: { identifier: 'h-1' } })])
  const view = await zlmLiveView({ url: 'http://zlm', api: z.api, server: z } as unknown as ZlmNode, { warn: () => {} })
  t.match(view.streams, [{ url: KEY, clients: 1, publish: { active: true, cid: 'h-1' } }])
})
