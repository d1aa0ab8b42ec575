import { Codes } from '../errors.js'
import type { Log } from '../logger.js'
import type { PendingConnect, PendingConnects } from './connects.js'
import { MemoryPendingConnects } from './connects.js'
import type { PublisherEvent, PublisherEvents, TakeoverPath } from './events.js'
import type { FlapGuard } from './flap.js'
import { MemoryLocks, type Locks, type Unlock } from './lock.js'
import type { ApiFailure, MediaServer, Newcomer, PlatformCheck, PlatformRefusal, ReleaseKind, StreamRef } from './media.js'
import {
  decide, type Credentials, type Decision, type DecisionInput, type IncumbentInfo, type LiveStream, type Policy,
  type RefusalReason
} from './policy.js'
import { probeBudget, probeHolder } from './probe.js'
import { kickAndWait, type Release } from './release.js'
import { MemorySignals, type Signals } from './signals.js'
import type { Publisher, PublisherStore } from './store.js'

export type { Release }

/** A publish attempt as the media server's publish hook (or SRS's on_connect) describes it. */
export interface PublishRequest {
  server: MediaServer
  ref: StreamRef
  newcomer: Newcomer
  /** What publish authorisation concluded; by default nothing was required. */
  credentials?: Credentials
  /** The takeover policy for this stream; by default the service's. */
  policy?: Policy
  /** The platform's verdict (hooks forwarded to it): asked after the own checks, before anyone is evicted. */
  platform?: PlatformCheck | null | undefined
  /** The hook's caller proved it is the media server (HOOK_TOKEN, HOOK_ALLOW): the client it names is real. */
  callerAuthenticated?: boolean
  /**
   * A deferred takeover without valid credentials: when the client connected. The holder is then
   * evicted only if it is stalled and was publishing before (policy.ts, connectedAt).
   */
  connectedAt?: number
}

export type PublishOutcome =
  | 'allowed' // nobody else held the stream
  | 'took-over' // the incumbent was evicted and the server released the stream
  | 'takeover-timeout' // evicted, release not seen within TAKEOVER_TIMEOUT_MS: allowed, the server decides
  | 'bound-exhausted' // the bound ran out waiting for the stream's lock or for an answer: allowed, the server decides
  | 'lost-race' // another replica took the stream over while this one waited for its lock: allowed, the server decides
  | 'api-failed-open' // the server's API failed; FAIL_MODE=open allows
  | 'refused-api-failed' // the server's API failed; FAIL_MODE=closed refuses
  | 'refused-unverified' // the newcomer is not a publishing client of the server: nobody evicted
  | 'refused-platform' // the platform's own callback refused the newcomer: nobody evicted
  | `refused-${RefusalReason}` // bad credentials, policy reject, a sending incumbent, the flap guard

/** What the service decided; the route turns it into the media server's reply. */
export interface PublishResult {
  allowed: boolean
  outcome: PublishOutcome
  /** Why not, when refused: a reply code (errors.ts) and words. */
  refusal?: { code: number, msg: string }
  /** Set when someone was evicted. */
  evicted?: string
  release?: Release
}

export type EvictResult =
  | { outcome: 'released' | 'timeout', clientId: string, release: Release }
  /** The server reports no active publisher for the stream. */
  | { outcome: 'not-published' }
  /** A takeover of the stream held it for the whole bound. */
  | { outcome: 'busy' }
  /** The server says the stream's feed is never evicted (LiveStream.keep): why. */
  | { outcome: 'not-evictable', why: string }

/** The media servers the service can reach, by id (for a stream held on another server). */
/** A takeover's ground: who holds the stream where, the policy, the bound, and the hook it runs in. */
interface Takeover {
  holderServer: MediaServer
  ref: StreamRef
  live: LiveStream
  policy: Policy
  /** On the service's clock (`now`); the platform's time is added to it. */
  deadline: number
  path: TakeoverPath
  log: Log
  /** The holder is on another server than the newcomer's (its publish is not listed there). */
  crossServer?: boolean
}

export interface ServerDirectory {
  get: (id: string) => MediaServer | undefined
  /** How many servers there are (a stream can be held on another one only when there are several). */
  readonly size: number
  /** Every server, for reconciliation. */
  all: () => MediaServer[]
  /** Asks the servers who they are again (before a reconciliation); never throws. */
  discover?: () => Promise<void>
}

