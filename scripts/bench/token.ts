/**
 * SRS >= 7.0.62: the takeover inside on_connect, side by side with the one inside on_publish, and
 * what the on_connect strategy costs a player's on_connect.
 */
import { signedQuery } from '../../src/auth/signature.js'
import { checks, percentile, row, saturate, warmUp, withStage, type Row, type Scenario, type Stage } from './harness.js'
import { hookRequest } from './hooks.js'
import { takeoversOf, type BenchOptions } from './options.js'

const SECRET = 'bench-publish-secret-0123456789'
const SIGNED = { PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET }

/**
 * Takes over `n` seeded live streams one after another with signed newcomers; each newcomer's
 * takeover hook time (on_connect on a token SRS, on_publish otherwise), less the release delay.
 */
async function takeOver (stage: Stage, prefix: string, n: number, hook: 'on_connect' | 'on_publish', releaseMs: number): Promise<{ overhead: number[], failed: number }> {
  const { sim, app } = stage
  await sim.setReleaseDelay(releaseMs)
  await sim.seedLive(n, { prefix })
  // The on_connect path finds the holder's stream through the table: as after a reconciliation.
  await app.reconcile()
  const exp = Math.floor(Date.now() / 1000) + 3600
  const overhead: number[] = []
  let failed = 0
  for (let i = 0; i < n; i++) {
    const stream = prefix + i
    const r = await sim.publish({ app: 'live', stream, param: signedQuery(SECRET, `live/${stream}`, exp) })
    failed += Number(!r.ok)
    overhead.push(await sim.hookMs(hook, r.clientId) - releaseMs)
  }
  return { overhead, failed }
}

/** 7. Takeover at on_connect (SRS 7.0.62) against takeover at on_publish (SRS 6), release delay R. */
export const connectTakeover: Scenario = {
  title: 'takeover at on_connect (SRS >= 7.0.62) vs at on_publish (SRS 6), over the release delay R',
  run: async (_shared, opts) => {
    const rows: Row[] = []
    let failed = 0
    await withStage(async (token) => {
      await withStage(async (classic) => {
        await takeOver(token, 'warm-', 3, 'on_connect', 5)
        await takeOver(classic, 'warm-', 3, 'on_publish', 5)
        for (const r of opts.releaseDelaysMs) {
          const atConnect = await takeOver(token, `c${r}-`, takeoversOf(opts), 'on_connect', r)
          const atPublish = await takeOver(classic, `p${r}-`, takeoversOf(opts), 'on_publish', r)
          failed += atConnect.failed + atPublish.failed
          rows.push(
            row(`at-connect takeover overhead p50, R=${r} ms (ref: at on_publish)`, 'ms', percentile(atConnect.overhead, 50), percentile(atPublish.overhead, 50)),
            row(`at-connect takeover overhead p99, R=${r} ms (ref: at on_publish)`, 'ms', percentile(atConnect.overhead, 99), percentile(atPublish.overhead, 99), checks.below(20, 'ms'))
          )
        }
      }, { env: SIGNED, sim: { version: '6' } })
    }, { env: SIGNED, sim: { version: '7-token' } })
    rows.push(row('at-connect and at-publish takeovers that failed', 'takeovers', failed, 2 * takeoversOf(opts) * opts.releaseDelaysMs.length, checks.atMost(0, 'takeovers')))
    rows.push(...await playersOnConnect(opts))
    return rows
  }
}

/** on_connect of players of a live stream, with the token strategy on, against today's (SRS 6). */
async function playersOnConnect (opts: BenchOptions): Promise<Row[]> {
  // A player of the live stream cam0 (seeded below).
  const stream = { id: 'vid-0000001', app: 'live', name: 'cam0' }
  const requests = [hookRequest('on_connect', stream, 'player01')]
  const measure = async ({ sim, app }: Stage) => {
    await sim.seedLive(1, { prefix: 'cam' })
    await app.reconcile()
    await warmUp(app.url, requests, opts)
    return await saturate({ url: app.url, requests, connections: opts.connections, durationS: opts.durationS })
  }
  const token = await withStage(measure, { sim: { version: '7-token' } })
  const today = await withStage(measure, { sim: { version: '6' } })
  return [
    row('players\' on_connect throughput, token strategy (ref: SRS 6)', 'req/s', token.rps, today.rps, checks.ratioAtLeast(0.9)),
    row('players\' on_connect p99, token strategy (ref: SRS 6)', 'ms', token.p99, today.p99),
    row('players\' on_connect requests failed (ref: completed)', 'requests', token.failures + today.failures, token.completed + today.completed, checks.atMost(0, 'requests'))
  ]
}
