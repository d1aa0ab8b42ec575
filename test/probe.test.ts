import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { signedQuery } from '../src/auth/signature.js'
import { Codes } from '../src/errors.js'
import { startWorld } from './fixtures/app.js'
import type { SrsSimulator, SrsVersion } from './fixtures/srs-sim.js'

/**
 * takeover-stale against SRS's real counter refresh (every 3 s): a holder that froze just before
 * the newcomer came must be found stalled, and one that keeps sending must be found sending, on
 * the on_publish path (SRS 6) and the on_connect path (SRS 7.0.62).
 */

const SECRET = 'publish-secret-0123456789abcdef'
const signed = () => signedQuery(SECRET, 'live/cam1', Math.floor(Date.now() / 1000) + 600)

const paths: Array<[string, SrsVersion, string]> = [['on_publish (SRS 6)', '6', 'on_publish'], ['on_connect (SRS 7.0.62)', '7-token', 'on_connect']]

for (const [path, version, hook] of paths) {
  t.test(`${path}: a holder frozen 0.5 s before the newcomer is found stalled and evicted`, async (t) => {
    const { sim, app } = await startWorld(t, { TAKEOVER_POLICY: 'takeover-stale', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }, { version })
    await app.srsServers.discover()
    const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
    // It sends for a while (several of SRS's 3 s refreshes see its bytes), then freezes.
    await waitForBytes(sim, a.clientId)
    sim.stall(a.clientId)
    await sleep(500) // the freeze is half a second old when the camera comes back
    const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
    t.ok(b.ok, 'the newcomer gets in on its first attempt')
    t.same(sim.kicks, [a.clientId])
    const call = sim.hookCalls.find((c) => c.hook === hook && c.body.client_id === b.clientId)!
    t.ok(call.ms < 10_000, `answered within the probe's bound (${call.ms} ms)`)
  })

  t.test(`${path}: a holder that keeps sending is found sending and keeps the stream`, async (t) => {
    const { sim, app } = await startWorld(t, { TAKEOVER_POLICY: 'takeover-stale', PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }, { version })
    await app.srsServers.discover()
    const a = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
    await waitForBytes(sim, a.clientId)
    const b = await sim.publish({ app: 'live', stream: 'cam1', param: signed() })
    t.equal(b.ok, false)
    const call = sim.hookCalls.find((c) => c.hook === hook && c.body.client_id === b.clientId)!
    t.match(JSON.parse(call.replyBody), { code: Codes.INCUMBENT_SENDING, msg: /is sending \(\d+ bytes in \d+ ms\)/ })
    t.same(sim.kicks, [])
    t.equal(sim.activePublisher('live', 'cam1'), a.clientId)
  })
}

/** Until SRS's API reports bytes received from the client (at least one counter refresh after it began sending). */
async function waitForBytes (sim: SrsSimulator, clientId: string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const res = await fetch(`${sim.apiUrl}/api/v1/clients/${clientId}`)
    const { client } = await res.json() as { client?: { recv_bytes: number } }
    if ((client?.recv_bytes ?? 0) > 10_000) return
    if (Date.now() > deadline) throw new Error('no bytes reported')
    await sleep(100)
  }
}
