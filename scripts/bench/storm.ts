/**
 * A reconnect storm (issue #21): after a network outage, every camera reconnects at once while SRS
 * still holds each stream for its stale connection, so every newcomer's on_publish is a takeover.
 */
import type { Routed } from '../../test/fixtures/gateway.js'
import { RedisServer } from '../../test/fixtures/redis.js'
import { checks, percentile, row, withStage, type Row, type Scenario, type Target } from './harness.js'
import { SRS_RELEASE_MS, takeOverInTurn } from './hooks.js'
import type { BenchOptions } from './options.js'
import { withCluster } from './replicas.js'
import type { SimProcess, Spread } from './sim.js'

/** The newcomers all arrive within this time (issue #21: one second). */
const STORM_MS = 1000

/** Each figure of the storm measured on one cluster: the storm and its reference. */
interface Storm { storm: Spread, free: Spread }

/**
 * The gateway's routing for the storm: a stream's newcomer (on_connect, on_publish) goes to the
 * replica its number picks, so that the newcomers split evenly; the holder's on_unpublish goes
 * to the next one, so that with two replicas each takeover waits for a release that another
 * replica hears of (through Redis).
 */
function splitByStream (replicas: number): (r: Routed) => number {
  let turn = 0
  return (r) => {
    // Every stream of the bench's cluster ends in its number (warm-held-3, free-17, held-998).
    const n = /"stream":"\D*(\d+)"/.exec(r.body)?.[1]
    // on_close names no stream: the replicas take turns, as behind a balancing gateway.
    if (n === undefined) return turn++ % replicas
    const newcomer = /\/on_(connect|publish)\b/.test(r.path)
    return (Number(n) + (newcomer ? 0 : 1)) % replicas
  }
}

/**
 * On one simulator and its srs-hooks: `opts.storm` streams held by stale publishers (seeded
 * stalled, known to the replicas through a reconciliation, as publishers that came in through
 * them would be), then as many publishes of free streams spread evenly over STORM_MS (the
 * reference), then as many newcomers onto the held streams spread alike (the storm). SRS 6 (the
 * simulator's default), releasing a kicked publisher after SRS_RELEASE_MS.
 */
async function storm (sim: SimProcess, replicas: Target[], opts: BenchOptions): Promise<Storm> {
  const n = opts.storm
  await sim.setReleaseDelay(SRS_RELEASE_MS)
  // Both paths past their JIT warm-up on every replica.
  await takeOverInTurn(sim, 'warm-held-', 4)
  await sim.publishSpread(20, 'warm-free-', 100)
  await sim.seedLive(n, { prefix: 'held-', stalled: true })
  for (const r of replicas) await r.reconcile()
  const free = await sim.publishSpread(n, 'free-', STORM_MS)
  const held = await sim.publishSpread(n, 'held-', STORM_MS)
  // Which SRS codes refused newcomers, if any (1028 StreamBusy: allowed before the holder's release).
  const said = (x: Spread): string => `${Math.round(x.ms)} ms, ${x.refused} refused [${x.codes.join(', ')}]`
  process.stderr.write(`  ${replicas.length} replica(s): free ${said(free)}; storm ${said(held)}\n`)
  return { storm: held, free }
}

function rowsOf (where: string, n: number, s: Storm): Row[] {
  return [
    row(`reconnect storm, ${where}: ${n} newcomers onto held streams within 1 s, all on air after (ref: ${n} free publishes arriving alike)`, 'ms', s.storm.ms, s.free.ms, checks.ratioAtMost(1.15)),
    row(`reconnect storm, ${where}: a newcomer's time from arrival to on air, p50 (ref: a free publish's)`, 'ms', percentile(s.storm.attemptsMs, 50), percentile(s.free.attemptsMs, 50)),
    row(`reconnect storm, ${where}: a newcomer's time from arrival to on air, p99 (ref: a free publish's)`, 'ms', percentile(s.storm.attemptsMs, 99), percentile(s.free.attemptsMs, 99)),
    row(`reconnect storm, ${where}: newcomers refused at their first attempt (ref: newcomers)`, 'publishes', s.storm.refused, n, checks.atMost(0, 'publishes')),
    row(`reconnect storm, ${where}: free publishes refused (ref: publishes)`, 'publishes', s.free.refused, n, checks.atMost(0, 'publishes'))
  ]
}

/**
 * 16. The reconnect storm, with one srs-hooks (the simulator's hooks straight to it) and with two
 * replicas sharing Redis behind the gateway (splitByStream), each on a simulator of its own, in a
 * process of its own. The figure is the time from the first newcomer's arrival until the last one
 * is on air (its acquire done, as the simulator's publish resolves), against the same time for as
 * many publishes of free streams, sent with the same arrival pattern on the same simulator just
 * before: what the takeovers add, SRS's own work for them (the kicks, the releases, the holders'
 * hooks) included. Targets (issue #21): at most 1.15 times the free publishes' time, and every
 * newcomer in at its first attempt. Beside them, a newcomer's own time from arrival to on air
 * against a free publish's, which says whether the storm queued.
 */
export const reconnectStorm: Scenario = {
  title: 'reconnect storm: newcomers onto streams held by stale publishers, within one second, vs as many free publishes',
  run: async (_shared, opts) => {
    const redis = await RedisServer.launch()
    try {
      const one = await withStage(async ({ sim, app }) => await storm(sim, [app], opts))
      const two = await withCluster(redis, 2, async (c) => {
        c.gw.route = splitByStream(c.replicas.length)
        return await storm(c.sim, c.replicas, opts)
      })
      return [...rowsOf('one replica', opts.storm, one), ...rowsOf('two replicas with Redis', opts.storm, two)]
    } finally {
      await redis.dispose()
    }
  }
}
