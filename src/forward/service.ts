import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { AppError, Codes } from '../errors.js'
import type { Log } from '../logger.js'
import type { PlatformCheck, PlatformRefusal } from '../publishers/media.js'
import type { PlatformClient, Target } from './client.js'
import type { ForwardDelivery } from './delivery.js'
import type { ForwardOutbox } from './outbox.js'
import { verdictOf, type Verdict } from './verdict.js'

/**
 * srs-hooks in front of the platform's own callback (docs/forwarding.md).
 *
 * - Decision hooks: the route's own checks run first (the handler); when they allow, the platform
 *   is asked (the hook's body unchanged) and its verdict is final. When the handler would evict a
 *   holder, it asks the platform before the eviction (PlatformCheck.beforeEviction), so a newcomer
 *   the platform refuses never costs the holder its stream. The platform is asked once per hook.
 * - Notification hooks: the handler runs, the hook is written to the outbox (durable), then
 *   answered; Delivery sends it on, in order per stream.
 * - A takeover's evicted publisher: its on_unpublish and on_close are not forwarded (the platform
 *   keeps the newcomer online).
 */

/** What a hook's log line holds (routes/callbacks.ts's HookLog). */
export interface ForwardLog {
  outcome: string
  code: number
  reason?: string | undefined
  [extra: string]: unknown
}

/** What the wrappers need of a hook's request. */
export interface ForwardRequest {
  body: unknown
  log: Log
  hookLog: ForwardLog | null
  rawBody?: string | null
  platform?: PlatformCheck | null
}

type Reply = { code: number, msg?: string | null } & Record<string, unknown>

/** SRS's hooks that can refuse, and ZLMediaKit's. */
const DECISIONS: Record<Target, ReadonlySet<string>> = {
  srs: new Set(['on_connect', 'on_publish', 'on_play']),
  zlm: new Set(['on_publish', 'on_play'])
}
/** The notifications forwarded; other hooks are srs-hooks' own and not forwarded. */
const NOTICES: Record<Target, ReadonlySet<string>> = {
  srs: new Set(['on_unpublish', 'on_close', 'on_stop', 'on_dvr', 'on_hls']),
  zlm: new Set(['on_stream_changed', 'on_record_mp4', 'on_record_ts', 'on_flow_report', 'on_stream_none_reader', 'on_stream_not_found',
    'on_server_started', 'on_server_keepalive', 'on_server_exited', 'on_send_rtp_stopped', 'on_rtp_server_timeout'])
}

/** How long a publish verdict asked at on_connect is kept for the on_publish that follows. */
const REMEMBER_MS = 60_000

export interface ForwardServiceOptions {
  clients: Partial<Record<Target, PlatformClient>>
  outbox: ForwardOutbox
  delivery: ForwardDelivery
  timeoutMs: number
  failMode: 'open' | 'closed'
  now: () => number
  log: Log
  /** Told of each decision asked of the platform: its outcome and how long it took. */
  onDecision?: (target: Target, outcome: string, ms: number) => void
  /** Told of each notification not forwarded (the evicted publisher's). */
  onSuppressed?: (action: string) => void
}

export class ForwardService {
  readonly clients: Partial<Record<Target, PlatformClient>>
  readonly outbox: ForwardOutbox
  readonly delivery: ForwardDelivery
  readonly #o: ForwardServiceOptions
  /** Publish verdicts asked at on_connect (SRS >= 7.0.62), by client, for its on_publish. */
  readonly #remembered = new LRUCache<string, { lane: string, refusal: PlatformRefusal | undefined }>({ max: 100_000, ttl: REMEMBER_MS })
  /** The stream each client was last seen on (on_close names none), for its lane. */
  readonly #clientLanes = new LRUCache<string, string>({ max: 200_000 })
  /** Publishers evicted by a takeover, and who took their stream. */
  readonly #replaced = new LRUCache<string, string>({ max: 100_000, ttl: 10 * 60_000 })

  constructor (opts: ForwardServiceOptions) {
    this.clients = opts.clients
    this.outbox = opts.outbox
    this.delivery = opts.delivery
    this.#o = opts
  }

