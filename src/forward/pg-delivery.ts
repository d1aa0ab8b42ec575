import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Config } from '../config.js'
import type { Log } from '../logger.js'
import { bounded, checkDatabaseUrl } from '../recordings/database.js'
import type { PlatformClient, Target } from './client.js'
import { backoffMs, HOOK_CONCURRENCY, type DeliveryResult, type ForwardDelivery } from './delivery.js'
import type { Notice } from './outbox.js'
import { PgOutbox } from './pg-outbox.js'
import { verdictOf } from './verdict.js'

/**
 * Delivers the queue replicas share in PostgreSQL (PgOutbox), at least once, each lane in order,
 * whichever replica received its hooks. Every replica runs this loop: it claims lane heads (the
 * oldest waiting row of a lane, due, unclaimed or with a lapsed lease) with FOR UPDATE SKIP
 * LOCKED, so two replicas never hold one row at once, and a lane's next row is claimed only once
 * its head is delivered (or dead). A replica that dies holding a claim delivers nothing more: its
 * lease lapses after `leaseMs` and another replica claims the row; the platform may then receive
 * it twice, with the same Idempotency-Key.
 *
 * Wake-ups: a poll every `pollMs` (other replicas' rows, retries that fall due), and at once after
 * this replica's own additions and deliveries. While hooks are being answered (`hooksBusy`), this
 * replica claims no more than HOOK_CONCURRENCY rows in flight, as Delivery does (delivery.ts).
 */

/** How often each replica looks for rows to claim. */
export const POLL_MS = 200
/** How long a start waits for PostgreSQL at most before serving (and spooling). */
const START_BOUND_MS = 5000

/** The settings the shared queue is opened with. */
export type SharedQueueConfig = Pick<Config, 'DATABASE_POOL_MAX' | 'DATABASE_QUERY_TIMEOUT_MS' | 'DATABASE_SCHEMA' | 'DATABASE_URL' | 'DATABASE_WRITE_TIMEOUT_MS' | 'DATA_DIR' | 'FORWARD_OUTBOX_MAX' | 'FORWARD_TIMEOUT_MS' | 'SPOOL_RETRY_MS'>

/**
 * The queue replicas share, with DATABASE_URL: its outbox and this replica's delivery. A claim's
 * lease covers an attempt (FORWARD_TIMEOUT_MS) and the writes around it, twice over.
 */
export function openSharedQueue (config: SharedQueueConfig, common: Omit<PgDeliveryOptions, 'outbox' | 'leaseMs' | 'pollMs' | 'readMs' | 'startBoundMs'>): { outbox: PgOutbox, delivery: PgDelivery } {
  const outbox = PgOutbox.open({
    url: checkDatabaseUrl(config.DATABASE_URL!),
    schema: config.DATABASE_SCHEMA,
    queryTimeoutMs: config.DATABASE_QUERY_TIMEOUT_MS,
    writeTimeoutMs: config.DATABASE_WRITE_TIMEOUT_MS,
    retryMs: config.SPOOL_RETRY_MS,
    poolMax: config.DATABASE_POOL_MAX,
    dir: config.DATA_DIR,
    max: config.FORWARD_OUTBOX_MAX,
    log: common.log
  })
  const delivery = new PgDelivery({
    ...common,
    outbox,
    leaseMs: leaseMs(config),
    pollMs: POLL_MS,
    readMs: config.DATABASE_WRITE_TIMEOUT_MS,
    startBoundMs: Math.min(config.DATABASE_QUERY_TIMEOUT_MS, START_BOUND_MS)
  })
  return { outbox, delivery }
}

/** A claim's lease: 2 × (FORWARD_TIMEOUT_MS + DATABASE_WRITE_TIMEOUT_MS). */
export function leaseMs (config: Pick<Config, 'FORWARD_TIMEOUT_MS' | 'DATABASE_WRITE_TIMEOUT_MS'>): number {
  return 2 * (config.FORWARD_TIMEOUT_MS + config.DATABASE_WRITE_TIMEOUT_MS)
}

