/**
 * Forwarding to the platform's own callback (issue #20, "Measure"): srs-hooks with FORWARD_URL
 * against the same srs-hooks without it, side by side in one run, beside the SRS simulator and a
 * platform that answers `{"code":0}` after 1 ms (platform-process.ts, a process of its own).
 *
 * 1. Notification hooks (on_unpublish, on_close, on_stop, on_dvr, on_hls) at BENCH_FORWARD_RATE
 *    with and without forwarding: the latency forwarding adds (a durable write to the outbox).
 * 2. A backlog of BENCH_FORWARD_BACKLOG notifications over BENCH_STREAMS streams, written to the
 *    outbox before the forwarding server starts (as after an outage and a restart): the rate the
 *    platform receives it at, and the latency of notifications arriving meanwhile against the same
 *    hooks once it is drained (the with-forwarding run of 1).
 * 3. Decision hooks (on_publish, on_play) at BENCH_FORWARD_DECISION_RATE with and without
 *    forwarding, and the platform's own time meanwhile (from its request to its reply, as the
 *    platform measures it): what forwarding adds beyond the platform's time.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { OutboxFile } from '../../src/forward/outbox.js'
import type { HookAction } from '../../src/srs/hooks.js'
import { checks, pace, percentile, row, Target, type HttpRequest, type LoadResult, type Row, type Scenario } from './harness.js'
import { hookRequest, knownStreams } from './hooks.js'
import type { BenchOptions } from './options.js'
import { PlatformProcess } from './platform.js'

/** The platform's time to answer each hook (issue #20: 1 ms). */
const PLATFORM_DELAY_MS = 1

/** SRS's notification hooks, each forwarded through the outbox. */
const NOTICES: HookAction[] = ['on_unpublish', 'on_close', 'on_stop', 'on_dvr', 'on_hls']

/**
 * The notifications in turn over `streams` streams named `prefix`N; each on_dvr about a new file
 * (the same file twice would be a duplicate for the recordings index, not a write).
 */
function notices (prefix: string, streams: number): () => HttpRequest {
  let i = 0
  return () => {
    const n = i++
    const action = NOTICES[n % NOTICES.length]!
    const s = Math.floor(n / NOTICES.length) % streams
    const over = action === 'on_dvr' ? { file: `./objs/nginx/html/live/${prefix}${s}-${n}.1700000000000.flv` } : {}
    return hookRequest(action, { id: `vid-${prefix}${s}`, app: 'live', name: `${prefix}${s}` }, `${prefix}c${s}`, over)
  }
}

/**
 * Writes `n` notifications over `streams` streams (lanes `srs:/live/blN`, the streams' own) into
 * DATA_DIR/outbox.db, due now, as srs-hooks writes them; their keys start with `backlog-` so that
 * the platform tells them from the hooks sent meanwhile.
 */
function fillOutbox (dir: string, n: number, streams: number): void {
  const file = new OutboxFile({ dir })
  try {
    const next = notices('bl', streams)
    const at = Date.now()
    file.db.transaction(() => {
      for (let i = 0; i < n; i++) {
        const req = next()
        const body = JSON.parse(req.body!) as { action: string, stream_url: string }
        file.add({ lane: `srs:${body.stream_url}`, target: 'srs', action: body.action, body: req.body!, key: `backlog-${i}`, at }, Infinity)
      }
    })()
  } finally {
    file.close()
  }
}

/**
 * The floor of a durable write on the disk of `dir`: `n` small appends to a file there, each
 * followed by fsync(), as a commit of the outbox does; their times, ms.
 */
function fsyncTimes (dir: string, n: number): number[] {
  const fd = openSync(join(dir, 'fsync-probe'), 'w')
  try {
    return Array.from({ length: n }, () => {
      const started = performance.now()
      writeSync(fd, 'x'.repeat(256))
      fsyncSync(fd)
      return performance.now() - started
    })
  } finally {
    closeSync(fd)
  }
}

