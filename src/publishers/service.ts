import type { Log } from '../logger.js'
import { Codes, type SrsApiError, type SrsErrorKind } from '../errors.js'
import { ALLOW, type HookReply } from '../srs/hooks.js'
import type { SrsApi, SrsClient } from '../srs/api.js'
import { KeyedLock } from './lock.js'
import { decide, type LiveStream, type Policy } from './policy.js'
import { ReleaseSignals } from './signals.js'
import type { PublisherStore } from './store.js'

/** A publish attempt as the on_publish hook describes it. */
export interface PublishRequest {
  /** SRS's stream_url, `[vhost]/app/stream`. */
  key: string
  vhost: string
  app: string
  stream: string
  clientId: string
  serverId?: string | undefined
  streamId?: string | undefined
  ip?: string | undefined
}

export type PublishOutcome =
  | 'allowed' // nobody else held the stream
  | 'took-over' // the incumbent was evicted and SRS released the stream
  | 'takeover-timeout' // evicted, release not seen within TAKEOVER_TIMEOUT_MS: allowed, SRS decides
  | 'lock-timeout' // another on_publish for the stream held it until the bound: allowed, SRS decides
  | 'api-failed-open' // SRS's API failed; FAIL_MODE=open allows
  | 'refused-api-failed' // SRS's API failed; FAIL_MODE=closed refuses
  | 'refused-unverified' // the newcomer is not a publishing client of SRS: nobody evicted

export interface PublishResult {
  reply: HookReply
  outcome: PublishOutcome
  /** Set when someone was evicted. */
  evicted?: string
  /** How the release was seen, and after how long. */
  release?: { via: 'hook' | 'api' | 'timeout', waitMs: number }
}

export interface PublisherServiceOptions {
  api: SrsApi
  store: PublisherStore
  log: Log
  now: () => number
  takeoverTimeoutMs: number
  failMode: 'open' | 'closed'
  policy?: Policy
}

export interface PublisherStats {
  takeovers: number
  takeoverTimeouts: number
  lockTimeouts: number
  refusals: number
  apiFailures: Partial<Record<SrsErrorKind, number>>
}

const POLL_FIRST_MS = 10
const POLL_MAX_MS = 200

/**
 * The publish path: detects a conflict against SRS's live state, evicts the incumbent and waits for
 * SRS to release the stream before the newcomer is allowed, all within TAKEOVER_TIMEOUT_MS.
 */
export class PublisherService {
  readonly store: PublisherStore
  readonly signals = new ReleaseSignals()
  readonly stats: PublisherStats = { takeovers: 0, takeoverTimeouts: 0, lockTimeouts: 0, refusals: 0, apiFailures: {} }
  readonly #lock = new KeyedLock()
  readonly #api: SrsApi
  readonly #log: Log
  readonly #now: () => number
  readonly #timeoutMs: number
  readonly #failMode: 'open' | 'closed'
  readonly #policy: Policy

  constructor (opts: PublisherServiceOptions) {
    this.store = opts.store
    this.#api = opts.api
    this.#log = opts.log
    this.#now = opts.now
    this.#timeoutMs = opts.takeoverTimeoutMs
    this.#failMode = opts.failMode
    this.#policy = opts.policy ?? 'takeover'
  }

  async publish (req: PublishRequest, log: Log = this.#log): Promise<PublishResult> {
    const deadline = this.#now() + this.#timeoutMs
    const unlock = await this.#lock.acquire(req.key, this.#timeoutMs)
    if (unlock === null) {
      this.stats.lockTimeouts++
      log.warn({ stream: req.key, client: req.clientId }, 'another on_publish for this stream held it until the bound; allowing, SRS decides')
      return { reply: ALLOW, outcome: 'lock-timeout' }
    }
    try {
      return await this.#publish(req, deadline, log)
    } finally {
      unlock()
    }
  }

  /** on_unpublish: the client let go of the stream. Removes the entry only if it is that client's. */
  async unpublish (key: string, clientId: string): Promise<boolean> {
    this.signals.released(clientId)
    return await this.store.deleteIfClient(key, clientId)
  }

  /** on_close: the client is gone. Removes whatever stream it published. */
  async closed (clientId: string): Promise<boolean> {
    this.signals.released(clientId)
    return (await this.store.deleteByClient(clientId)) !== undefined
  }

