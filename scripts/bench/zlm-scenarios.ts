/**
 * ZLMediaKit's measurements (issue #12): the takeover's overhead over ZLMediaKit's release delay,
 * as for SRS, and the time of POST rtp-servers with and without a conflict. Each builds its own
 * stage: the ZLMediaKit simulator in the bench's process, srs-hooks in its own (SRS_API_URL=none).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { ZlmSimulator } from '../../test/fixtures/zlm-sim.js'
import { checks, percentile, row, Target, type Row, type Scenario } from './harness.js'
import type { BenchOptions } from './options.js'

const SECRET = 'zlm-bench-secret-0123456789abcdef'
const SERVER_ID = 'zlm-bench'

interface ZlmStage { sim: ZlmSimulator, app: Target }

/** A fresh ZLMediaKit simulator and srs-hooks wired to each other; the recordings index in a temporary DATA_DIR. */
async function withZlmStage<T> (run: (stage: ZlmStage) => Promise<T>): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-zlm-'))
  // Hook retries off: a failed hook is a failed takeover here, not a second chance.
  // A port range wide enough for every RTP server the bench opens (5000 by default), which stay open
  // without RTP for the whole run.
  const sim = await ZlmSimulator.start({ secret: SECRET, mediaServerId: SERVER_ID, aliveIntervalSec: 0, retry: 0, rtpPortRange: [10000, 59999], rtpTimeoutSec: 3600 })
  const app = await Target.start('app', { SRS_API_URL: 'none', ZLM_API_URL: sim.apiUrl, ZLM_SECRET: SECRET, DATA_DIR: dataDir })
  sim.setHookBase(app.hookBase + '/zlm')
  try {
    return await run({ sim, app })
  } finally {
    await app.close()
    await sim.close()
    await rm(dataDir, { recursive: true })
  }
}

/**
 * Takes over `n` streams one after another, each once: a stalled holder, then the camera's
 * reconnect. The newcomers' on_publish times as the simulator measured them, and how many failed.
 */
async function takeOverInTurn (sim: ZlmSimulator, prefix: string, n: number): Promise<{ ms: number[], failed: number }> {
  const ms: number[] = []
  let failed = 0
  for (let i = 0; i < n; i++) {
    const stream = prefix + i
    // Each camera from its own address, as in the field (the newcomer is verified among its address's sessions).
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    await sim.publish({ app: 'live', stream, stalled: true, ip })
    const r = await sim.publish({ app: 'live', stream, ip })
    failed += Number(!r.ok)
    ms.push(sim.hookCalls.findLast((c) => c.hook === 'on_publish' && c.body.id === r.id)!.ms)
  }
  return { ms, failed }
}

/** 7. The time a ZLMediaKit takeover adds to the release itself (kick_session to the close), for several release delays. */
const zlmTakeoverOverhead: Scenario = {
  title: 'ZLMediaKit: takeover overhead over the release delay R',
  run: async (_srs, opts) => await withZlmStage(async ({ sim }) => {
    const rows: Row[] = []
    let failed = 0
    await takeOverInTurn(sim, 'warm-up-', 3)
    for (const r of opts.releaseDelaysMs) {
      sim.setCloseDelay(r)
      const run = await takeOverInTurn(sim, `r${r}-`, opts.takeovers)
      failed += run.failed
      const overhead = run.ms.map((ms) => ms - r)
      rows.push(
        row(`ZLMediaKit takeover overhead p50, R=${r} ms (ref: R)`, 'ms', percentile(overhead, 50), r),
        row(`ZLMediaKit takeover overhead p99, R=${r} ms (ref: R)`, 'ms', percentile(overhead, 99), r, checks.below(20, 'ms'))
      )
    }
    rows.push(row('ZLMediaKit takeovers that failed', 'takeovers', failed, opts.takeovers * opts.releaseDelaysMs.length, checks.atMost(0, 'takeovers')))
    return rows
  })
}

interface Timed { ms: number[], failed: number }

/** POSTs each body in turn (one at a time, kept-alive), timing each; a reply other than 200 with code 0 fails. */
async function timedPosts (url: string, path: string, bodies: string[], contentType: string): Promise<Timed> {
  const pool = new Pool(url, { connections: 1 })
  const ms: number[] = []
  let failed = 0
  try {
    for (const body of bodies) {
      const started = performance.now()
      const res = await pool.request({ method: 'POST', path, headers: { 'content-type': contentType }, body })
      const text = await res.body.text()
      ms.push(performance.now() - started)
      failed += Number(res.statusCode !== 200 || !/"code"\s*:\s*0\b/.test(text))
    }
  } finally {
    await pool.close()
  }
  return { ms, failed }
}

