/**
 * The six measurements of issue #5; the recordings' three (issue #10, issue #8 item 8: in
 * recordings.ts); SRS 7.0.62's takeover at on_connect (token.ts) and two replicas with Redis
 * (replicas.ts); ZLMediaKit's two (issue #12: zlm-scenarios.ts). Each builds what it needs with
 * the harness, measures side by side in the same run, and returns its rows of the results table.
 * Forwarding to the platform's callback (issue #20): forward.ts. The reconnect storm (issue #21):
 * storm.ts.
 */
import type { HookAction } from '../../src/srs/hooks.js'
import { forwarding } from './forward.js'
import {
  checks, MB, pace, percentile, row, saturate, warmUp, withStage, withTarget,
  type HttpRequest, type LoadResult, type Row, type Scenario, type Target
} from './harness.js'
import { hookRequest, knownStreams, SRS_RELEASE_MS, takeOverInTurn } from './hooks.js'
import type { BenchOptions } from './options.js'
import { dvrBurst, dvrOnBothStores, listingAtScale } from './recordings.js'
import { replicasWithRedis } from './replicas.js'
import { restartGap } from './restart.js'
import { reconnectStorm } from './storm.js'
import type { SimProcess } from './sim.js'
import { connectTakeover } from './token.js'
import { ZLM_SCENARIOS } from './zlm-scenarios.js'

const PLAIN_STREAM = { id: 'vid-0000001', app: 'live', name: 'cam1' }

/** Maximum rate against one target, after a warm-up; with the CPU time the target spent per request. */
async function maxRate (target: Target, requests: HttpRequest[], opts: BenchOptions): Promise<LoadResult & { cpuUs: number }> {
  await warmUp(target.url, requests, opts)
  const before = await target.cpu()
  const r = await saturate({ url: target.url, requests, connections: opts.connections, durationS: opts.durationS })
  return { ...r, cpuUs: (await target.cpu() - before) / Math.max(1, r.completed) }
}

/** The hooks SRS sends most, which never wait on SRS (issue #11, item 1). */
const THROUGHPUT_HOOKS = ['on_play', 'on_connect', 'on_stop', 'on_close'] as const

/** A HOOK_TOKEN as docs/security.md has it made (`openssl rand -hex 24`). */
const HOOK_TOKEN = '5f2c8e0b71d94a36c2e58f1a09b7d34e6c81f25a90de3b47'

/**
 * The recommended deployment's hook settings (issue #21; docs/security.md, docs/servers.md): every
 * hook URL carries the token, the gateway in front is a trusted proxy, one info line per hook.
 */
const RECOMMENDED = { HOOK_TOKEN, TRUST_PROXY: 'loopback', LOG_LEVEL: 'info' }

/** SRS's address, as the gateway (nginx, `$proxy_add_x_forwarded_for`) names it. */
const SRS_ADDRESS = '192.0.2.1'

/** A hook as it reaches srs-hooks through the 48080 gateway from an SRS configured with `?token=`. */
function throughGateway (req: HttpRequest): HttpRequest {
  return { ...req, path: `${req.path}?token=${HOOK_TOKEN}`, headers: { 'x-forwarded-for': SRS_ADDRESS } }
}

/** The five servers of scenario 1 side by side. */
interface Sides { bare: Target, floor: Target, tokenFloor: Target, app: Target, tokenApp: Target }

/** Bare, the floor with and without the token check, and srs-hooks in the recommended deployment beside `app`. */
async function withSides<T> (app: Target, run: (sides: Sides) => Promise<T>): Promise<T> {
  return await withTarget('bare', async (bare) => await withTarget('floor', async (floor) =>
    await withTarget('floor', async (tokenFloor) =>
      await withStage(async ({ app: tokenApp }) => await run({ bare, floor, tokenFloor, app, tokenApp }), { env: RECOMMENDED }),
    { HOOK_TOKEN })))
}