/** How often the queue's counts (depth, oldest, dead) are read at most. */
const STATS_MS = 1000
/** How often a decision hook looks whether its lane's earlier notifications are gone. */
const DRAIN_POLL_MS = 25

export interface PgDeliveryOptions {
  outbox: PgOutbox
  clients: Partial<Record<Target, PlatformClient>>
  concurrency: number
  timeoutMs: number
  maxAgeMs: number
  retryMaxMs: number
  /** How long a claim holds a row; past it, another replica may take it. */
  leaseMs: number
  pollMs: number
  /** Bound on a decision hook's read of its stream's queue. */
  readMs: number
  /** How long start() waits for PostgreSQL at most (then the queue is prepared in the background). */
  startBoundMs: number
  now: () => number
  log: Log
  /** Whether hooks are being answered, or were a moment ago: fewer deliveries are in flight then. */
  hooksBusy: () => boolean
  onResult?: (target: Target, result: DeliveryResult, ms: number) => void
  random?: () => number
}

export class PgDelivery implements ForwardDelivery {
  /** This replica in claimed_by: host, process, and a random part (a restarted process is another replica). */
  readonly replica = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`
  readonly lastError: Partial<Record<Target, { at: number, error: string, action: string }>> = {}
  readonly #o: PgDeliveryOptions
  #running = false
  #inflight = 0
  #claiming: Promise<void> | null = null
  #again = false
  #timer: NodeJS.Timeout | undefined
  #statsAt = -Infinity
  /** Why the last claim failed (logged once per outage); null while claims work. */
  #failure: string | null = null
  readonly #idle = new Set<() => void>()

  constructor (opts: PgDeliveryOptions) {
    this.#o = opts
  }

  get depth (): number {
    return this.#o.outbox.depth
  }

  oldestAgeMs (): number | null {
    const since = this.#o.outbox.oldestSince
    return since === null ? null : Math.max(0, this.#o.now() - since)
  }

  /** Prepares the queue (within startBoundMs, then in the background) and starts claiming. */
  async start (): Promise<void> {
    await this.#o.outbox.start(this.#o.startBoundMs)
    this.#running = true
    this.#wake()
  }

  added (): void {
    this.#wake()
  }

  /**
   * Resolves once every notification of `lane` waiting in the queue (or in this replica's spool)
   * when called is delivered or dead, whichever replica delivers it; false at `deadline`. A queue
   * that cannot be read within `readMs` (PostgreSQL down or hanging) is not waited for: false at
   * once, and the platform is asked with the time left (the order is then not known).
   */
  async drained (lane: string, deadline: number): Promise<boolean> {
    let last: number | null | undefined
    for (;;) {
      const left = deadline - this.#o.now()
      if (left <= 0) return false
      if (!this.#o.outbox.spooledIn(lane)) {
        const bound = Math.min(left, this.#o.readMs)
        try {
          last ??= await bounded(this.#o.outbox.lastOf(lane), bound, 'reading the stream\'s queue')
          if (last === null || !await bounded(this.#o.outbox.waitsUpTo(lane, last), bound, 'reading the stream\'s queue')) return true
        } catch {
          return false
        }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(DRAIN_POLL_MS, deadline - this.#o.now()))))
    }
  }

  /** Stops claiming and waits for the deliveries under way (each bounded by timeoutMs and the write bound). */
  async stop (): Promise<void> {
    this.#running = false
    clearTimeout(this.#timer)
    await this.#claiming
    if (this.#inflight === 0) return
    await new Promise<void>((resolve) => this.#idle.add(resolve))
  }

  /** Claims now (or right after the claim under way), then again after pollMs. */
  #wake (): void {
    if (!this.#running) return
    if (this.#claiming !== null) {
      this.#again = true
      return
    }
    clearTimeout(this.#timer)
    this.#claiming = this.#claim().finally(() => {
      this.#claiming = null
      if (!this.#running) return
      if (this.#again) {
        this.#again = false
        this.#wake()
      } else this.#timer = setTimeout(() => { this.#wake() }, this.#o.pollMs)
    })
  }

  async #claim (): Promise<void> {
    const now = this.#o.now()
    const o = this.#o
    try {
      if (now - this.#statsAt >= STATS_MS) {
        this.#statsAt = now
        await o.outbox.refresh()
      }
      const room = (o.hooksBusy() ? Math.min(o.concurrency, HOOK_CONCURRENCY) : o.concurrency) - this.#inflight
      if (room <= 0) return
      const rows = await o.outbox.claim(this.replica, now, o.leaseMs, room)
      if (this.#failure !== null) o.log.info({ database: o.outbox.where }, 'forwarding: the shared queue answers again')
      this.#failure = null
      for (const n of rows) {
        this.#inflight++
        void this.#deliver(n).catch((err: unknown) => {
          // Delivered or not, the row could not be updated: its lease lapses and it is tried again (with its key).
          o.log.warn({ err: (err as Error).message, seq: n.seq, lane: n.lane }, 'forwarding: the shared queue could not be updated after a delivery attempt; the notification is tried again when its claim lapses')
        }).finally(() => {
          this.#inflight--
          if (this.#inflight === 0) {
            for (const wake of this.#idle) wake()
            this.#idle.clear()
          }
          this.#wake()
        })
      }
    } catch (err) {
      const msg = (err as Error).message
      if (this.#failure === null) o.log.warn({ err: msg, database: o.outbox.where }, 'forwarding: the shared queue in PostgreSQL cannot be read; notifications wait (those received meanwhile in DATA_DIR/outbox.db)')
      this.#failure = msg
    }
  }

  async #deliver (n: Notice): Promise<void> {
    const o = this.#o
    const now = o.now()
    if (now - n.since > o.maxAgeMs) {
      // The row's own last failure (whichever replica tried it).
      const error = n.lastError ?? 'never tried'
      await o.outbox.kill(n.seq, this.replica, now, `older than FORWARD_MAX_AGE: ${error}`)
      o.log.error({ seq: n.seq, action: n.action, lane: n.lane, attempts: n.attempts, error }, 'forwarding: a notification could not be delivered within FORWARD_MAX_AGE; it is a dead letter now')
      o.onResult?.(n.target, 'dead', 0)
      return
    }
    const client = o.clients[n.target]
    const headers: Record<string, string> = { 'idempotency-key': n.key }
    if (n.replacedBy !== null) headers['x-srs-hooks-replaced-by'] = n.replacedBy
    const answer = client === undefined
      ? { ok: false as const, kind: 'unreachable' as const, message: `no platform URL for ${n.target}'s hooks`, ms: 0 }
      : await client.post(n.action, n.body, o.timeoutMs, headers)
    const verdict = verdictOf(n.target, answer)
    if (verdict.kind === 'allow') {
      o.onResult?.(n.target, 'delivered', answer.ms)
      await o.outbox.done(n.seq)
      return
    }
    const error = verdict.kind === 'refuse' ? `refused: ${verdict.msg}` : verdict.msg
    this.lastError[n.target] = { at: now, error, action: n.action }
    o.onResult?.(n.target, verdict.kind === 'refuse' ? 'refused' : 'failed', answer.ms)
    const attempts = n.attempts + 1
    if (attempts === 1) o.log.warn({ seq: n.seq, action: n.action, lane: n.lane, error }, 'forwarding: the platform did not take a notification; retrying')
    await o.outbox.failed(n.seq, this.replica, attempts, o.now() + backoffMs(attempts, o.retryMaxMs, o.random ?? Math.random), error)
  }
}