const form = (o: Record<string, string | number>): string => Object.entries({ secret: SECRET, ...o }).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')

/**
 * 8. POST rtp-servers: a fresh stream (no RTP server in ZLMediaKit's map) against openRtpServer
 * alone; a stream whose RTP server is still in the map with another SSRC (an earlier INVITE: -300,
 * then the map read, the old one closed and the open tried again) against closeRtpServer then
 * openRtpServer alone. The same number of opens each, one at a time; the map holds all of them
 * (listRtpServer has no filter, so its answer grows with it, as on a busy platform).
 */
const rtpServerOpens: Scenario = {
  title: 'ZLMediaKit: rtp-servers open with and without a conflict',
  run: async (_srs, opts: BenchOptions) => await withZlmStage(async ({ sim, app }) => {
    const n = opts.streams
    const ids = (prefix: string, count = n) => Array.from({ length: count }, (_, i) => `${prefix}${i}`)
    const ours = (prefix: string, extra: Record<string, unknown> = {}, count = n) => ids(prefix, count).map((id) => JSON.stringify({ stream_id: id, ...extra }))
    const api = (name: string) => `/index/api/${name}`
    const FORM = 'application/x-www-form-urlencoded'
    // Warm both up.
    await timedPosts(app.url, '/admin-api/video/camera/rtp-servers', ours('warm-', {}, 20), 'application/json')
    await timedPosts(sim.apiUrl, api('openRtpServer'), ids('warm-ref-', 20).map((id) => form({ port: 0, stream_id: id })), FORM)

    // No conflict.
    const refFree = await timedPosts(sim.apiUrl, api('openRtpServer'), ids('ref-').map((id) => form({ port: 0, stream_id: id })), FORM)
    let before = sim.apiCalls.length
    const free = await timedPosts(app.url, '/admin-api/video/camera/rtp-servers', ours('free-'), 'application/json')
    const freeCalls = (sim.apiCalls.length - before) / n

    // A conflict: each stream's RTP server is in the map with another port (an earlier INVITE).
    for (const id of ids('busy-')) await timedPosts(sim.apiUrl, api('openRtpServer'), [form({ port: 0, stream_id: id })], FORM)
    for (const id of ids('ref-busy-')) await timedPosts(sim.apiUrl, api('openRtpServer'), [form({ port: 0, stream_id: id })], FORM)
    const refBusy: Timed = { ms: [], failed: 0 }
    for (const id of ids('ref-busy-')) {
      const close = await timedPosts(sim.apiUrl, api('closeRtpServer'), [form({ stream_id: id })], FORM)
      const open = await timedPosts(sim.apiUrl, api('openRtpServer'), [form({ port: 0, stream_id: id })], FORM)
      refBusy.ms.push(close.ms[0]! + open.ms[0]!)
      refBusy.failed += close.failed + open.failed
    }
    before = sim.apiCalls.length
    const busy = await timedPosts(app.url, '/admin-api/video/camera/rtp-servers', ours('busy-', { ssrc: 1234 }), 'application/json')
    const busyCalls = (sim.apiCalls.length - before) / n
    // What reading the map costs by itself at this size (a conflict reads it once).
    const listing = await timedPosts(sim.apiUrl, api('listRtpServer'), Array.from({ length: 20 }, () => form({})), FORM)
    return [
      row('rtp-servers open p50, no conflict (ref: openRtpServer alone)', 'ms', percentile(free.ms, 50), percentile(refFree.ms, 50)),
      row('rtp-servers open p99, no conflict (ref: openRtpServer alone)', 'ms', percentile(free.ms, 99), percentile(refFree.ms, 99)),
      row('rtp-servers open p50, conflict (ref: close + open alone)', 'ms', percentile(busy.ms, 50), percentile(refBusy.ms, 50)),
      row('rtp-servers open p99, conflict (ref: close + open alone)', 'ms', percentile(busy.ms, 99), percentile(refBusy.ms, 99)),
      row(`listRtpServer of ${sim.listRtpServers().length} RTP servers alone, p50`, 'ms', percentile(listing.ms, 50)),
      row('rtp-servers opens that failed (ref: opens)', 'requests', free.failed + busy.failed + refFree.failed + refBusy.failed, 2 * n, checks.atMost(0, 'requests')),
      row('ZLMediaKit API calls per open, no conflict (ref: openRtpServer alone)', 'calls', freeCalls, 1, checks.equalsReference()),
      row('ZLMediaKit API calls per open, conflict (ref: close + open alone)', 'calls', busyCalls, 2)
    ]
  })
}

export const ZLM_SCENARIOS: Scenario[] = [zlmTakeoverOverhead, rtpServerOpens]