/**
 * 1. Hooks at the maximum rate, each measured five times one after the other: bare node:http
 * parsing the same body (bare.ts), the floor (floor.ts: the body check, the log line and the
 * metrics, on node:http), srs-hooks as the shared stage runs it (no token, no trusted proxy), the
 * floor also checking `?token=` (floor.ts with HOOK_TOKEN), and srs-hooks in the recommended
 * deployment (RECOMMENDED; each request with `?token=` and the gateway's X-Forwarded-For, so that
 * the token check and proxy-addr's resolution of the caller run on every hook). The targets (issue
 * #21): srs-hooks at 0.8 of the matching floor's rate or more, with p99 at most 1.5 times its p99,
 * with and without the token; the ratio to bare beside. Each run lasts BENCH_DURATION_S after a
 * warm-up. Besides requests per second, each server's own CPU time per request: what it costs
 * whatever the load generator manages to send.
 */
const hookThroughput: Scenario = {
  title: 'hook throughput and latency (on_play, on_connect, on_stop, on_close) vs the floor and bare node:http, with and without HOOK_TOKEN',
  run: async ({ app }, opts) => await withSides(app, async (sides) => {
    const rows: Row[] = []
    for (const action of THROUGHPUT_HOOKS) {
      const requests = [hookRequest(action, PLAIN_STREAM, 'c0000001')]
      const recommended = requests.map(throughGateway)
      const limit = await maxRate(sides.bare, requests, opts)
      const least = await maxRate(sides.floor, requests, opts)
      const ours = await maxRate(sides.app, requests, opts)
      const tokenLeast = await maxRate(sides.tokenFloor, recommended, opts)
      const tokenOurs = await maxRate(sides.tokenApp, recommended, opts)
      const withToken = `${action} with HOOK_TOKEN and TRUST_PROXY`
      const withoutToken = `${action} without a token`
      rows.push(
        row(`${withToken}: throughput (ref: the floor checking the token)`, 'req/s', tokenOurs.rps, tokenLeast.rps, checks.ratioAtLeast(0.8)),
        row(`${withToken}: p50 latency, max rate (ref: the floor checking the token)`, 'ms', tokenOurs.p50, tokenLeast.p50),
        row(`${withToken}: p99 latency, max rate (ref: the floor checking the token)`, 'ms', tokenOurs.p99, tokenLeast.p99, checks.ratioAtMost(1.5)),
        row(`${withToken}: throughput (ref: bare)`, 'req/s', tokenOurs.rps, limit.rps),
        row(`${withToken}: server CPU per request (ref: the floor's checking the token)`, 'µs', tokenOurs.cpuUs, tokenLeast.cpuUs),
        row(`${action} throughput of the floor checking the token (ref: the floor without)`, 'req/s', tokenLeast.rps, least.rps),
        row(`${withToken}: requests failed, srs-hooks and the floor checking the token (ref: completed)`, 'requests', tokenOurs.failures + tokenLeast.failures, tokenOurs.completed + tokenLeast.completed, checks.atMost(0, 'requests')),
        row(`${withoutToken}: throughput (ref: the floor)`, 'req/s', ours.rps, least.rps, checks.ratioAtLeast(0.8)),
        row(`${withoutToken}: p50 latency, max rate (ref: the floor)`, 'ms', ours.p50, least.p50),
        row(`${withoutToken}: p99 latency, max rate (ref: the floor)`, 'ms', ours.p99, least.p99, checks.ratioAtMost(1.5)),
        row(`${withoutToken}: throughput (ref: bare)`, 'req/s', ours.rps, limit.rps),
        row(`${withoutToken}: server CPU per request (ref: the floor's)`, 'µs', ours.cpuUs, least.cpuUs),
        row(`${withoutToken}: requests failed (ref: completed)`, 'requests', ours.failures + limit.failures, ours.completed + limit.completed, checks.atMost(0, 'requests')),
        row(`${action} throughput of the floor: node:http with the body check, log line and metrics alone (ref: bare)`, 'req/s', least.rps, limit.rps),
        row(`${action} floor's CPU per request (ref: bare's)`, 'µs', least.cpuUs, limit.cpuUs),
        row(`${action} floor's requests failed (ref: completed)`, 'requests', least.failures, least.completed, checks.atMost(0, 'requests'))
      )
    }
    return rows
  })
}

