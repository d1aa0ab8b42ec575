import type { Log } from '../logger.js'
import { Codes, SrsApiError, type SrsErrorKind } from '../errors.js'
import { ALLOW, type HookReply } from '../srs/hooks.js'
import type { SrsApi, SrsClient } from '../srs/api.js'
import type { FlapGuard } from './flap.js'
import { KeyedLock } from './lock.js'
import {
  decide, type Credentials, type Decision, type DecisionInput, type IncumbentInfo, type LiveStream, type Policy,
  type RefusalReason, type StaleSample
} from './policy.js'
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
  /** What publish authorisation concluded; by default nothing was required. */
  credentials?: Credentials
  /** The takeover policy for this stream's app; by default the service's. */
  policy?: Policy
}

export type PublishOutcome =
  | 'allowed' // nobody else held the stream
  | 'took-over' // the incumbent was evicted and SRS released the stream
  | 'takeover-timeout' // evicted, release not seen within TAKEOVER_TIMEOUT_MS: allowed, SRS decides
  | 'lock-timeout' // another on_publish for the stream held it until the bound: allowed, SRS decides
  | 'api-failed-open' // SRS's API failed; FAIL_MODE=open allows
  | 'refused-api-failed' // SRS's API failed; FAIL_MODE=closed refuses
  | 'refused-unverified' // the newcomer is not a publishing client of SRS: nobody evicted
  | `refused-${RefusalReason}` // bad credentials, policy reject, a sending incumbent, the flap guard

/** How a release was seen ('timeout': it was not, within the bound), and after how long. */
export interface Release { via: 'hook' | 'api' | 'timeout', waitMs: number }

export interface PublishResult {
  reply: HookReply
  outcome: PublishOutcome
  /** Set when someone was evicted. */
  evicted?: string
  release?: Release
}

export type EvictResult =
  | { outcome: 'released' | 'timeout', clientId: string, release: Release }
  /** SRS reports no active publisher for the stream. */
  | { outcome: 'not-published' }
  /** An on_publish of the stream held it for the whole bound. */
  | { outcome: 'busy' }

/** What the service did, for an events log or metrics. `at` is added when emitted. */
export type PublisherEvent = ({ at?: number }) & (
  | { type: 'takeover' | 'takeover-timeout', stream: string, incumbent: string, newcomer: string, ip?: string | undefined, waitMs: number, via: Release['via'] }
  | { type: 'eviction', stream: string, clientId: string, waitMs: number, via: Release['via'] }
  | { type: 'refusal', stream: string, client: string, ip?: string | undefined, code: number, msg: string }
  | { type: 'api-failure', stream: string, client: string, kind: SrsErrorKind, stage: string }
)

export interface PublisherServiceOptions {
  api: SrsApi
  store: PublisherStore
  log: Log
  now: () => number
  takeoverTimeoutMs: number
  failMode: 'open' | 'closed'
  policy?: Policy
  /** Called with every takeover, eviction, refusal and API failure. */
  onEvent?: (event: PublisherEvent) => void
  /** takeover-stale reads the incumbent's recv_bytes twice, this far apart; default 3500. */
  staleProbeMs?: number
  /** Stops two live encoders evicting each other; none: no guard. */
  flap?: FlapGuard | undefined
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
 * SRS refreshes the byte counters its API reports every 3 s (SrsServer::resample_kbps, timer tick
 * 8), so a probe must span more than that to see a sending publisher's bytes move.
 */
export const SRS_STATS_INTERVAL_MS = 3000
export const STALE_PROBE_DEFAULT_MS = 3500

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
  readonly #onEvent: (event: PublisherEvent) => void
  readonly #staleProbeMs: number
  readonly #flap: FlapGuard | undefined

  constructor (opts: PublisherServiceOptions) {
    this.store = opts.store
    this.#api = opts.api
    this.#log = opts.log
    this.#now = opts.now
    this.#timeoutMs = opts.takeoverTimeoutMs
    this.#failMode = opts.failMode
    this.#policy = opts.policy ?? 'takeover'
    this.#onEvent = opts.onEvent ?? (() => {})
    this.#staleProbeMs = opts.staleProbeMs ?? STALE_PROBE_DEFAULT_MS
    this.#flap = opts.flap
  }