/** The platform's answer time as srs-hooks saw it for notifications so far (its histogram): mean, ms. */
async function deliveryMeanMs (target: Target): Promise<number> {
  const text = await (await request(target.url + '/metrics')).body.text()
  const value = (name: string): number => Number(new RegExp(`^srs_hooks_forward_platform_seconds_${name}\\{target="srs",kind="notification"\\} (\\S+)$`, 'm').exec(text)![1])
  return value('sum') * 1000 / value('count')
}

/** Waits until `done` holds or `ms` have passed (the rows then show what was missing). */
async function until (done: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms
  while (!await done()) {
    await sleep(100)
    // Only a server that stopped delivering gets here: the smoke's tiny runs cannot wait so long.
    /* c8 ignore next */
    if (performance.now() > deadline) return
  }
}

/** A quarter of a second at 2,000/s, so that both sides of a comparison are past their JIT warm-up. */
async function warm (url: string, requests: HttpRequest[], next: (() => HttpRequest) | undefined, opts: BenchOptions): Promise<LoadResult> {
  return await pace({ url, requests, next, connections: opts.connections, durationS: 0.25, rate: 2000 })
}

/** 15. Forwarding to the platform: notifications, a backlog's drain, decision hooks. */
export const forwarding: Scenario = {
  title: 'forwarding to the platform (FORWARD_URL) vs without: notifications, a backlog\'s drain, decision hooks',
  // The shared stage's simulator serves as SRS for both (its hooks go to the forwarding server
  // meanwhile); two servers of its own, started fresh.
  run: async ({ sim, app }, opts) => {
    const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-'))
    const platform = await PlatformProcess.start(PLATFORM_DELAY_MS)
    const without = await Target.start('app', { SRS_API_URL: sim.apiUrl, DATA_DIR: join(dir, 'without') })
    fillOutbox(join(dir, 'with'), opts.forwardBacklog, opts.streams)
    // It delivers the backlog from its start on.
    const forwarded = await Target.start('app', { SRS_API_URL: sim.apiUrl, DATA_DIR: join(dir, 'with'), FORWARD_URL: platform.url })
    await sim.setHookBase(forwarded.hookBase)
    try {
      // SRS sends each hook on a connection of its own: enough of them that hooks waiting for a
      // disk's fsync (up to 100 ms) never queue in the generator behind each other.
      const paced = { connections: Math.max(opts.connections, Math.ceil(opts.forwardRate / 10)), durationS: opts.durationS, rate: opts.forwardRate }
      const backlog = opts.forwardBacklog

      // 2. Notifications while the backlog drains.
      const live = notices('fwd', opts.streams)
      const sent = (await warm(forwarded.url, [], live, opts)).completed
      const during = await pace({ url: forwarded.url, requests: [], next: live, ...paced })
      const left = backlog - (await platform.summary()).backlog
      await until(async () => (await platform.summary()).backlog >= backlog, Math.max(60_000, backlog * 10))
      const drain = await platform.summary()
      const roundTrip = await deliveryMeanMs(forwarded)
      const rate = (drain.backlog - 1) / ((drain.lastBacklogAt - drain.firstBacklogAt) / 1000)
      // What was sent meanwhile reaches the platform too before it is cleared for 1.
      await until(async () => (await platform.summary()).notices >= sent + during.completed, 60_000)
      await platform.clear()

      // 1. Notifications with and without forwarding, no backlog; the disk's own fsync first.
      const fsyncs = fsyncTimes(dir, 100)
      await warm(without.url, [], live, opts)
      const c0 = await without.cpu()
      const bare = await pace({ url: without.url, requests: [], next: live, ...paced })
      const c1 = await without.cpu()
      const f0 = await forwarded.cpu()
      const ours = await pace({ url: forwarded.url, requests: [], next: live, ...paced })
      await until(async () => (await platform.summary()).notices >= ours.completed, 60_000)
      // With forwarding, a notification's CPU includes its delivery.
      const f1 = await forwarded.cpu()
      const delivered = (await platform.summary()).notices
      const R = opts.forwardRate
      const rows: Row[] = [
        row(`notifications p50 at ${R}/s with forwarding (ref: without)`, 'ms', ours.p50, bare.p50),
        row(`notifications p99 at ${R}/s with forwarding (ref: without)`, 'ms', ours.p99, bare.p99, checks.addedAtMost(2, 'ms')),
        row('server CPU per notification with forwarding, its delivery included (ref: without)', 'µs', (f1 - f0) / Math.max(1, ours.completed), (c1 - c0) / Math.max(1, bare.completed)),
        row('fsync on the outbox\'s disk alone, p50 (a durable write\'s floor)', 'ms', percentile(fsyncs, 50)),
        row('fsync on the outbox\'s disk alone, p99 (a durable write\'s floor)', 'ms', percentile(fsyncs, 99)),
        row('notifications failed with and without forwarding (ref: completed)', 'requests', ours.failures + bare.failures, ours.completed + bare.completed, checks.atMost(0, 'requests')),
        row('notifications delivered to the platform (ref: answered with forwarding)', 'requests', delivered, ours.completed, checks.equalsReference()),
        row(`drain of ${backlog} notifications over ${opts.streams} streams to a platform answering in ${PLATFORM_DELAY_MS} ms: rate`, 'events/s', rate, undefined, checks.atLeast(2000, 'events/s')),
        row('drain: the platform\'s answer to a delivery as srs-hooks saw it, mean (ref: the platform\'s own p50)', 'ms', roundTrip, drain.ownP50),
        row('drain: backlog notifications the platform received (ref: backlog)', 'events', drain.backlog, backlog, checks.equalsReference()),
        row('drain: backlog left when the notifications sent meanwhile ended (ref: backlog)', 'events', left, backlog),
        row(`notifications p50 at ${R}/s during the drain (ref: with no backlog)`, 'ms', during.p50, ours.p50),
        row(`notifications p99 at ${R}/s during the drain (ref: with no backlog)`, 'ms', during.p99, ours.p99, checks.addedAtMost(2, 'ms')),
        row('notifications failed during the drain (ref: completed)', 'requests', during.failures, during.completed, checks.atMost(0, 'requests'))
      ]

      // 3. Decision hooks with and without forwarding, and the platform's own time.
      const streams = await knownStreams(sim, 'dec', opts.streams)
      const D = opts.forwardDecisionRate
      for (const action of ['on_publish', 'on_play'] as const) {
        const requests = streams.map((s, i) => hookRequest(action, s, `${action === 'on_publish' ? 'p' : 'v'}${i}`))
        const decided = { requests, connections: opts.connections, durationS: opts.durationS, rate: D }
        await warm(without.url, requests, undefined, opts)
        await warm(forwarded.url, requests, undefined, opts)
        const alone = await pace({ url: without.url, ...decided })
        await platform.clear()
        const asked = await pace({ url: forwarded.url, ...decided })
        const own = await platform.summary()
        rows.push(
          row(`${action} p50 at ${D}/s with forwarding (ref: without)`, 'ms', asked.p50, alone.p50),
          row(`${action} p99 at ${D}/s with forwarding (ref: without)`, 'ms', asked.p99, alone.p99),
          row(`platform's own time answering ${action}, p50 (ref: its delay)`, 'ms', own.ownP50, PLATFORM_DELAY_MS),
          row(`platform's own time answering ${action}, p99 (ref: its delay)`, 'ms', own.ownP99, PLATFORM_DELAY_MS),
          row(`${action} p50 added by forwarding less the platform's own p50`, 'ms', asked.p50 - alone.p50 - own.ownP50),
          row(`${action} p99 added by forwarding less the platform's own p99`, 'ms', asked.p99 - alone.p99 - own.ownP99, undefined, checks.atMost(1, 'ms')),
          row(`${action} asked of the platform (ref: answered with forwarding)`, 'requests', own.requests, asked.completed, checks.equalsReference()),
          row(`${action} failed with and without forwarding (ref: completed)`, 'requests', asked.failures + alone.failures, asked.completed + alone.completed, checks.atMost(0, 'requests'))
        )
      }
      return rows
    } finally {
      await forwarded.close()
      await without.close()
      await sim.setHookBase(app.hookBase)
      await platform.close()
      await rm(dir, { recursive: true })
    }
  }
}
