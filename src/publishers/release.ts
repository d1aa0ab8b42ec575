import type { MediaServer, ReleaseKind, StreamRef } from './media.js'
import type { LiveStream } from './policy.js'
import type { Signals } from './signals.js'

/** How a release was seen ('timeout': it was not, within the bound), and after how long. */
export interface Release { via: 'hook' | 'api' | 'timeout', waitMs: number }

const POLL_FIRST_MS = 10
const POLL_MAX_MS = 200

/** Resolves after `ms` (at once if not positive), or as soon as `signal` aborts. */
export function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve()
    const timer = setTimeout(done, Math.max(0, ms))
    signal?.addEventListener('abort', done, { once: true })
    function done (): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
  })
}

export interface KickAndWait {
  server: MediaServer
  holder: string
  ref: StreamRef
  live: LiveStream
  kind: ReleaseKind
  signals: Signals
  deadline: number
  now: () => number
}

/**
 * Kicks `holder` and resolves once the server has released it in the sense of `kind`: a release
 * hook reached us (on any replica), or the server's API shows it; or at the deadline ('timeout').
 * A kick whose answer was lost (a timeout, a reset) may still have been carried out, so it is
 * waited for as if it had been; any other failure of the kick is thrown.
 */
export async function kickAndWait (k: KickAndWait): Promise<Release> {
  const stop = new AbortController()
  const started = k.now()
  try {
    // Listen before kicking: the holder's release hook can arrive before the kick's answer.
    const hooks = k.server.releaseTopics(k.holder, k.ref, k.kind).map((topic) => k.signals.wait(topic, stop.signal))
    const hook = Promise.race(hooks).then(() => 'hook' as const)
    try {
      await k.server.kick(k.holder, k.deadline)
    } catch (err) {
      if ((err as { unknownOutcome?: boolean }).unknownOutcome !== true) throw err
    }
    const via = await Promise.race([
      hook,
      poll(k, stop.signal),
      sleep(k.deadline - k.now(), stop.signal).then(() => 'timeout' as const)
    ])
    return { via, waitMs: k.now() - started }
  } finally {
    stop.abort()
  }
}

/**
 * Asks the server until it reports the release; never resolves otherwise. The hooks usually win;
 * this covers a lost or unconfigured release hook. A failed poll is not a release.
 */
async function poll (k: KickAndWait, signal: AbortSignal): Promise<'api'> {
  for (let pause = POLL_FIRST_MS; ; pause = Math.min(POLL_MAX_MS, pause * 2)) {
    await sleep(Math.min(pause, k.deadline - k.now()), signal)
    if (signal.aborted || k.now() >= k.deadline) return await new Promise(() => {})
    try {
      if (await k.server.released(k.holder, k.ref, k.live, k.kind, k.deadline)) return 'api'
    } catch {
      // Keep waiting for a hook, the next poll or the bound.
    }
  }
}