/** 2. on_publish on a free stream at a fixed rate, against SRS's own API latency at the same rate. */
const publishWithoutConflict: Scenario = {
  title: 'on_publish without conflict vs the SRS API alone',
  run: async ({ sim, app }, opts) => {
    const streams = await knownStreams(sim, 'pub', opts.streams)
    const lookups: HttpRequest[] = streams.map((s) => ({ method: 'GET', path: `/api/v1/streams/${s.id}` }))
    const publishes = streams.map((s, i) => hookRequest('on_publish', s, `p${i}`))
    const paced = { connections: opts.connections, durationS: opts.durationS, rate: opts.publishRate }
    await warmUp(app.url, publishes, opts)
    const api = await pace({ url: sim.apiUrl, requests: lookups, ...paced })
    const before = await sim.apiRequests()
    const ours = await pace({ url: app.url, requests: publishes, ...paced })
    const callsPerPublish = (await sim.apiRequests() - before) / ours.completed
    return [
      row('SRS API calls per on_publish', 'calls', callsPerPublish, undefined, checks.atMost(1, 'calls')),
      row(`on_publish p50 at ${opts.publishRate}/s (ref: API alone)`, 'ms', ours.p50, api.p50),
      row(`on_publish p99 at ${opts.publishRate}/s (ref: API alone)`, 'ms', ours.p99, api.p99, checks.addedBelow(5, 'ms')),
      row('on_publish requests failed (ref: completed)', 'requests', ours.failures + api.failures, ours.completed + api.completed, checks.atMost(0, 'requests'))
    ]
  }
}

/** 3. The time a takeover adds to the release itself, for several release delays. */
const takeoverOverhead: Scenario = {
  title: 'takeover overhead over the release delay R',
  run: async ({ sim }, opts) => {
    const rows: Row[] = []
    let failed = 0
    await takeOverInTurn(sim, 'warm-up-', 3)
    for (const r of opts.releaseDelaysMs) {
      await sim.setReleaseDelay(r)
      const run = await takeOverInTurn(sim, `r${r}-`, opts.takeovers)
      failed += run.failed
      const overhead = run.ms.map((ms) => ms - r)
      rows.push(
        row(`takeover overhead p50, R=${r} ms (ref: R)`, 'ms', percentile(overhead, 50), r),
        row(`takeover overhead p99, R=${r} ms (ref: R)`, 'ms', percentile(overhead, 99), r, checks.below(20, 'ms'))
      )
    }
    const total = opts.takeovers * opts.releaseDelaysMs.length
    rows.push(row('takeovers that failed', 'takeovers', failed, total, checks.atMost(0, 'takeovers')))
    return rows
  }
}

/** SRS_API_PAGE_SIZE's default. */
const PAGE_SIZE = 1000

/**
 * How long the simulator takes to list `total` streams in pages, as reconciliation fetches them:
 * the part of reconciliation's time that is SRS's (and here, the simulator's JSON), not ours.
 */
async function listingMs (sim: SimProcess, total: number): Promise<number> {
  const started = performance.now()
  for (let start = 0; start < total; start += PAGE_SIZE) {
    await (await fetch(`${sim.apiUrl}/api/v1/streams/?start=${start}&count=${PAGE_SIZE}`)).json()
  }
  return performance.now() - started
}

/**
 * 4. Memory and time of a reconciliation with SRS listing many live streams, in a server process
 * that has done nothing else, so that its resident memory is the table's and nothing else's.
 */
const scale: Scenario = {
  title: 'scale of state: reconciliation with many live streams',
  run: async (_shared, opts) => await withStage(async ({ sim, app }) => {
    await sim.seedLive(opts.scaleStreams)
    const n = opts.scaleStreams
    const listing = await listingMs(sim, n)
    const idle = await app.memory()
    const reconciled = await app.reconcile()
    const after = await app.memory()
    return [
      row(`reconciliation of ${n} live streams (ref: the listing alone)`, 'ms', reconciled.ms, listing, checks.below(2000, 'ms')),
      row(`RSS after reconciling ${n} (ref: idle RSS)`, 'MB', after.rss / MB, idle.rss / MB, checks.addedBelow(150, 'MB')),
      row(`heap used after reconciling ${n} (ref: idle)`, 'MB', after.heapUsed / MB, idle.heapUsed / MB),
      row('publishers in the table after reconciling', 'streams', reconciled.size, n, checks.equalsReference()),
      row('reconciliation failures', 'calls', reconciled.failures, undefined, checks.atMost(0, 'calls'))
    ]
  })
}