  async publish (req: PublishRequest, log: Log = this.#log): Promise<PublishResult> {
    // takeover-stale watches the incumbent first (it still holds the stream meanwhile, so SRS's
    // source cleanup cannot drop it); the probe has its own time on top of the release bound.
    const budget = this.#timeoutMs + ((req.policy ?? this.#policy) === 'takeover-stale' ? this.#staleProbeMs : 0)
    const deadline = this.#now() + budget
    const unlock = await this.#lock.acquire(req.key, budget)
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
    const ctx: DecisionInput = {
      policy: req.policy ?? this.#policy,
      stream: req.key.replace(/^\//, ''),
      newcomer: req.clientId,
      credentials: req.credentials,
      now: this.#now()
    }
    // Bad credentials are refused before anything reaches SRS.
    let decision = decide(ctx)
    if (decision.kind === 'refuse') return await this.#refuse(req, ctx, decision, deadline, log)
    let live: LiveStream
    try {
      live = await this.#liveState(req, deadline)
    } catch (err) {
      return this.#apiFailed(err, 'look up the stream', req, log)
    }
    ctx.live = live
    ctx.flap = this.#flap?.state(req.key)
    ctx.now = this.#now()
    decision = decide(ctx)
    if (decision.kind === 'allow') {
      await this.#record(req, false)
      return { reply: ALLOW, outcome: 'allowed' }
    }
    if (decision.kind === 'refuse') return await this.#refuse(req, ctx, decision, deadline, log)

    // 'probe' or 'evict': both name the incumbent.
    const incumbent = (decision as { incumbent: string }).incumbent
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
      this.#emit({ type: 'refusal', stream: req.key, client: req.clientId, ip: req.ip, code: Codes.PUBLISHER_NOT_VERIFIED, msg })
      return { reply: { code: Codes.PUBLISHER_NOT_VERIFIED, msg }, outcome: 'refused-unverified' }
    }

    if (decision.kind === 'probe') {
      try {
        const probe = await this.#probe(incumbent, deadline)
        ctx.sample = probe.sample
        ctx.incumbent = probe.info
      } catch (err) {
        return this.#apiFailed(err, 'probe the incumbent', req, log)
      }
      ctx.now = this.#now()
      decision = decide(ctx)
      if (decision.kind === 'refuse') return await this.#refuse(req, ctx, decision, deadline, log)
    }

    let release: Release
    try {
      // A conflict is always on a stream SRS listed, so its id is known.
      release = await this.#kickAndWait(incumbent, live.id!, deadline)
    } catch (err) {
      return this.#apiFailed(err, 'evict the incumbent', req, log)
    }
    this.#flap?.record(req.key)
    const event = { stream: req.key, incumbent, newcomer: req.clientId, ip: req.ip, waitMs: release.waitMs, via: release.via }
    await this.#record(req, true)
    if (release.via === 'timeout') {
      this.stats.takeoverTimeouts++
      log.warn(event, 'evicted the incumbent but SRS did not release the stream in time; allowing, SRS decides')
      this.#emit({ type: 'takeover-timeout', ...event })
      return { reply: ALLOW, outcome: 'takeover-timeout', evicted: incumbent, release }
    }
    this.stats.takeovers++
    log.info(event, 'takeover: evicted the incumbent, stream released')
    this.#emit({ type: 'takeover', ...event })
    return { reply: ALLOW, outcome: 'took-over', evicted: incumbent, release }
  }

