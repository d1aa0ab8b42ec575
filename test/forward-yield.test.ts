import t from 'tap'
import { OutboxFile } from '../src/forward/outbox.js'
import { postHook, startApp } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'

/**
 * A drain gives hooks the first turn: with a backlog in the outbox and a platform that answers at
 * once, deliveries go out as fast as answers come back, on the event loop that answers hooks. A
 * hook sent meanwhile must not wait for rounds of them. What is counted is not time (a loaded
 * machine stretches it) but deliveries: how many reached the platform while the hook waited.
 */

const CONCURRENCY = 64
const BACKLOG = 20_000

t.test('a hook sent during a drain is answered before more than FORWARD_CONCURRENCY deliveries happen', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  // The backlog written before the start, as after an outage: 200 streams, all due.
  const dataDir = t.testdir()
  const file = new OutboxFile({ dir: dataDir })
  const at = Date.now()
  file.db.transaction(() => {
    for (let i = 0; i < BACKLOG; i++) {
      const body = JSON.stringify({ action: 'on_hls', client_id: `b${i % 200}`, vhost: '__defaultVhost__', app: 'live', stream: `bl${i % 200}`, stream_url: `/live/bl${i % 200}` })
      file.add({ lane: `srs:/live/bl${i % 200}`, target: 'srs', action: 'on_hls', body, key: `backlog-${i}`, at }, Infinity)
    }
  })()
  file.close()
  const { hookBase, app, url } = await startApp(t, { SRS_API_URL: 'none', FORWARD_URL: platform.url, DATA_DIR: dataDir, FORWARD_CONCURRENCY: String(CONCURRENCY) })
  // Its first answer starts the delivery (http/start.ts).
  await fetch(`${url}/healthz`)
  await platform.waitFor((r) => r.length >= 1000, 30_000, 'the drain to be under way')

  const during: number[] = []
  for (let i = 0; i < 10; i++) {
    const before = platform.received.length
    const r = await postHook(hookBase, 'on_play', { action: 'on_play', client_id: `v${i}`, ip: '10.0.0.5', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' })
    t.same(r.reply, { code: 0, msg: null }, 'allowed by the platform')
    // The hook's own request is one of them.
    during.push(platform.received.length - before - 1)
  }
  const left = app.forward!.delivery.depth
  t.ok(left > 0, `still draining when the hooks ended (${left} left)`)
  during.sort((a, b) => a - b)
  t.comment(`deliveries while a hook waited: ${during.join(', ')}`)
  // Before deliveries yielded, each answer started the next at once: some 3 to 4 times FORWARD_CONCURRENCY a hook.
  t.ok(during[5]! < CONCURRENCY, `at the median, fewer than FORWARD_CONCURRENCY (${during[5]} of ${CONCURRENCY})`)
  await platform.waitFor(() => app.forward!.delivery.depth === 0 && app.forward!.outbox.counts.rows === 0, 60_000, 'the drain to end')
  const keys = platform.received.map((x) => x.headers['idempotency-key']).filter((k) => typeof k === 'string' && k.startsWith('backlog-'))
  t.equal(new Set(keys).size, BACKLOG, 'the whole backlog delivered')
})
