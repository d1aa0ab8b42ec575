/**
 * Two replicas sharing their state in Redis (REDIS_URL), against one srs-hooks in the same run:
 * the takeover overhead and on_publish latency through a gateway, Redis commands per on_publish
 * without conflict, and hook throughput with and without Redis.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CALLBACK_PREFIXES } from '../../src/app.js'
import { Gateway } from '../../test/fixtures/gateway.js'
import { RedisServer } from '../../test/fixtures/redis.js'
import { BENCH_SERVER_ID, checks, pace, percentile, row, saturate, Target, warmUp, type HttpRequest, type LoadResult, type Row, type Scenario } from './harness.js'
import { hookRequest, knownStreams, takeOverInTurn } from './hooks.js'
import { takeoversOf, type BenchOptions } from './options.js'
import { SimProcess } from './sim.js'

/**
 * A simulator, `n` srs-hooks behind a gateway (on_publish to the last, every other hook to the
 * first, until `gw.route` says otherwise), and a Redis when n > 1.
 */
export interface Cluster { sim: SimProcess, replicas: Target[], gw: Gateway }

export async function withCluster<T> (redis: RedisServer | undefined, n: number, run: (c: Cluster) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-'))
  const sim = await SimProcess.start({ serverId: BENCH_SERVER_ID })
  const shared: Record<string, string> = redis === undefined ? {} : { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix() }
  const replicas: Target[] = []
  for (let i = 0; i < n; i++) replicas.push(await Target.start('app', { SRS_API_URL: sim.apiUrl, DATA_DIR: join(dir, String(i)), ...shared }))
  // The newcomer's on_publish reaches one replica, the holder's release hooks the other.
  const gw = await Gateway.start(() => replicas.map((r) => r.url), (r) => /\/on_publish\b/.test(r.path) ? n - 1 : 0)
  await sim.setHookBase(gw.url + CALLBACK_PREFIXES[0])
  try {
    return await run({ sim, replicas, gw })
  } finally {
    await gw.close()
    for (const r of replicas) await r.close()
    await sim.close()
    await rm(dir, { recursive: true })
  }
}

/** Takeovers of seeded streams in turn: the newcomers' on_publish times less the release delay. */
async function overheads (sim: SimProcess, prefix: string, n: number, releaseMs: number): Promise<{ ms: number[], failed: number }> {
  await sim.setReleaseDelay(releaseMs)
  const run = await takeOverInTurn(sim, prefix, n)
  return { ms: run.ms.map((ms) => ms - releaseMs), failed: run.failed }
}

/** on_publish without conflict, paced, through the gateway; `measured` wraps the measured part. */
async function publishes (c: Cluster, opts: BenchOptions, measured: (run: () => Promise<LoadResult>) => Promise<LoadResult> = async (run) => await run()): Promise<LoadResult> {
  const streams = await knownStreams(c.sim, 'pub', Math.min(opts.streams, 200))
  const requests: HttpRequest[] = streams.map((s, i) => hookRequest('on_publish', s, `p${i}`))
  await warmUp(c.gw.url, requests, opts)
  return await measured(async () => await pace({ url: c.gw.url, requests, connections: opts.connections, durationS: opts.durationS, rate: Math.min(opts.publishRate, 500) }))
}

/** Commands the replicas sent to Redis during `run` (round trips: a script is one command). */
async function redisCommandsDuring<T> (replicas: Target[], run: () => Promise<T>): Promise<{ result: T, commands: number }> {
  const count = async (): Promise<number> => (await Promise.all(replicas.map(async (r) => await r.redisCommands()))).reduce((a, b) => a + b, 0)
  const before = await count()
  const result = await run()
  return { result, commands: await count() - before }
}

/** 8. Two replicas and Redis against one process, in the same run. */
export const replicasWithRedis: Scenario = {
  title: 'two replicas sharing Redis vs one srs-hooks',
  run: async (_shared, opts) => {
    const redis = await RedisServer.launch()
    try {
      const rows: Row[] = []
      const R = opts.releaseDelaysMs[0]!
      const one = await withCluster(undefined, 1, async (c) => {
        await overheads(c.sim, 'warm-', 3, R)
        return { takeover: await overheads(c.sim, 't-', takeoversOf(opts), R), publish: await publishes(c, opts) }
      })
      const two = await withCluster(redis, 2, async (c) => {
        await overheads(c.sim, 'warm-', 3, R)
        const takeover = await overheads(c.sim, 't-', takeoversOf(opts), R)
        let commands = 0
        const publish = await publishes(c, opts, async (run) => {
          const m = await redisCommandsDuring(c.replicas, run)
          commands = m.commands
          return m.result
        })
        return { takeover, publish, perPublish: commands / Math.max(1, publish.completed) }
      })
      rows.push(
        row(`takeover overhead p50, R=${R} ms, two replicas (ref: one)`, 'ms', percentile(two.takeover.ms, 50), percentile(one.takeover.ms, 50)),
        row(`takeover overhead p99, R=${R} ms, two replicas (ref: one)`, 'ms', percentile(two.takeover.ms, 99), percentile(one.takeover.ms, 99), checks.below(20, 'ms')),
        row('on_publish p99 without conflict, two replicas (ref: one)', 'ms', two.publish.p99, one.publish.p99),
        row('Redis round trips per on_publish without conflict', 'calls', two.perPublish, undefined, checks.atMost(1, 'calls')),
        row('replica takeovers and publishes that failed', 'requests', two.takeover.failed + one.takeover.failed + two.publish.failures + one.publish.failures, undefined, checks.atMost(0, 'requests'))
      )
      rows.push(...await throughputWithRedis(redis, opts))
      return rows
    } finally {
      await redis.dispose()
    }
  }
}

const MIX = ['on_connect', 'on_publish', 'on_play', 'on_stop', 'on_unpublish', 'on_close'] as const

/** Mixed hooks at the maximum rate against one srs-hooks with REDIS_URL and one without. */
async function throughputWithRedis (redis: RedisServer, opts: BenchOptions): Promise<Row[]> {
  const measure = async (env: Record<string, string>): Promise<LoadResult> => {
    const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-'))
    const sim = await SimProcess.start({ serverId: BENCH_SERVER_ID })
    const app = await Target.start('app', { SRS_API_URL: sim.apiUrl, DATA_DIR: dir, ...env })
    try {
      const streams = await knownStreams(sim, 'mix', Math.min(opts.streams, 100))
      const requests = streams.flatMap((s, i) => MIX.map((action) => hookRequest(action, s, `m${i}`)))
      await warmUp(app.url, requests, opts)
      return await saturate({ url: app.url, requests, connections: opts.connections, durationS: opts.durationS })
    } finally {
      await app.close()
      await sim.close()
      await rm(dir, { recursive: true })
    }
  }
  const without = await measure({})
  const withRedis = await measure({ REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix() })
  return [
    row('mixed hooks throughput with REDIS_URL (ref: without)', 'req/s', withRedis.rps, without.rps, checks.ratioAtLeast(0.8)),
    row('mixed hooks p99 with REDIS_URL (ref: without)', 'ms', withRedis.p99, without.p99),
    row('mixed hooks failed with and without REDIS_URL (ref: completed)', 'requests', withRedis.failures + without.failures, withRedis.completed + without.completed, checks.atMost(0, 'requests'))
  ]
}