  async #publish (req: PublishRequest, deadline: number, log: Log): Promise<PublishResult> {
    let live: LiveStream
    try {
      live = await this.#liveState(req, deadline)
    } catch (err) {
      return this.#apiFailed(err, 'look up the stream', req, log)
    }
    const decision = decide({ policy: this.#policy, live, newcomer: req.clientId })
    if (decision.kind === 'allow') {
      await this.#record(req, false)
      return { reply: ALLOW, outcome: 'allowed' }
    }

    const incumbent = decision.incumbent
    let newcomer: SrsClient | null
    try {
      newcomer = await this.#api.client(req.clientId, { deadline })
    } catch (err) {
      return this.#apiFailed(err, 'verify the newcomer', req, log)
    }
    if (!publishes(newcomer, live, req)) {
      this.stats.refusals++
      const msg = `client ${req.clientId} is not publishing ${req.key} on SRS (stream held by ${incumbent}); nobody was evicted`
      log.warn({ stream: req.key, client: req.clientId, incumbent }, msg)
      return { reply: { code: Codes.PUBLISHER_NOT_VERIFIED, msg }, outcome: 'refused-unverified' }
    }

    const stop = new AbortController()
    const started = this.#now()
    try {
      // Listen before kicking: the incumbent's on_unpublish can arrive before the DELETE returns.
      const hook = this.signals.wait(incumbent, stop.signal).then(() => 'hook' as const)
      try {
        await this.#api.kick(incumbent, { deadline })
      } catch (err) {
        return this.#apiFailed(err, 'evict the incumbent', req, log)
      }
      const via = await Promise.race([
        hook,
        // A conflict is always on a stream SRS listed, so its id is known.
        this.#pollRelease(incumbent, live.id!, deadline, stop.signal),
        sleep(deadline - this.#now(), stop.signal).then(() => 'timeout' as const)
      ])
      const release = { via, waitMs: this.#now() - started }
      if (via === 'timeout') {
        this.stats.takeoverTimeouts++
        log.warn({ stream: req.key, incumbent, newcomer: req.clientId, waitMs: release.waitMs },
          'evicted the incumbent but SRS did not release the stream in time; allowing, SRS decides')
        await this.#record(req, true)
        return { reply: ALLOW, outcome: 'takeover-timeout', evicted: incumbent, release }
      }
      this.stats.takeovers++
      log.info({ stream: req.key, incumbent, newcomer: req.clientId, waitMs: release.waitMs, via }, 'takeover: evicted the incumbent, stream released')
      await this.#record(req, true)
      return { reply: ALLOW, outcome: 'took-over', evicted: incumbent, release }
    } finally {
      stop.abort()
    }
  }

  /** SRS's view of the stream: by stream_id when the hook carried one, else found by stream_url. */
  async #liveState (req: PublishRequest, deadline: number): Promise<LiveStream> {
    if (req.streamId !== undefined) {
      const s = await this.#api.stream(req.streamId, { deadline })
      return s === null ? { active: false } : { id: s.id, active: s.publish.active, cid: s.publish.cid }
    }
    // SRS < 5.0.55 sends no stream_id and lists no stream url: match app and name.
    const streams = await this.#api.allStreams({ deadline })
    const s = streams.find((x) => x.url !== undefined ? x.url === req.key : x.app === req.app && x.name === req.stream && x.publish.active)
    return s === undefined ? { active: false } : { id: s.id, active: s.publish.active, cid: s.publish.cid }
  }

  /**
   * Polls SRS until the stream is no longer actively published by the incumbent (or is gone);
   * never resolves otherwise. The hook signal usually wins; this covers a lost on_unpublish.
   */
  async #pollRelease (incumbent: string, streamId: string, deadline: number, signal: AbortSignal): Promise<'api'> {
    for (let pause = POLL_FIRST_MS; ; pause = Math.min(POLL_MAX_MS, pause * 2)) {
      await sleep(Math.min(pause, deadline - this.#now()), signal)
      if (signal.aborted || this.#now() >= deadline) return await new Promise(() => {})
      try {
        const s = await this.#api.stream(streamId, { deadline })
        if (s === null || !s.publish.active || s.publish.cid !== incumbent) return 'api'
      } catch {
        // A failed poll is not a release; keep waiting for the hook, the next poll or the bound.
      }
    }
  }

  async #record (req: PublishRequest, tookOver: boolean): Promise<void> {
    const previous = await this.store.get(req.key)
    await this.store.set({
      key: req.key,
      vhost: req.vhost,
      app: req.app,
      stream: req.stream,
      clientId: req.clientId,
      serverId: req.serverId,
      streamId: req.streamId,
      ip: req.ip,
      since: this.#now(),
      state: 'publishing',
      takeovers: (previous?.takeovers ?? 0) + (tookOver ? 1 : 0)
    })
  }

  #apiFailed (err: unknown, stage: string, req: PublishRequest, log: Log): PublishResult {
    // SrsApi reports every failure as an SrsApiError.
    const e = err as SrsApiError
    this.stats.apiFailures[e.kind] = (this.stats.apiFailures[e.kind] ?? 0) + 1
    log.warn({ stream: req.key, client: req.clientId, kind: e.kind, err: e.message, failMode: this.#failMode },
      `SRS API failed while trying to ${stage}`)
    if (this.#failMode === 'open') return { reply: ALLOW, outcome: 'api-failed-open' }
    this.stats.refusals++
    return {
      reply: { code: Codes.SRS_API_UNAVAILABLE, msg: `cannot ${stage}: ${e.message}; FAIL_MODE=closed refuses what it cannot check` },
      outcome: 'refused-api-failed'
    }
  }
}

/** Whether SRS lists `client` as a publisher of this very stream. */
function publishes (client: SrsClient | null, live: LiveStream, req: PublishRequest): boolean {
  if (client === null || !client.publish) return false
  return client.stream === live.id || client.url === req.key
}

/** Resolves after `ms` (at once if not positive), or when `signal` aborts. */
function sleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, ms))
    signal.addEventListener('abort', done, { once: true })
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