/** The servers of every kind (SRS, ZLMediaKit), each kind keeping its own directory. */
export class ServerDirectories implements ServerDirectory {
  readonly #dirs: ServerDirectory[] = []

  add (dir: ServerDirectory): void {
    this.#dirs.push(dir)
  }

  get (id: string): MediaServer | undefined {
    for (const d of this.#dirs) {
      const s = d.get(id)
      if (s !== undefined) return s
    }
    return undefined
  }

  get size (): number {
    return this.#dirs.reduce((n, d) => n + d.size, 0)
  }

  all (): MediaServer[] {
    return this.#dirs.flatMap((d) => d.all())
  }

  async discover (): Promise<void> {
    await Promise.all(this.#dirs.map(async (d) => await d.discover?.()))
  }
}

export interface PublisherServiceOptions {
  store: PublisherStore
  events: PublisherEvents
  log: Log
  now: () => number
  takeoverTimeoutMs: number
  failMode: 'open' | 'closed'
  policy?: Policy
  /** The bound of takeover-stale's probe, on top of TAKEOVER_TIMEOUT_MS; by default two refreshes of the server's counters. */
  staleProbeMs?: number
  /** Stops two live encoders evicting each other; none: no guard. */
  flap?: FlapGuard | undefined
  /** This process's locks per stream; by default in process. */
  locks?: Locks
  /** Locks shared by the replicas, taken only to resolve a conflict; none: one process. */
  sharedLocks?: Locks | undefined
  signals?: Signals
  pending?: PendingConnects
  servers?: ServerDirectory
  /** A newcomer on one server for a stream held on another: take it over (default) or ignore it. */
  crossServer?: 'takeover' | 'ignore'
  /** How long asking the platform may add to a takeover (FORWARD_TIMEOUT_MS when hooks are forwarded). */
  platformMs?: number
}

/** Added to a lock's lease past the bound of the work it guards. */
const LEASE_MARGIN_MS = 1000

/**
 * The publish path, media-server neutral: detects a conflict against the server's live state,
 * evicts the incumbent and waits for the server to release the stream before the newcomer is
 * allowed, all within TAKEOVER_TIMEOUT_MS (plus the probe under takeover-stale).
 */
export class PublisherService {
  readonly store: PublisherStore
  readonly signals: Signals
  readonly pending: PendingConnects
  readonly #events: PublisherEvents
  readonly #locks: Locks
  readonly #shared: Locks | undefined
  readonly #log: Log
  readonly #now: () => number
  readonly #timeoutMs: number
  readonly #failMode: 'open' | 'closed'
  readonly #policy: Policy
  readonly #staleProbeMs: number | undefined
  readonly #flap: FlapGuard | undefined
  readonly #servers: ServerDirectory | undefined
  readonly #crossServer: 'takeover' | 'ignore'
  readonly #platformMs: number
  /** The platform's check for a deferred takeover (its newcomer has left: no hook to ask with); set when hooks are forwarded. */
  deferredPlatform: ((req: PublishRequest) => PlatformCheck) | undefined
  /** Deferred takeovers under way, so that closing can wait for them. */
  readonly #background = new Set<Promise<void>>()

  constructor (opts: PublisherServiceOptions) {
    this.store = opts.store
    this.#events = opts.events
    this.#log = opts.log
    this.#now = opts.now
    this.#timeoutMs = opts.takeoverTimeoutMs
    this.#failMode = opts.failMode
    this.#policy = opts.policy ?? 'takeover'
    this.#staleProbeMs = opts.staleProbeMs
    this.#flap = opts.flap
    this.#locks = opts.locks ?? new MemoryLocks()
    this.#shared = opts.sharedLocks
    this.signals = opts.signals ?? new MemorySignals()
    this.pending = opts.pending ?? new MemoryPendingConnects()
    this.#servers = opts.servers
    this.#crossServer = opts.crossServer ?? 'takeover'
    this.#platformMs = opts.platformMs ?? 0
  }

  /** The bound of one takeover under `policy` on `server`. */
  budget (policy: Policy, server: MediaServer): number {
    const budget = this.#timeoutMs + (policy === 'takeover-stale' ? this.#staleProbeMs ?? probeBudget(server.statsIntervalMs) : 0)
    return Math.min(budget, server.hookBudgetMs ?? budget)
  }

