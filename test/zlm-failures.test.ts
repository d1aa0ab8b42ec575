import t from 'tap'
import { Codes } from '../src/errors.js'
import { postHook, startApp } from './fixtures/app.js'
import { onPublishOf, startZlmWorld } from './fixtures/zlm-app.js'
import type { ApiFault } from './fixtures/zlm-sim.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * Every way ZLMediaKit's API can fail on the publish path has a defined outcome: FAIL_MODE=open
 * lets the newcomer in (ZLMediaKit's own check decides), FAIL_MODE=closed refuses with 1002; a
 * used-up bound lets it in; nobody is kicked on a failed check.
 */

const FAULTS: Array<[ApiFault | 'secret', string]> = [['down', 'unreachable'], ['slow', 'timeout'], ['garbage', 'bad_body'], ['error500', 'http_status'], ['secret', 'unauthorized']]

for (const failMode of ['open', 'closed'] as const) {
  t.test(`FAIL_MODE=${failMode}: ZLMediaKit's API down, slow, answering garbage, HTTP 500 or -100`, async (t) => {
    const { sim, app } = await startZlmWorld(t, { FAIL_MODE: failMode, ZLM_API_TIMEOUT_MS: '300', ZLM_API_RETRIES: '1' })
    const kinds: string[] = []
    app.publisherEvents.on((e) => { if (e.type === 'api-failure') kinds.push(e.kind) })
    let i = 0
    for (const [fault] of FAULTS) {
      const stream = `cam${i++}`
      const a = await sim.publish({ app: 'live', stream, stalled: true })
      if (fault === 'secret') sim.setSecret('rotated-secret-0123456789')
      else sim.setFault(fault, { slowMs: 2000 })
      const b = await sim.publish({ app: 'live', stream })
      const reply = JSON.parse(onPublishOf(sim, b.id)!.replyBody) as { code: number, msg: string | null }
      if (failMode === 'open') {
        t.same(reply, { code: 0, msg: null }, `${fault}: allowed`)
        t.match(b.reason, /Already publishing/, `${fault}: ZLMediaKit's own check refused it`)
      } else {
        t.match(reply, { code: Codes.SRS_API_UNAVAILABLE, msg: /cannot look up the stream: .*FAIL_MODE=closed refuses what it cannot check/ }, `${fault}: refused`)
      }
      t.ok(onPublishOf(sim, b.id)!.ms < 3000, `${fault}: answered in ${onPublishOf(sim, b.id)!.ms} ms`)
      t.same(sim.kicks, [], `${fault}: nobody kicked`)
      t.equal(sim.owner('live', stream), a.id)
      sim.setFault('none')
      sim.setSecret('zlm-test-secret-0123456789abcdef')
    }
    t.same(kinds, FAULTS.map(([, kind]) => kind), 'each failure reported with its kind')
  })
}

t.test('ZLMediaKit answering -1, -300 or -500 to a lookup, and -1 to a kick', async (t) => {
  let mediaCode = 0
  let holderGone = false
  const kicks: string[] = []
  const stub = await StubServer.start((req, res, body) => {
    const name = (req.url ?? '').replace('/index/api/', '')
    const args = new URLSearchParams(body)
    switch (name) {
      case 'getServerConfig': return json(res, { code: 0, data: [{ 'general.mediaServerId': 'zs', 'hook.timeoutSec': '10' }] })
      case 'getMediaList':
        if (mediaCode !== 0) return json(res, { code: mediaCode, msg: 'failed' })
        return json(res, holderGone ? { code: 0 } : { code: 0, data: [{ schema: 'rtmp', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', originTypeStr: 'rtmp_push', originSock: { identifier: 'h-1' } }] })
      case 'getAllSession': return json(res, { code: 0, data: [{ id: 'n-1', peer_ip: '10.0.0.2', peer_port: 5000 }] })
      case 'kick_session':
        // The holder left by itself just before the kick.
        kicks.push(args.get('id')!)
        holderGone = true
        return json(res, { code: -1, msg: 'can not find the target' })
    }
    json(res, { code: -1 })
  })
  t.teardown(() => stub.close())
  const { hookBase, app } = await startApp(t, { SRS_API_URL: 'none', ZLM_API_URL: stub.url, ZLM_SECRET: 'secret-0123456789', FAIL_MODE: 'closed', ZLM_API_RETRIES: '0' })
  await app.zlmServers.discover()
  const body = { mediaServerId: 'zs', app: 'live', stream: 'cam1', vhost: '__defaultVhost__', id: 'n-1', ip: '10.0.0.2', port: 5000, originTypeStr: 'rtmp_push' }
  for (const code of [-1, -300, -500]) {
    mediaCode = code
    const r = await postHook(`${hookBase}/zlm`, 'on_publish', body)
    t.match(r.reply, { code: Codes.SRS_API_UNAVAILABLE, msg: new RegExp(`ZLMediaKit answered code ${code}`) }, `${code}: FAIL_MODE=closed refuses`)
  }
  t.same(kicks, [])
  mediaCode = 0
  const r = await postHook(`${hookBase}/zlm`, 'on_publish', body)
  t.same(r.reply, { code: 0, msg: null }, 'a kick answered -1 (the holder already gone) is a release like any other')
  t.same(kicks, ['h-1'])
  t.equal(app.publisherStats.takeovers, 1)
})