  /** Whether `target`'s hooks are forwarded. */
  forwards (target: Target): boolean {
    return this.clients[target] !== undefined
  }

  /**
   * Wraps a hook's handler with forwarding: a decision hook asks the platform after the handler's
   * own checks allow; a notification is written to the outbox after the handler. Hooks that are
   * not forwarded (or a target without a URL) keep their handler as it is.
   */
  wrap<R extends ForwardRequest, T extends Reply> (target: Target, action: string, handler: (req: R) => Promise<T>): (req: R) => Promise<T> {
    if (!this.forwards(target)) return handler
    if (DECISIONS[target].has(action)) {
      return async (req) => {
        const gate = new Gate(this, target, action, req)
        req.platform = gate
        const reply = await handler(req)
        if (reply.code !== 0 && !gate.asked) return reply
        const refusal = await gate.ask()
        req.hookLog = { ...req.hookLog!, platform: gate.outcome, platformMs: gate.ms }
        if (refusal === undefined || reply.code !== 0) return target === 'zlm' && reply.code === 0 ? { ...gate.reply, ...reply } as T : reply
        req.hookLog = { ...req.hookLog, outcome: 'refused-platform', code: refusal.code, reason: refusal.msg }
        return { code: refusal.code, msg: refusal.msg } as T
      }
    }
    if (!NOTICES[target].has(action)) return handler
    return async (req) => {
      let reply: T | undefined
      let failure: unknown
      try {
        reply = await handler(req)
      } catch (err) {
        // A hook refused as malformed is not the platform's either; one srs-hooks failed to process is.
        if (!(err instanceof AppError) || err.statusCode < 500) throw err
        failure = err
      }
      const forwarded = await this.notify(target, action, req)
      if (failure !== undefined) throw failure
      req.hookLog = { ...req.hookLog!, ...forwarded }
      return reply!
    }
  }