  /**
   * The publish hook: the newcomer waits inside it, so a conflict is resolved before the reply,
   * and the stream must be publishable again when the newcomer is allowed.
   */
  async publish (req: PublishRequest, log: Log = this.#log): Promise<PublishResult> {
    return await this.#serially(req, 'publish', log, async (deadline, policy) => {
      const live = await this.#lookup(req, req.ref, deadline, 'publish', log)
      if ('outcome' in live) return live
      return await this.#resolve(req, live, policy, deadline, 'publish', log)
    })
  }

  /**
   * SRS >= 7.0.62's on_publish: the publish token already guarantees one publisher per stream on
   * this server, so there is nothing to take over here; the publisher is recorded, and a stream
   * held on another server is still taken over.
   */
  async publishHoldingToken (req: PublishRequest, log: Log = this.#log): Promise<PublishResult> {
    return await this.#serially(req, 'publish', log, async (deadline, policy) => {
      // The hook's stream_id is its sender's word: the table keeps none until the server names it.
      return await this.#allow(req, { active: false }, policy, deadline, 'publish', log, true)
    })
  }

  /**
   * SRS >= 7.0.62's on_connect (RTMP): the newcomer is refused right after it unless the stream's
   * publish token is free, so the takeover happens here, for a client whose param carries valid
   * publish credentials. Any other client is answered at once; if it turns out to have been a
   * publisher refused by the token, its close starts a deferred takeover (see closed()).
   */
  async connect (req: PublishRequest, log: Log = this.#log): Promise<PublishResult> {
    const policy = req.policy ?? this.#policy
    const credentials = req.credentials ?? { kind: 'none' }
    await this.pending.add({
      server: req.server.id, clientId: req.newcomer.id, ref: req.ref, ip: req.newcomer.ip, credentials, policy, at: this.#now()
    })
    // A player, or a publisher without credentials: answered at once; judged if it closes refused.
    if (credentials.kind !== 'valid') return { allowed: true, outcome: 'allowed' }
    const result = await this.#serially(req, 'connect', log, async (deadline) => {
      const live = await this.#known(req, deadline, 'connect', log)
      if ('outcome' in live) return live
      return await this.#resolve(req, live, policy, deadline, 'connect', log)
    })
    // Taken over or refused here: its close (if SRS's token still refuses it) defers nothing.
    if (result.outcome !== 'allowed') await this.pending.decide(req.server.id, req.newcomer.id)
    return result
  }

  /** on_play (or on_publish) of a client: it was no publisher refused at its connect. Returns what its connect said. */
  async progressed (server: string, clientId: string): Promise<PendingConnect | undefined> {
    return await this.pending.progressed(server, clientId)
  }

  /** A release hook: wakes the takeovers waiting for `topics`, on every replica. */
  released (topics: string[]): void {
    for (const topic of topics) this.signals.emit(topic)
  }

  /** A client let go of a stream: removes the table's entry only if it is that client's. */
  async unpublished (server: string, key: string, clientId: string): Promise<boolean> {
    return await this.store.deleteIfClient(server, key, clientId)
  }

  /**
   * A client is gone: removes whatever stream it published; if it was a publisher refused at its
   * connect (it never played nor published), starts the deferred takeover in the background.
   * Resolves with whether an entry was removed and whether a deferred takeover started.
   */
  async closed (server: MediaServer, clientId: string, log: Log = this.#log): Promise<{ removed: boolean, deferred: boolean }> {
    const removed = (await this.store.deleteByClient(server.id, clientId)) !== undefined
    const p = await this.pending.take(server.id, clientId)
    if (p === undefined || p.decided === true) return { removed, deferred: false }
    const req: PublishRequest = { server, ref: p.ref, newcomer: { id: clientId, ip: p.ip }, credentials: p.credentials, policy: p.policy }
    // Without valid credentials its close is hearsay: only evidence on the holder may evict it.
    if (p.credentials.kind !== 'valid') req.connectedAt = p.at
    req.platform = this.deferredPlatform?.(req)
    const run = this.#deferred(req, p.policy, log).catch((err: unknown) => {
      /* c8 ignore next 2 */
      log.error({ err, stream: p.ref.key, client: clientId }, 'deferred takeover failed unexpectedly')
    })
    this.#background.add(run)
    void run.finally(() => this.#background.delete(run))
    return { removed, deferred: true }
  }

  /** Resolves once the deferred takeovers under way have ended (each is bounded). */
  async idle (): Promise<void> {
    await Promise.all([...this.#background])
  }

  /**
   * Kicks the publisher of `key` on `server` (an operator's or a pusher's request) and waits for
   * the server to release the stream, with the takeover's machinery and bound. API failures are
   * thrown.
   */
  async evict (server: MediaServer, key: string, log: Log = this.#log): Promise<EvictResult> {
    const deadline = this.#now() + this.#timeoutMs
    const unlock = await this.#lockBoth(this.#lockKey(server.id, key), this.#timeoutMs)
    if (unlock === null) return { outcome: 'busy' }
    try {
      const entry = await this.store.get(server.id, key)
      const ref = entry === undefined ? refOf(key) : { key, vhost: entry.vhost, app: entry.app, stream: entry.stream, streamId: entry.streamId }
      let live = await server.live(ref, deadline)
      // The table's stream id may predate a restart of the server: then look the stream up by its url.
      if (!live.active && ref.streamId !== undefined) live = await server.live({ ...ref, streamId: undefined }, deadline)
      if (!live.active || live.holder === undefined) return { outcome: 'not-published' }
      if (live.keep !== undefined) return { outcome: 'not-evictable', why: live.keep }
      const holder = live.holder
      const release = await kickAndWait({ server, holder, ref, live, kind: 'publish', signals: this.signals, deadline, now: this.#now })
      this.#emit({ type: 'eviction', server: server.id, stream: key, clientId: holder, waitMs: release.waitMs, via: release.via }, log)
      return { outcome: release.via === 'timeout' ? 'timeout' : 'released', clientId: holder, release }
    } finally {
      unlock()
    }
  }

  // ------------------------------------------------------------------ the steps

  /** Runs `work` holding the stream's lock in this process, within the request's bound. */
  async #serially (req: PublishRequest, path: TakeoverPath, log: Log, work: (deadline: number, policy: Policy) => Promise<PublishResult>): Promise<PublishResult> {
    const policy = req.policy ?? this.#policy
    // Bad credentials are refused before anything waits or reaches the server.
    const first = decide(this.#input(req, policy))
    if (first.kind === 'refuse') return await this.#refuse(req, this.#input(req, policy), first, 0, path, log)
    const budget = this.budget(policy, req.server)
    const deadline = this.#now() + budget
    const unlock = await this.#locks.acquire(this.#lockKey(req.server.id, req.ref.key), budget, budget + this.#platformMs + LEASE_MARGIN_MS)
    if (unlock === null) return this.#exhausted(req, 'waiting for the stream\'s lock (another takeover of it held it)', path, log)
    try {
      return await work(deadline, policy)
    } finally {
      unlock()
    }
  }

  /** The stream's state on the newcomer's server, or the result when the API failed. */
  async #lookup (req: PublishRequest, ref: StreamRef, deadline: number, path: TakeoverPath, log: Log): Promise<LiveStream | PublishResult> {
    try {
      return await req.server.live(ref, deadline)
    } catch (err) {
      return this.#apiFailed(err, 'look up the stream', req, path, log)
    }
  }

  /**
   * At on_connect the hook carries no stream id: the table says which stream of the server the
   * key names (no entry: nobody is known to publish it), and the server confirms.
   */
  async #known (req: PublishRequest, deadline: number, path: TakeoverPath, log: Log): Promise<LiveStream | PublishResult> {
    const entry = await this.store.get(req.server.id, req.ref.key)
    if (entry === undefined) return { active: false }
    const live = await this.#lookup(req, { ...req.ref, streamId: entry.streamId }, deadline, path, log)
    if ('outcome' in live || live.active || entry.streamId === undefined) return live
    // The table's stream id may predate a restart of the server: look the stream up by its url.
    return await this.#lookup(req, { ...req.ref, streamId: undefined }, deadline, path, log)
  }

  /** Decides on the newcomer's own server, taking the stream's shared lock when there is a conflict. */
  async #resolve (req: PublishRequest, live: LiveStream, policy: Policy, deadline: number, path: TakeoverPath, log: Log): Promise<PublishResult> {
    if (!conflict(live, req.newcomer.id)) return await this.#allow(req, live, policy, deadline, path, log)
    const unlock = await this.#lockShared(req, deadline)
    if (unlock === null) return this.#exhausted(req, 'waiting for the stream\'s lock held by another replica', path, log)
    try {
      let current = live
      if (unlock !== NO_UNLOCK) {
        // Another replica may have taken the stream over while this one waited.
        const again = path === 'connect' ? await this.#known(req, deadline, path, log) : await this.#lookup(req, req.ref, deadline, path, log)
        if ('outcome' in again) return again
        current = again
        if (!conflict(current, req.newcomer.id)) return await this.#allow(req, current, policy, deadline, path, log)
        // Someone else took it over meanwhile (two newcomers at once on two replicas): that race is
        // lost; evicting the winner too would make two evictions of one reconnect.
        if (current.holder !== live.holder) return this.#lostRace(req, current.holder!, path, log)
      }
      return await this.#takeover(req, { holderServer: req.server, ref: req.ref, live: current, policy, deadline, path, log })
    } finally {
      unlock()
    }
  }

  /**
   * The stream is free on the newcomer's server. When it is held on another server (and
   * CROSS_SERVER=takeover), that holder is taken over; else the newcomer is recorded and allowed.
   */
  async #allow (req: PublishRequest, live: LiveStream, policy: Policy, deadline: number, path: TakeoverPath, log: Log, carry = false): Promise<PublishResult> {
    if (this.#crossServer === 'takeover' && (this.#servers?.size ?? 0) > 1) {
      for (const entry of await this.store.holders(req.ref.key)) {
        if (entry.server === req.server.id) continue
        const other = this.#servers!.get(entry.server)
        if (other === undefined) continue
        const r = await this.#crossServerTakeover(req, live, other, entry, policy, deadline, path, log)
        if (r !== undefined) return r
      }
    }
    const refused = await req.platform?.ask()
    if (refused !== undefined) return this.#platformRefused(req, refused, path, log)
    // At on_connect the client may still be a player: its on_publish records it.
    if (path !== 'connect') await this.#record(req, live.id, 0, carry)
    return { allowed: true, outcome: 'allowed' }
  }

  /** The stream is held on `other` too: take it over there (the newcomer verified on its own server first). */
  async #crossServerTakeover (req: PublishRequest, ownLive: LiveStream, other: MediaServer, entry: Publisher, policy: Policy, deadline: number, path: TakeoverPath, log: Log): Promise<PublishResult | undefined> {
    const ref: StreamRef = { key: entry.key, vhost: entry.vhost, app: entry.app, stream: entry.stream, streamId: entry.streamId }
    let live: LiveStream
    try {
      live = await other.live(ref, deadline)
      if (!live.active && ref.streamId !== undefined) live = await other.live({ ...ref, streamId: undefined }, deadline)
    } catch (err) {
      // The other server cannot say: the newcomer's own server is free, so it is let in.
      this.#apiFailedEvent(err, `look up the stream on server ${other.id}`, req, path, log)
      return undefined
    }
    if (!live.active || live.holder === undefined) {
      await this.store.deleteIfClient(entry.server, entry.key, entry.clientId)
      return undefined
    }
    if (path === 'publish') {
      const verified = await this.#verify(req, ownLive, deadline, path, log)
      if (verified !== undefined) return verified
    }
    return await this.#takeover(req, { holderServer: other, ref, live, policy, deadline, path, log, crossServer: true })
  }

  /** The newcomer must be a publisher of this very stream on its server, or nobody is evicted. */
  async #verify (req: PublishRequest, live: LiveStream, deadline: number, path: TakeoverPath, log: Log): Promise<PublishResult | undefined> {
    let ok: boolean
    try {
      ok = await req.server.verify(req.newcomer, req.ref, live, deadline)
    } catch (err) {
      return this.#apiFailed(err, 'verify the newcomer', req, path, log)
    }
    if (ok) return undefined
    const unlisted = req.server.listsNewcomer === false
    if (unlisted) {
      // The server cannot list the newcomer yet: the hook itself is the evidence, or nothing is.
      const vouched = req.credentials?.kind === 'valid' ? 'credentials' : req.callerAuthenticated === true ? 'caller' : undefined
      if (vouched !== undefined) {
        log.debug({ server: req.server.id, stream: req.ref.key, client: req.newcomer.id, vouched }, 'the server lists no newcomer before its busy check; the hook vouches for it')
        return undefined
      }
    }
    const msg = `client ${req.newcomer.id} is not publishing ${req.ref.key} on server ${req.server.id}; nobody was evicted` + (unlisted ? UNLISTED_HINT : '')
    this.#emit({ type: 'refusal', path, server: req.server.id, stream: req.ref.key, client: req.newcomer.id, ip: req.newcomer.ip, code: Codes.PUBLISHER_NOT_VERIFIED, reason: 'unverified', msg }, log)
    return { allowed: false, outcome: 'refused-unverified', refusal: { code: Codes.PUBLISHER_NOT_VERIFIED, msg } }
  }

  /**
   * `live` is held by another client on `holderServer`: apply the policy (flap guard, probe) and,
   * if the newcomer should have the stream, evict the holder and wait for the release.
   */
  async #takeover (req: PublishRequest, t: Takeover): Promise<PublishResult> {
    const { holderServer, ref, live, policy, path, log, crossServer = false } = t
    let { deadline } = t
    const ctx = this.#input(req, policy)
    ctx.live = live
    ctx.flap = await this.#flap?.state(req.ref.key)
    ctx.now = this.#now()
    let decision = decide(ctx)
    if (decision.kind === 'refuse') return await this.#refuse(req, ctx, decision, deadline, path, log, holderServer)
    // 'probe' or 'evict': both name the incumbent.
    const holder = (decision as { incumbent: string }).incumbent
    // In the publish hook the server lists the newcomer: a forged hook must evict nobody. (At
    // on_connect it is not listed yet: valid credentials are what let it in.)
    if (path === 'publish' && !crossServer) {
      const refused = await this.#verify(req, live, deadline, path, log)
      if (refused !== undefined) return refused
    }
    if (decision.kind === 'probe') {
      try {
        const probe = await probeHolder(holderServer, holder, live, deadline, this.#now)
        ctx.sample = probe.sample
        ctx.incumbent = probe.info
      } catch (err) {
        return this.#apiFailed(err, 'probe the incumbent', req, path, log)
      }
      ctx.now = this.#now()
      decision = decide(ctx)
      if (decision.kind === 'refuse') return await this.#refuse(req, ctx, decision, deadline, path, log, holderServer)
    }
    // The platform has the last word before anyone is evicted; its time does not shorten the wait for the release.
    if (req.platform != null) {
      const asking = this.#now()
      const refused = await req.platform.beforeEviction(holder)
      if (refused !== undefined) return this.#platformRefused(req, refused, path, log)
      deadline += this.#now() - asking
    }
    const kind: ReleaseKind = path === 'publish' || crossServer ? 'publish' : 'token'
    let release: Release
    try {
      release = await kickAndWait({ server: holderServer, holder, ref, live, kind, signals: this.signals, deadline, now: this.#now })
    } catch (err) {
      return this.#apiFailed(err, 'evict the incumbent', req, path, log)
    }
    await this.#flap?.record(req.ref.key)
    // A deferred takeover's newcomer has gone: its retry will be recorded when it publishes.
    if (path !== 'deferred') await this.#record(req, crossServer ? undefined : live.id, 1)
    const event = {
      server: req.server.id,
      stream: req.ref.key,
      path,
      incumbent: holder,
      newcomer: req.newcomer.id,
      ip: req.newcomer.ip,
      waitMs: release.waitMs,
      via: release.via,
      from: crossServer ? holderServer.id : undefined
    }
    if (release.via === 'timeout') {
      this.#emit({ type: 'takeover-timeout', ...event }, log)
      return { allowed: true, outcome: 'takeover-timeout', evicted: holder, release }
    }
    this.#emit({ type: 'takeover', ...event }, log)
    return { allowed: true, outcome: 'took-over', evicted: holder, release }
  }

  /**
   * A client whose on_connect named a live stream closed without playing or publishing: SRS's
   * token refused it. The policy is applied to the holder so that the client's retry gets in.
   * Nobody waits on this; it is bounded like a takeover and reported as one.
   */
  async #deferred (req: PublishRequest, policy: Policy, log: Log): Promise<void> {
    if (policy === 'reject' || req.credentials?.kind === 'invalid') return
    // On evidence only (connectedAt), the holder is probed whatever the policy: its bound too.
    const budget = this.budget(req.connectedAt === undefined ? policy : 'takeover-stale', req.server)
    const deadline = this.#now() + budget
    const unlock = await this.#lockBoth(this.#lockKey(req.server.id, req.ref.key), budget)
    if (unlock === null) return
    try {
      const live = await this.#known(req, deadline, 'deferred', log)
      if ('outcome' in live || !conflict(live, req.newcomer.id)) return
      await this.#takeover(req, { holderServer: req.server, ref: req.ref, live, policy, deadline, path: 'deferred', log })
    } finally {
      unlock()
    }
  }

  /**
   * Refuses the newcomer with the decision's code and words; the incumbent is described (address,
   * since when) for those words. A flap-guard refusal that trips the guard starts its cooldown and
   * logs a warning, once per episode.
   */
  async #refuse (req: PublishRequest, ctx: DecisionInput, decision: Decision & { kind: 'refuse' }, deadline: number, path: TakeoverPath, log: Log, holderServer = req.server): Promise<PublishResult> {
    let d = decision
    if (d.reason !== 'credentials' && ctx.incumbent === undefined) {
      ctx.incumbent = await describe(holderServer, ctx.live!, deadline)
      d = decide(ctx) as typeof d
    }
    if (d.trip === true) {
      const until = await this.#flap!.trip(req.ref.key)
      log.warn({ stream: req.ref.key, incumbent: ctx.live!.holder, incumbentIp: ctx.incumbent!.ip, newcomer: req.newcomer.id, newcomerIp: req.newcomer.ip, until },
        'flap guard: two publishers keep taking this stream from each other; the incumbent keeps it and newcomers are refused during the cooldown')
    }
    this.#emit({ type: 'refusal', path, server: req.server.id, stream: req.ref.key, client: req.newcomer.id, ip: req.newcomer.ip, code: d.code, reason: d.reason, msg: d.msg }, log)
    return { allowed: false, outcome: `refused-${d.reason}`, refusal: { code: d.code, msg: d.msg } }
  }

  /**
   * Records the newcomer as the stream's publisher. The takeover count is carried from the entry
   * it replaces when it took the stream over, or (`carry`) when its connect may have. The stream's
   * id is the one the server named (`streamId`), never the hook's.
   */
  async #record (req: PublishRequest, streamId: string | undefined, tookOver: number, carry = false): Promise<void> {
    const previous = tookOver > 0 || carry ? await this.store.get(req.server.id, req.ref.key) : undefined
    await this.store.set({
      server: req.server.id,
      key: req.ref.key,
      vhost: req.ref.vhost,
      app: req.ref.app,
      stream: req.ref.stream,
      clientId: req.newcomer.id,
      streamId,
      ip: req.newcomer.ip,
      since: this.#now(),
      state: 'publishing',
      takeovers: (previous?.takeovers ?? 0) + tookOver
    })
  }

  #platformRefused (req: PublishRequest, refusal: PlatformRefusal, path: TakeoverPath, log: Log): PublishResult {
    this.#emit({ type: 'refusal', path, server: req.server.id, stream: req.ref.key, client: req.newcomer.id, ip: req.newcomer.ip, code: refusal.code, reason: 'platform', msg: refusal.msg }, log)
    return { allowed: false, outcome: 'refused-platform', refusal }
  }

  /** The API failed: a used-up bound allows (the server decides); anything else follows FAIL_MODE. */
  #apiFailed (err: unknown, stage: string, req: PublishRequest, path: TakeoverPath, log: Log): PublishResult {
    if ((err as ApiFailure).kind === 'deadline') return this.#exhausted(req, `trying to ${stage}`, path, log)
    const e = this.#apiFailedEvent(err, stage, req, path, log)
    if (this.#failMode === 'open') return { allowed: true, outcome: 'api-failed-open' }
    const msg = `cannot ${stage}: ${e.message}; FAIL_MODE=closed refuses what it cannot check`
    this.#emit({ type: 'refusal', path, server: req.server.id, stream: req.ref.key, client: req.newcomer.id, ip: req.newcomer.ip, code: Codes.SRS_API_UNAVAILABLE, reason: 'api-failed', msg }, log)
    return { allowed: false, outcome: 'refused-api-failed', refusal: { code: Codes.SRS_API_UNAVAILABLE, msg } }
  }

  #apiFailedEvent (err: unknown, stage: string, req: PublishRequest, path: TakeoverPath, log: Log): ApiFailure {
    // Adapters report every failure of their API as an ApiFailure.
    const e = err as ApiFailure
    this.#emit({ type: 'api-failure', server: req.server.id, stream: req.ref.key, client: req.newcomer.id, kind: e.kind, stage, path, err: e.message, failMode: this.#failMode }, log)
    return e
  }

  #lostRace (req: PublishRequest, winner: string, path: TakeoverPath, log: Log): PublishResult {
    log.info({ server: req.server.id, stream: req.ref.key, client: req.newcomer.id, winner, path },
      'another takeover of this stream won while this one waited for its lock; allowing, the server decides')
    return { allowed: true, outcome: 'lost-race' }
  }

  #exhausted (req: PublishRequest, stage: string, path: TakeoverPath, log: Log): PublishResult {
    this.#emit({ type: 'bound-exhausted', server: req.server.id, stream: req.ref.key, client: req.newcomer.id, stage, path }, log)
    return { allowed: true, outcome: 'bound-exhausted' }
  }

  #input (req: PublishRequest, policy: Policy): DecisionInput {
    return { policy, stream: req.ref.key.replace(/^\//, ''), newcomer: req.newcomer.id, credentials: req.credentials, connectedAt: req.connectedAt, now: this.#now() }
  }

  #lockKey (server: string, key: string): string {
    // Across servers one stream is one lock, so that two servers' takeovers of it take turns.
    return this.#crossServer === 'takeover' ? key : `${server}\n${key}`
  }

  /** The shared lock when there is one; NO_UNLOCK when there is none (one process). */
  async #lockShared (req: PublishRequest, deadline: number): Promise<Unlock | null> {
    if (this.#shared === undefined) return NO_UNLOCK
    const wait = deadline - this.#now()
    return await this.#shared.acquire(this.#lockKey(req.server.id, req.ref.key), wait, wait + LEASE_MARGIN_MS)
  }

  /** This process's lock, then the shared one, both within `waitMs`. */
  async #lockBoth (key: string, waitMs: number): Promise<Unlock | null> {
    const started = this.#now()
    const local = await this.#locks.acquire(key, waitMs, waitMs + LEASE_MARGIN_MS)
    if (local === null) return null
    if (this.#shared === undefined) return local
    const left = waitMs - (this.#now() - started)
    const shared = await this.#shared.acquire(key, left, left + LEASE_MARGIN_MS)
    if (shared === null) {
      local()
      return null
    }
    return () => { shared(); local() }
  }

  #emit (event: Unstamped, log: Log): void {
    this.#events.emit({ ...event, at: this.#now() } as PublisherEvent, log)
  }
}

