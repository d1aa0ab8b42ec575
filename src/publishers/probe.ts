import type { MediaServer } from './media.js'
import type { IncumbentInfo, LiveStream, StaleSample } from './policy.js'
import { sleep } from './release.js'

/**
 * takeover-stale: is the holder still sending? The server refreshes the byte counters its API
 * reports only every `statsIntervalMs` (SRS: 3 s), and the first refresh after a holder froze
 * still counts the bytes it sent before. So two reads one interval apart can see a holder that
 * froze just before the newcomer came as "sending".
 *
 * The probe therefore first finds a refresh (the counter moves), then judges over the next full
 * interval: a holder that sends moves its counter at every refresh; one that froze does not move
 * it again. A counter that does not move for a whole interval from the start is stalled at once.
 * It takes at most two intervals and a margin, and never waits past `deadline`.
 */

export interface ProbeResult {
  sample: StaleSample
  info: IncumbentInfo
}

/** The deadline came before the probe could tell. */
export class ProbeBoundError extends Error {
  readonly kind = 'deadline'
  constructor () {
    super('the probe could not tell whether the holder is sending before the bound')
    this.name = 'ProbeBoundError'
  }
}

/** How long the probe may take at most for a refresh interval. */
export function probeBudget (intervalMs: number): number {
  return 2 * intervalMs + margin(intervalMs) * 2
}

function margin (intervalMs: number): number {
  return Math.min(500, Math.max(20, Math.round(intervalMs / 6)))
}

export async function probeHolder (server: MediaServer, holder: string, live: LiveStream, deadline: number, now: () => number): Promise<ProbeResult> {
  const interval = server.statsIntervalMs
  const step = Math.max(10, Math.min(250, Math.round(interval / 12)))
  const pad = margin(interval)
  const started = now()
  const first = await server.read(holder, live, deadline)
  if (first.gone === true) return { sample: { gone: true }, info: {} }
  if (first.bytes === undefined) return { sample: { before: undefined, after: undefined, ms: 0 }, info: first.info }
  const before = first.bytes
  // Phase 1: wait for the counter to move, for one interval and a margin at most.
  let moved: { at: number, bytes: number } | undefined
  let info = first.info
  while (moved === undefined && now() < started + interval + pad) {
    await wait(Math.min(step, started + interval + pad - now()), deadline, now)
    const r = await server.read(holder, live, deadline)
    if (r.gone === true) return { sample: { gone: true }, info }
    info = r.info
    if (r.bytes === undefined) return { sample: { before, after: undefined, ms: now() - started }, info }
    if (r.bytes !== before) moved = { at: now(), bytes: r.bytes }
  }
  // It did not move for a whole interval: it sent nothing since before the newcomer came.
  if (moved === undefined) return { sample: { before, after: before, ms: now() - started }, info }
  // Phase 2: the next refresh is at most one interval after the one just seen.
  await wait(moved.at + interval + pad - now(), deadline, now)
  const last = await server.read(holder, live, deadline)
  if (last.gone === true) return { sample: { gone: true }, info }
  return { sample: { before: moved.bytes, after: last.bytes, ms: now() - moved.at }, info: last.info }
}

/** Sleeps `ms`, unless that would pass the deadline. */
async function wait (ms: number, deadline: number, now: () => number): Promise<void> {
  if (now() + ms > deadline) throw new ProbeBoundError()
  await sleep(ms)
}