  /** Dead letters back to their lanes (an operator's retry): `seqs`, or all of them. Returns how many. */
  async retry (seqs: number[] | 'all'): Promise<number> {
    let wanted = seqs
    if (wanted === 'all') {
      wanted = []
      for (let after = 0; ;) {
        const page = await this.outbox.dead(after, 1000)
        if (page.length === 0) break
        wanted.push(...page.map((n) => n.seq))
        after = page.at(-1)!.seq
      }
    }
    const revived = await this.outbox.revive(wanted, this.#o.now())
    for (const w of revived) this.delivery.added(w)
    return revived.length
  }

  /** A takeover is about to evict `holder` for `newcomer`: its own on_unpublish and on_close will not be forwarded. */
  evicting (holder: string, newcomer: string): void {
    this.#replaced.set(holder, newcomer)
  }

  /** Writes a notification to the outbox (or not, for an evicted publisher); throws a 503 AppError when it cannot. */
  async notify (target: Target, action: string, req: ForwardRequest): Promise<{ forward: string, replacedBy?: string }> {
    const b = req.body as Record<string, unknown>
    if (target === 'srs' && (action === 'on_unpublish' || action === 'on_close')) {
      const by = this.#replaced.get(String(b.client_id))
      if (by !== undefined) {
        this.#o.onSuppressed?.(action)
        return { forward: 'not-forwarded-replaced', replacedBy: by }
      }
    }
    const lane = this.laneOf(target, action, b)
    const at = this.#o.now()
    try {
      const seq = await this.outbox.add({ lane, target, action, body: req.rawBody ?? JSON.stringify(b), key: randomUUID(), at })
      this.delivery.added({ seq, lane, since: at, attempts: 0, nextAt: at })
      return { forward: 'queued' }
    } catch (err) {
      const e = err as Error & { code?: string }
      const msg = e.code === 'OUTBOX_FULL'
        ? `${e.message}: the platform has not taken notifications for a while; see /readyz and the forwarding status`
        : `the notification could not be written to the forwarding outbox: ${e.message}`
      throw new AppError(msg, Codes.FORWARD_NOT_QUEUED, 503, { cause: err })
    }
  }

  /** The stream a hook is about (its lane: the platform gets each lane's hooks in order). */
  laneOf (target: Target, action: string, b: Record<string, unknown>): string {
    const str = (v: unknown): string | undefined => typeof v === 'string' && v !== '' ? v : undefined
    if (target === 'zlm') {
      const app = str(b.app)
      const stream = str(b.stream)
      if (app === undefined || stream === undefined) return `zlm:server:${String(b.mediaServerId)}`
      const vhost = str(b.vhost) ?? '__defaultVhost__'
      return `zlm:${vhost === '__defaultVhost__' ? '' : vhost}/${app}/${stream}`
    }
    const client = String(b.client_id)
    const app = str(b.app)
    const stream = str(b.stream)
    if (app === undefined || stream === undefined) return this.#clientLanes.get(client) ?? `srs:client:${client}`
    const vhost = str(b.vhost) ?? '__defaultVhost__'
    // SRS's stream_url when sent, else the same built here; a player's extension dropped (as SRS's token key).
    const key = action === 'on_connect' || str(b.stream_url) === undefined
      ? `${vhost === '__defaultVhost__' ? '' : vhost}/${app}/${stream.replace(/\.(flv|m3u8|mp4|ts)$/, '')}`
      : str(b.stream_url)!
    const lane = `srs:${key}`
    this.#clientLanes.set(client, lane)
    return lane
  }

  /**
   * Asks the platform for its verdict on a decision hook, within FORWARD_TIMEOUT_MS: first the
   * stream's queued notifications are delivered (the platform sees SRS's order), then the hook.
   * No verdict (timeout, unreachable, garbage): FORWARD_FAIL_MODE.
   */
  async decide (target: Target, action: string, body: string, lane: string): Promise<{ refusal: PlatformRefusal | undefined, outcome: string, ms: number, reply: Record<string, unknown> | undefined }> {
    const started = this.#o.now()
    const deadline = started + this.#o.timeoutMs
    // Within the same bound: the platform is asked anyway once it runs out (and then says no in time).
    await this.delivery.drained(lane, deadline)
    const answer = await this.clients[target]!.post(action, body, deadline - this.#o.now())
    const v: Verdict = verdictOf(target, answer)
    const ms = this.#o.now() - started
    let r: { refusal: PlatformRefusal | undefined, outcome: string, reply: Record<string, unknown> | undefined }
    if (v.kind === 'allow') r = { refusal: undefined, outcome: 'allowed', reply: v.reply }
    else if (v.kind === 'refuse') {
      r = { refusal: { code: v.code ?? Codes.PLATFORM_REFUSED, msg: `refused by the platform (${v.msg})` }, outcome: 'refused', reply: undefined }
    } else if (this.#o.failMode === 'open') {
      this.#o.log.warn({ target, action, lane, err: v.msg }, 'forwarding: the platform could not be asked; FORWARD_FAIL_MODE=open allows')
      r = { refusal: undefined, outcome: 'failed-open', reply: undefined }
    } else {
      this.#o.log.warn({ target, action, lane, err: v.msg }, 'forwarding: the platform could not be asked; FORWARD_FAIL_MODE=closed refuses')
      r = { refusal: { code: Codes.PLATFORM_UNAVAILABLE, msg: `${v.msg}; FORWARD_FAIL_MODE=closed refuses what the platform cannot decide` }, outcome: 'failed-closed', reply: undefined }
    }
    this.#o.onDecision?.(target, r.outcome, ms)
    return { ...r, ms }
  }

  /** Keeps the publish verdict asked at a client's on_connect for its on_publish. */
  remember (client: string, lane: string, refusal: PlatformRefusal | undefined): void {
    this.#remembered.set(client, { lane, refusal })
  }

  /** The publish verdict asked at this client's on_connect, once. */
  recall (client: string, lane: string): { refusal: PlatformRefusal | undefined } | undefined {
    const r = this.#remembered.get(client)
    if (r === undefined || r.lane !== lane) return undefined
    this.#remembered.delete(client)
    return r
  }

  /**
   * The platform's check for a deferred takeover (SRS >= 7.0.62: a client the publish token
   * refused has left, and its retry should get the stream): an on_publish made of what its
   * on_connect said.
   */
  deferredCheck (c: { server: string, client: string, ip: string | undefined, vhost: string, app: string, stream: string, key: string }): PlatformCheck {
    const body = JSON.stringify({ server_id: c.server, action: 'on_publish', client_id: c.client, ip: c.ip ?? '', vhost: c.vhost, app: c.app, stream: c.stream, param: '', stream_url: c.key })
    let asked: Promise<PlatformRefusal | undefined> | undefined
    const ask = async (): Promise<PlatformRefusal | undefined> => {
      asked ??= this.decide('srs', 'on_publish', body, `srs:${c.key}`).then((r) => r.refusal)
      return await asked
    }
    return { ask, beforeEviction: async (holder) => { const r = await ask(); if (r === undefined) this.evicting(holder, c.client); return r } }
  }
}

/** One decision hook's questions to the platform: its own verdict, and (at on_connect) the publish verdict before an eviction; each asked once. */
class Gate implements PlatformCheck {
  readonly #svc: ForwardService
  readonly #target: Target
  readonly #action: string
  readonly #req: ForwardRequest
  readonly #lane: string
  #own: Promise<PlatformRefusal | undefined> | undefined
  #publish: Promise<PlatformRefusal | undefined> | undefined
  outcome = 'not-asked'
  ms = 0
  reply: Record<string, unknown> | undefined

  constructor (svc: ForwardService, target: Target, action: string, req: ForwardRequest) {
    this.#svc = svc
    this.#target = target
    this.#action = action
    this.#req = req
    this.#lane = svc.laneOf(target, action, req.body as Record<string, unknown>)
  }

  get asked (): boolean {
    return this.#own !== undefined
  }

  async ask (): Promise<PlatformRefusal | undefined> {
    this.#own ??= this.#ask()
    return await this.#own
  }

  async beforeEviction (holder: string): Promise<PlatformRefusal | undefined> {
    const own = await this.ask()
    if (own !== undefined) return own
    if (this.#target === 'srs' && this.#action === 'on_connect') {
      this.#publish ??= this.#askPublish()
      const r = await this.#publish
      if (r !== undefined) return r
    }
    this.#svc.evicting(holder, String((this.#req.body as Record<string, unknown>).client_id ?? (this.#req.body as Record<string, unknown>).id))
    return undefined
  }

  async #ask (): Promise<PlatformRefusal | undefined> {
    const b = this.#req.body as Record<string, unknown>
    if (this.#target === 'srs' && this.#action === 'on_publish') {
      const r = this.#svc.recall(String(b.client_id), this.#lane)
      if (r !== undefined) {
        this.outcome = r.refusal === undefined ? 'allowed-at-connect' : 'refused-at-connect'
        return r.refusal
      }
    }
    const r = await this.#svc.decide(this.#target, this.#action, this.#req.rawBody ?? JSON.stringify(b), this.#lane)
    this.outcome = r.outcome
    this.ms = Math.round(r.ms * 10) / 10
    this.reply = r.reply
    return r.refusal
  }

  /** SRS >= 7.0.62 evicts at on_connect, before SRS sends on_publish: the platform's publish verdict, from the on_connect's fields. */
  async #askPublish (): Promise<PlatformRefusal | undefined> {
    const b = this.#req.body as Record<string, unknown>
    const publish = {
      server_id: b.server_id,
      service_id: b.service_id,
      action: 'on_publish',
      client_id: b.client_id,
      ip: b.ip,
      vhost: b.vhost,
      app: b.app,
      tcUrl: b.tcUrl,
      stream: b.stream,
      param: b.param,
      stream_url: this.#lane.slice('srs:'.length)
    }
    const r = await this.#svc.decide('srs', 'on_publish', JSON.stringify(publish), this.#lane)
    this.#svc.remember(String(b.client_id), this.#lane, r.refusal)
    this.outcome = `${this.outcome},publish-${r.outcome}`
    return r.refusal
  }
}