  /**
   * Refuses the newcomer with the decision's code and words; the incumbent is described (address,
   * since when) for those words. A flap-guard refusal that trips the guard starts its cooldown and
   * logs a warning, once per episode.
   */
  async #refuse (req: PublishRequest, ctx: DecisionInput, decision: Decision & { kind: 'refuse' }, deadline: number, log: Log): Promise<PublishResult> {
    let d = decision
    if (d.reason !== 'credentials' && ctx.incumbent === undefined) {
      ctx.incumbent = await this.#describe(ctx.live!.cid!, deadline)
      d = decide(ctx) as typeof d
    }
    if (d.trip === true) {
      const until = this.#flap!.trip(req.key)
      log.warn({ stream: req.key, incumbent: ctx.live!.cid, incumbentIp: ctx.incumbent!.ip, newcomer: req.clientId, newcomerIp: req.ip, until },
        'flap guard: two publishers keep taking this stream from each other; the incumbent keeps it and newcomers are refused during the cooldown')
    }
    this.stats.refusals++
    log.info({ stream: req.key, client: req.clientId, ip: req.ip, code: d.code, reason: d.reason }, d.msg)
    this.#emit({ type: 'refusal', stream: req.key, client: req.clientId, ip: req.ip, code: d.code, msg: d.msg })
    return { reply: { code: d.code, msg: d.msg }, outcome: `refused-${d.reason}` }
  }

  /** The incumbent's address and start as SRS reports them; nothing if SRS cannot say. */
  async #describe (cid: string, deadline: number): Promise<IncumbentInfo> {
    try {
      return infoOf(await this.#api.client(cid, { deadline }), this.#now())
    } catch {
      return {}
    }
  }

  /**
   * takeover-stale: reads the incumbent's received bytes twice, STALE_PROBE_MS apart (SRS's
   * kbps stays 0 for a publisher's first 30 s, so only the bytes tell). Throws an SrsApiError,
   * also when the probe cannot fit before the deadline.
   */
  async #probe (incumbent: string, deadline: number): Promise<{ sample: StaleSample, info: IncumbentInfo }> {
    const first = await this.#api.client(incumbent, { deadline })
    if (first === null) return { sample: { gone: true }, info: {} }
    const started = this.#now()
    await sleep(this.#staleProbeMs, new AbortController().signal)
    const second = await this.#api.client(incumbent, { deadline })
    if (second === null) return { sample: { gone: true }, info: infoOf(first, started) }
    const sample = { before: first.recv_bytes, after: second.recv_bytes, ms: this.#now() - started }
    return { sample, info: infoOf(second, this.#now()) }
  }

  /**
   * Kicks the publisher of `key` (an operator's or a pusher's request) and waits for SRS to release
   * the stream, with the same machinery and bound as a takeover. Failures of SRS's API are thrown
   * as SrsApiError.
   */
  async evict (key: string, log: Log = this.#log): Promise<EvictResult> {
    const deadline = this.#now() + this.#timeoutMs
    const unlock = await this.#lock.acquire(key, this.#timeoutMs)
    if (unlock === null) return { outcome: 'busy' }
    try {
      const entry = await this.store.get(key)
      const where = { key, app: entry?.app ?? '', stream: entry?.stream ?? '' }
      let live = await this.#liveState({ ...where, streamId: entry?.streamId }, deadline)
      // The table's stream id may predate an SRS restart: then look the stream up by its url.
      if (!live.active && entry?.streamId !== undefined) live = await this.#liveState(where, deadline)
      if (!live.active || live.cid === undefined) return { outcome: 'not-published' }
      const release = await this.#kickAndWait(live.cid, live.id!, deadline)
      const event = { stream: key, clientId: live.cid, waitMs: release.waitMs, via: release.via }
      log.info(event, release.via === 'timeout' ? 'evicted on request; SRS did not release the stream in time' : 'evicted on request, stream released')
      this.#emit({ type: 'eviction', ...event })
      return { outcome: release.via === 'timeout' ? 'timeout' : 'released', clientId: live.cid, release }
    } finally {
      unlock()
    }
  }

  /**
   * Kicks `incumbent` and resolves once SRS has released it: its on_unpublish or on_close reached
   * us, or SRS's API shows the stream no longer published by it; or at the deadline ('timeout').
   * Throws the kick's SrsApiError.
   */
  async #kickAndWait (incumbent: string, streamId: string, deadline: number): Promise<Release> {
    const stop = new AbortController()
    const started = this.#now()
    try {
      // Listen before kicking: the incumbent's on_unpublish can arrive before the DELETE returns.
      const hook = this.signals.wait(incumbent, stop.signal).then(() => 'hook' as const)
      await this.#api.kick(incumbent, { deadline })
      const via = await Promise.race([
        hook,
        this.#pollRelease(incumbent, streamId, deadline, stop.signal),
        sleep(deadline - this.#now(), stop.signal).then(() => 'timeout' as const)
      ])
      return { via, waitMs: this.#now() - started }
    } finally {
      stop.abort()
    }
  }

  /** SRS's view of the stream: by stream_id when the hook carried one, else found by stream_url. */
  async #liveState (req: Pick<PublishRequest, 'key' | 'app' | 'stream' | 'streamId'>, deadline: number): Promise<LiveStream> {
    if (req.streamId !== undefined) {
      const s = await this.#api.stream(req.streamId, { deadline })
      return s === null ? { active: false } : { id: s.id, active: s.publish.active, cid: s.publish.cid, url: s.url }
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
    this.#emit({ type: 'api-failure', stream: req.key, client: req.clientId, kind: e.kind, stage })
    if (this.#failMode === 'open') return { reply: ALLOW, outcome: 'api-failed-open' }
    this.stats.refusals++
    const msg = `cannot ${stage}: ${e.message}; FAIL_MODE=closed refuses what it cannot check`
    this.#emit({ type: 'refusal', stream: req.key, client: req.clientId, ip: req.ip, code: Codes.SRS_API_UNAVAILABLE, msg })
    return { reply: { code: Codes.SRS_API_UNAVAILABLE, msg }, outcome: 'refused-api-failed' }
  }

  #emit (event: PublisherEvent): void {
    this.#onEvent({ ...event, at: this.#now() })
  }
}

/** Address and start of a client SRS reported (`alive` is in seconds). */
function infoOf (client: SrsClient | null, now: number): IncumbentInfo {
  if (client === null) return {}
  return { ip: client.ip, since: client.alive === undefined ? undefined : now - Math.round(client.alive * 1000) }
}

/** Whether SRS lists `client` as a publisher of this very stream. */
function publishes (client: SrsClient | null, live: LiveStream, req: PublishRequest): boolean {
  if (client === null || !client.publish) return false
  // By SRS's own stream id: a hook's stream_url and stream_id are both the caller's word, and must
  // not be able to name one stream for the check and another for the eviction.
  return client.stream === live.id && (live.url === undefined || live.url === req.key)
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