/** 5. Many streams taken over at the same moment, against one takeover alone. */
const concurrentTakeovers: Scenario = {
  title: 'concurrent takeovers',
  run: async ({ sim }, opts) => {
    const n = opts.concurrent
    await sim.setReleaseDelay(SRS_RELEASE_MS)
    await sim.seedLive(1, { prefix: 'solo-' })
    await sim.seedLive(n, { prefix: 'burst-' })
    const solo = await timed(async () => await sim.publish({ app: 'live', stream: 'solo-0' }))
    const burst = await timed(async () => await Promise.all(
      Array.from({ length: n }, async (_, i) => await sim.publish({ app: 'live', stream: `burst-${i}` }))
    ))
    const succeeded = burst.result.filter((r) => r.ok).length
    return [
      row(`${n} takeovers at once: succeeded`, 'takeovers', succeeded, n, checks.equalsReference()),
      row(`${n} takeovers at once: total time (ref: one alone)`, 'ms', burst.ms, solo.ms),
      row('the takeover alone succeeded', 'takeovers', Number(solo.result.ok), 1, checks.equalsReference())
    ]
  }
}

async function timed<T> (run: () => Promise<T>): Promise<{ ms: number, result: T }> {
  const started = performance.now()
  const result = await run()
  return { ms: performance.now() - started, result }
}

const MIX: HookAction[] = ['on_connect', 'on_publish', 'on_play', 'on_hls', 'on_dvr', 'on_stop', 'on_unpublish', 'on_close']

/** 6. Mixed hooks at half the maximum rate for a long while: errors and memory growth. */
const sustainedLoad: Scenario = {
  title: 'sustained mixed load at half the maximum rate',
  run: async ({ sim, app }, opts) => {
    const streams = await knownStreams(sim, 'mix', opts.streams)
    const requests = streams.flatMap((s, i) => MIX.map((action) => hookRequest(action, s, `m${i}`)))
    const max = await maxRate(app, requests, opts)
    const rate = Math.max(1, Math.round(max.rps / 2))
    const before = await app.memory()
    const sustained = await pace({ url: app.url, requests, connections: opts.connections, durationS: opts.loadS, rate })
    const after = await app.memory()
    return [
      row('mixed hooks: maximum rate', 'req/s', max.rps),
      row(`mixed hooks for ${opts.loadS} s: rate (ref: half the maximum)`, 'req/s', sustained.rps, rate),
      row(`mixed hooks for ${opts.loadS} s: p99 latency`, 'ms', sustained.p99),
      row(`mixed hooks for ${opts.loadS} s: requests failed`, 'requests', sustained.failures + max.failures, sustained.completed, checks.atMost(0, 'requests')),
      row(`mixed hooks for ${opts.loadS} s: heap growth`, 'MB', (after.heapUsed - before.heapUsed) / MB),
      row(`mixed hooks for ${opts.loadS} s: RSS growth (ref: RSS before)`, 'MB', (after.rss - before.rss) / MB, before.rss / MB)
    ]
  }
}

export const SCENARIOS: Scenario[] = [
  hookThroughput, publishWithoutConflict, takeoverOverhead, scale, concurrentTakeovers, sustainedLoad,
  dvrOnBothStores, listingAtScale, dvrBurst,
  connectTakeover, replicasWithRedis,
  // 12 and 13: ZLMediaKit (issue #12).
  ...ZLM_SCENARIOS,
  // 14: the restart gap (issue #11).
  restartGap,
  // 15: forwarding to the platform's callback (issue #20).
  forwarding,
  // 16: a reconnect storm onto streams held by stale publishers (issue #21).
  reconnectStorm
]