/** An event before the service stamps its time. */
type Unstamped = PublisherEvent extends infer E ? E extends PublisherEvent ? Omit<E, 'at'> : never : never

const NO_UNLOCK: Unlock = () => {}

/** Why a newcomer the server cannot list yet was refused, and how to let it take over. */
const UNLISTED_HINT = ' (this server lists a publisher only after its busy check, as SRS before 5.0.55 does: to take over there,' +
  ' authenticate the hooks with HOOK_TOKEN or HOOK_ALLOW, or require publish credentials with PUBLISH_AUTH=keys or signed)'

function conflict (live: LiveStream, newcomer: string): boolean {
  return live.active && live.holder !== undefined && live.holder !== newcomer
}

/** The incumbent's address and start as the server reports them; nothing if it cannot say. */
async function describe (server: MediaServer, live: LiveStream, deadline: number): Promise<IncumbentInfo> {
  try {
    const r = await server.read(live.holder!, live, deadline)
    return r.gone === true ? {} : r.info
  } catch {
    return {}
  }
}

/** A stream named by its url alone: `[vhost]/app/stream`. */
export function refOf (key: string): StreamRef {
  // A key is `[vhost]/app/stream`: at least three parts.
  const parts = key.split('/')
  const stream = parts.pop()!
  const app = parts.pop()!
  const vhost = parts.join('/')
  return { key, vhost: vhost === '' ? '__defaultVhost__' : vhost, app, stream }
}
