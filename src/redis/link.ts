import { randomUUID } from 'node:crypto'
import { Redis, type ChainableCommander } from 'ioredis'
import type { Log } from '../logger.js'

/**
 * One connection to Redis per app, shared by every store, with the rules that keep Redis from
 * ever making a hook wait past its bound or fail:
 *
 * - commands are never queued while disconnected (`enableOfflineQueue: false`): they fail at once;
 * - every command (pipeline, script) is bounded by `timeoutMs`, by a timer of our own as well as
 *   ioredis' `commandTimeout`;
 * - after a failure the link is "down" and answers every call at once with a failure, without
 *   sending it, until Redis answers again: a reconnection (ioredis retries with a backoff) or, for
 *   a Redis that hangs with its connection open, a PING probe. So a hung Redis costs at most one
 *   bound per in-flight operation, not one per command;
 * - `call()` never throws: the caller gets an outcome and falls back to its local state.
 *
 * It tracks health for /readyz (up or down, since when, the last error), counts failures by
 * operation for /metrics, logs an outage once when it starts and once when it ends, and tells
 * listeners when Redis is back (the app reconciles then, to rebuild a table Redis may have lost).
 *
 * A second connection carries the subscriptions (release signals, lock notices): a connection
 * that subscribes can send nothing else.
 */

export const DEFAULT_PREFIX = 'srs-hooks:'
export const DEFAULT_TIMEOUT_MS = 250

/** How a call failed. `deadline`: the caller's own, shorter deadline passed (not a Redis failure). */
export type RedisFailureKind = 'unavailable' | 'timeout' | 'error' | 'deadline'

export class RedisLinkError extends Error {
  readonly kind: RedisFailureKind

  constructor (kind: RedisFailureKind, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RedisLinkError'
    this.kind = kind
  }
}

export type Outcome<T> =
  | { ok: true, value: T }
  | { ok: false, error: RedisLinkError }

export interface RedisHealth {
  /** Commands are being sent (the last one answered, or the connection just became ready). */
  up: boolean
  /** Epoch ms of the last change between up and down. */
  since: number
  /** What went wrong last (kept after recovery, for diagnostics). */
  lastError: string | null
  /** The subscription connection listens on every channel (signals and lock notices flow). */
  subscribed: boolean
}

export interface RecoveryInfo {
  /** How long Redis was unusable. */
  downMs: number
  /** What made it unusable. */
  error: string | null
}

export interface RedisLinkOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://`. */
  url: string
  log: Log
  /** Starts every key and channel (REDIS_PREFIX). */
  prefix?: string
  /** Bound on every command (REDIS_TIMEOUT_MS). */
  timeoutMs?: number
  now?: () => number
  /** Longest pause between two reconnection attempts (ms); they start at 50 ms and double. */
  reconnectMaxMs?: number
  /** While a connected Redis does not answer, how often it is probed with a PING (ms). */
  probeMs?: number
}

/** Replies that mean Redis cannot serve now (loading, failing over, out of memory...): an outage. */
const OUTAGE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|MISCONF|CLUSTERDOWN|TRYAGAIN|NOAUTH|WRONGPASS|NOPERM)\b/

type ScriptCall = (...args: Array<string | number>) => Promise<unknown>

/**
 * Makes a stream name, client id or server id safe in a key: `encodeURIComponent` (readable,
 * never a `:` or a space), or, for a string it cannot encode (a lone surrogate, which UTF-8 would
 * turn into U+FFFD and so collide with another name), `#` and the base64url of its UTF-16 code
 * units. Injective: distinct strings give distinct parts, so one name can never reach another's
 * key, nor leave the prefix.
 */
export function encodePart (s: string): string {
  try {
    return encodeURIComponent(s)
  } catch {
    return '#' + Buffer.from(s, 'utf16le').toString('base64url')
  }
}

/** The URL with its password replaced, for logs and /readyz. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable REDIS_URL)'
  }
}

export class RedisLink {
  /** This link's (this replica's) id, to tell its own messages from the others'. */
  readonly id = randomUUID()
  readonly prefix: string
  readonly timeoutMs: number
  /** REDIS_URL without its password. */
  readonly url: string
  readonly client: Redis
  readonly #sub: Redis
  readonly #log: Log
  readonly #now: () => number
  readonly #probeMs: number
  #state: 'connecting' | 'up' | 'down' | 'closed' = 'connecting'
  #since: number
  #lastError: string | null = null
  #subscribed = false
  #probe: NodeJS.Timeout | undefined
  readonly #failures = new Map<string, number>()
  readonly #degraded = new Map<string, number>()
  /** A PING is out to tell a slow reply from a hung Redis. */
  #suspect = false
  /** Operations whose (non-outage) error has been logged since they last succeeded. */
  readonly #erring = new Set<string>()
  readonly #channels = new Map<string, (message: string) => void>()
  readonly #recovered = new Set<(info: RecoveryInfo) => unknown>()
  readonly #resubscribed = new Set<() => void>()
  #outages = 0

  constructor (opts: RedisLinkOptions) {
    this.prefix = opts.prefix ?? DEFAULT_PREFIX
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.url = redactUrl(opts.url)
    this.#log = opts.log
    this.#now = opts.now ?? Date.now
    this.#since = this.#now()
    this.#probeMs = opts.probeMs ?? 500
    const reconnectMaxMs = opts.reconnectMaxMs ?? 1000
    this.client = new Redis(opts.url, {
      enableOfflineQueue: false,
      // call() bounds every command with its own timer; this one also frees commands that never
      // get a reply, and bounds the probe's PING and the subscriptions.
      commandTimeout: 2 * this.timeoutMs,
      // A command cut off by a lost connection fails at once, and is never sent again later (an
      // INCR or a lock taken after its caller gave up would be wrong).
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: Math.max(1000, 4 * this.timeoutMs),
      // A connection that has answered nothing for this long while commands (the probe's PINGs)
      // wait is dropped and made again: a half-open connection (Redis's host gone, or failed
      // over to another address) would otherwise hang until TCP keepalive gave up, minutes later.
      socketTimeout: Math.max(1000, 8 * this.timeoutMs),
      retryStrategy: (attempt) => Math.min(50 * 2 ** (attempt - 1), reconnectMaxMs),
      keepAlive: 10_000
    })
    this.client.on('ready', () => { this.#toUp() })
    this.client.on('error', (err: Error) => { this.#toDown(err.message) })
    // After an 'error' (refused, bad password...) the close says nothing more: keep the error.
    this.client.on('close', () => { this.#toDown('the connection to Redis closed', undefined, false) })

    this.#sub = this.client.duplicate({ autoResubscribe: false })
    this.#sub.on('ready', () => { this.#subscribeAll() })
    this.#sub.on('close', () => { this.#subscribed = false })
    // The main connection reports the outage; the subscriber's errors would say the same.
    this.#sub.on('error', () => {})
    this.#sub.on('message', (channel: string, message: string) => { this.#channels.get(channel)?.(message) })
  }

  /** The key of `type` for `parts`, each encoded (see encodePart), under the prefix. */
  key (type: string, ...parts: string[]): string {
    return parts.length === 0 ? this.prefix + type : `${this.prefix}${type}:${parts.map(encodePart).join(':')}`
  }

  /** The channel `name` under the prefix. */
  channel (name: string): string {
    return this.prefix + name
  }

  /**
   * Defines a Lua script on the connection (sent by SHA, by its text once per connection and again
   * after a NOSCRIPT, e.g. when Redis restarted empty) and returns a caller of it for call()'s fn.
   */
  script (name: string, numberOfKeys: number, lua: string): (r: Redis, keys: string[], args: Array<string | number>) => Promise<unknown> {
    const command = `srsHooks_${name}`
    this.client.defineCommand(command, { numberOfKeys, lua })
    return async (r, keys, args) => await (r as unknown as Record<string, ScriptCall>)[command]!(...keys, ...args)
  }

  /**
   * Runs `fn` against Redis within the bound, or within `deadlineMs` if that is shorter (the
   * caller's own budget: passing it is reported as `deadline` and is not a Redis failure). Never
   * throws. Anything `fn` throws (a malformed reply it could not parse) is a failure of `op`.
   */
  async call<T> (op: string, fn: (r: Redis) => Promise<T>, deadlineMs?: number): Promise<Outcome<T>> {
    if (this.#state !== 'up' || this.client.status !== 'ready') {
      if (this.#state !== 'closed') this.#count(op)
      return { ok: false, error: new RedisLinkError('unavailable', `Redis is unavailable: ${this.#lastError ?? 'not connected yet'}`) }
    }
    const limit = deadlineMs === undefined ? this.timeoutMs : Math.max(0, Math.min(this.timeoutMs, deadlineMs))
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<'expired'>((resolve) => { timer = setTimeout(resolve, limit, 'expired') })
    const run = (async () => await fn(this.client))().then(
      (value) => ({ value }),
      (err: unknown) => ({ err: err instanceof Error ? err : new RedisLinkError('error', String(err)) })
    )
    const r = await Promise.race([run, expired])
    clearTimeout(timer)
    if (r === 'expired') {
      if (limit < this.timeoutMs) return { ok: false, error: new RedisLinkError('deadline', `no reply within the caller's ${limit} ms`) }
      this.#count(op)
      const error = new RedisLinkError('timeout', `no reply within REDIS_TIMEOUT_MS=${this.timeoutMs}`)
      // One slow reply does not make Redis down for every operation: a PING decides.
      this.#check(error.message, op)
      return { ok: false, error }
    }
    if ('value' in r) {
      this.#erring.delete(op)
      return { ok: true, value: r.value }
    }
    this.#count(op)
    const error = new RedisLinkError('error', r.err.message, { cause: r.err })
    if (isOutage(r.err)) {
      this.#toDown(r.err.message, op)
    } else if (!this.#erring.has(op)) {
      // A reply we did not expect (a key of the wrong type, a malformed value): Redis works, this
      // operation does not. Logged once until it succeeds again; counted every time.
      this.#erring.add(op)
      this.#log.error({ redis: this.url, op, err: r.err.message }, 'a Redis operation failed; it uses this replica\'s local state instead')
    }
    return { ok: false, error }
  }

  /**
   * Whether the connection to Redis is lost (refused, closed), as opposed to open but not
   * answering in time: the only case in which shared locks may degrade to local ones.
   */
  get unreachable (): boolean {
    return this.client.status !== 'ready'
  }

  /** Counts a use of a degraded mode of `op` (a shared lock taken as a local one), for /metrics. */
  degrade (op: string): void {
    this.#degraded.set(op, (this.#degraded.get(op) ?? 0) + 1)
  }

  /** Degraded uses by operation, since start. */
  get degraded (): Record<string, number> {
    return Object.fromEntries(this.#degraded)
  }

  /** Listens on channel `name` (under the prefix), now and after every reconnection. */
  subscribe (name: string, handler: (message: string) => void): void {
    this.#channels.set(this.channel(name), handler)
    if (this.#sub.status === 'ready') this.#subscribeAll()
  }

  /**
   * Calls `listener` each time Redis is back after being unusable (not on the first connection,
   * unless Redis could not be reached at first). Returns a function that removes it.
   */
  onRecovered (listener: (info: RecoveryInfo) => unknown): () => void {
    this.#recovered.add(listener)
    return () => { this.#recovered.delete(listener) }
  }

  /** Calls `listener` each time the subscriptions are (again) in place: messages sent meanwhile were lost. */
  onResubscribed (listener: () => void): () => void {
    this.#resubscribed.add(listener)
    return () => { this.#resubscribed.delete(listener) }
  }

  get up (): boolean {
    return this.#state === 'up'
  }

  get health (): RedisHealth {
    return { up: this.#state === 'up', since: this.#since, lastError: this.#lastError, subscribed: this.#subscribed }
  }

  /** Failed calls by operation, since start (each fell back to local state). */
  get failures (): Record<string, number> {
    return Object.fromEntries(this.#failures)
  }

  /** Times Redis became unusable, since start. */
  get outages (): number {
    return this.#outages
  }

  /** For /readyz: whether shared state works, and if not, what is wrong, in words. */
  check (): { ok: boolean, msg: string } {
    if (this.#state !== 'up') {
      const since = new Date(this.#since).toISOString()
      return { ok: false, msg: `Redis at ${this.url} is unusable since ${since} (${this.#lastError ?? this.#state}); this replica uses its local state` }
    }
    if (!this.#subscribed) {
      return { ok: false, msg: `Redis at ${this.url} answers, but the subscription for release signals and lock notices is not in place yet` }
    }
    return { ok: true, msg: `Redis at ${this.url}` }
  }

  /** Closes both connections (pending replies get `timeoutMs` to arrive). Calls fail at once after. */
  async close (): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    clearTimeout(this.#probe)
    await Promise.all([this.client, this.#sub].map(async (r) => {
      if (r.status === 'ready') {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([
          r.quit().catch(() => {}),
          new Promise((resolve) => { timer = setTimeout(resolve, this.timeoutMs) })
        ])
        clearTimeout(timer)
      }
      r.disconnect()
    }))
  }

  #count (op: string): void {
    this.#failures.set(op, (this.#failures.get(op) ?? 0) + 1)
  }

  #toDown (reason: string, op?: string, replace = true): void {
    if (this.#state === 'closed') return
    if (this.#state === 'down') {
      if (replace) this.#lastError = reason
      return
    }
    this.#lastError = reason
    const first = this.#state === 'connecting'
    this.#state = 'down'
    this.#since = this.#now()
    this.#outages++
    this.#log.warn({ redis: this.url, op, err: reason },
      first ? 'cannot reach Redis; each replica uses its local state until it can' : 'Redis failed; this replica uses its local state until Redis answers again')
    this.#scheduleProbe(0)
  }

  /** After a call timed out: down only if a PING gets no answer within the bound either. */
  #check (reason: string, op: string): void {
    if (this.#suspect || this.#state !== 'up') return
    this.#suspect = true
    let timer: NodeJS.Timeout | undefined
    void Promise.race([
      this.client.ping().then(() => true, () => false),
      new Promise<false>((resolve) => { timer = setTimeout(resolve, this.timeoutMs, false) })
    ]).then((answered) => {
      clearTimeout(timer)
      this.#suspect = false
      if (!answered) this.#toDown(reason, op)
    })
  }

  /** On 'ready' (after connecting, or reconnecting after a close) or a probe's answer: never up or closed. */
  #toUp (): void {
    const wasDown = this.#state === 'down'
    const downMs = this.#now() - this.#since
    this.#state = 'up'
    this.#since = this.#now()
    clearTimeout(this.#probe)
    this.#probe = undefined
    if (!wasDown) {
      this.#log.info({ redis: this.url }, 'connected to Redis: state is shared with the other replicas')
      return
    }
    const info = { downMs, error: this.#lastError }
    this.#log.info({ redis: this.url, downMs }, 'Redis is back: state is shared again')
    for (const listener of this.#recovered) {
      void (async () => { await listener(info) })().catch((err: Error) => {
        this.#log.error({ err: err.message }, 'a listener for Redis\'s return failed')
      })
    }
  }

  /** While down with the connection open (a hung Redis), PINGs until it answers. */
  #scheduleProbe (delayMs: number): void {
    this.#probe = setTimeout(() => {
      this.#probe = undefined
      void this.#runProbe()
    }, delayMs)
    this.#probe.unref()
  }

  /** Runs only while down: coming up and closing both clear its timer. */
  async #runProbe (): Promise<void> {
    // A closed connection comes back through ioredis' reconnection, and its 'ready'.
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined
      const answered = await Promise.race([
        this.client.ping().then(() => true, () => false),
        new Promise<false>((resolve) => { timer = setTimeout(resolve, this.timeoutMs, false) })
      ])
      clearTimeout(timer)
      // Closed, or back through a reconnection, while the PING was out: a race between the PING's
      // answer and ioredis' own events that no test can order.
      /* c8 ignore next */
      if (this.#state !== 'down') return
      if (answered) {
        this.#toUp()
        return
      }
      this.#lastError = `no answer to a PING within REDIS_TIMEOUT_MS=${this.timeoutMs}`
    }
    this.#scheduleProbe(this.#probeMs)
  }

  #subscribeAll (): void {
    const channels = [...this.#channels.keys()]
    // Not listening on every channel until the reply (a channel just added, or a reconnection).
    this.#subscribed = channels.length === 0
    if (channels.length === 0) return
    this.#sub.subscribe(...channels).then(() => {
      this.#subscribed = true
      for (const listener of this.#resubscribed) listener()
    }, () => {
      // Redis hung or went away between the connection and the subscription: start over.
      this.#subscribed = false
      this.#sub.disconnect(true)
    })
  }
}

/**
 * Runs a pipeline or MULTI and returns its replies, throwing the first command's error (ioredis
 * reports them per command, beside the others' replies).
 */
export async function exec (batch: ChainableCommander): Promise<unknown[]> {
  const replies = await batch.exec()
  // Only a WATCHed transaction is ever aborted (null), and none is.
  /* c8 ignore next */
  if (replies === null) throw new RedisLinkError('error', 'the transaction was aborted')
  return replies.map(([err, value]) => {
    if (err !== null) throw err
    return value
  })
}

function isOutage (err: Error): boolean {
  if (err.name === 'ReplyError') return OUTAGE_REPLY.test(err.message)
  // Our own parsing of a reply (a malformed value under our prefix) is not an outage.
  return !(err instanceof SyntaxError || err instanceof TypeError || err instanceof RedisLinkError)
}
