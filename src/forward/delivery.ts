import type { Log } from '../logger.js'
import type { PlatformClient, Target } from './client.js'
import type { Notice, Outbox, Waiting } from './outbox.js'
import { verdictOf } from './verdict.js'

/**
 * Delivers the outbox's notifications to the platform, at least once: each stream's (each lane's)
 * in the order they were added, one at a time; up to `concurrency` lanes at once. A notification
 * is done when the platform answers it 2xx with code 0 (its contract's allow); anything else is
 * tried again after a backoff (exponential, with jitter, capped at `retryMaxMs`), until it is older
 * than `maxAgeMs`: then it becomes a dead letter and the lane moves on.
 *
 * What waits is kept in memory as sequence numbers per lane (the bodies stay on disk and are read
 * a few at a time), so a backlog of millions costs tens of MB, not its bodies.
 *
 * Hooks come first. The delivery runs on the event loop that answers hooks: were each answer from
 * the platform to start the next delivery at once, a drain (a backlog, the platform answering in
 * 1 ms) would keep FORWARD_CONCURRENCY deliveries going out as fast as answers come back, spend
 * the process's CPU on them, and hooks arriving meanwhile would queue behind (p99 788 ms against
 * 78 ms without a backlog, in the bench). So deliveries start only in turns of their own: a
 * setImmediate, which runs after the turn's I/O callbacks (the hook requests that arrived, the
 * SQLite worker's answers, replies being written), starts at most TURN_BUDGET of them, and the
 * next turn comes after the next round of I/O. While hooks are being answered, or were a moment
 * ago (`hooksBusy`), a turn starts HOOK_TURN_BUDGET only and no more than HOOK_CONCURRENCY are in
 * flight: the drain goes on, slower (HOOK_CONCURRENCY over the platform's answer time, which grows
 * as the CPU gets scarce), and a hook waits for a few deliveries at most, not for rounds of them.
 * The bodies a turn needs are read in one call to the outbox, and the delivered rows are removed
 * in one call per turn.
 */

/** The first retry's delay; each further one doubles it, up to retryMaxMs. */
const FIRST_RETRY_MS = 250
/** Notifications of a lane read from the file at once. */
const PREFETCH = 16
/** Deliveries started in one turn of the event loop when no hook waits. */
export const TURN_BUDGET = 16
/** Deliveries started in one turn while hooks are being answered. */
export const HOOK_TURN_BUDGET = 1
/** Deliveries in flight at most while hooks are being answered (FORWARD_CONCURRENCY if lower). */
export const HOOK_CONCURRENCY = 16

/** One delivery's result, for the metrics and the status. */
export type DeliveryResult = 'delivered' | 'failed' | 'refused' | 'dead'

interface Lane {
  waiting: Waiting[]
  /** Bodies read ahead, by seq. */
  loaded: Map<number, Notice>
  busy: boolean
  /** How many left the lane (delivered or dead) so far. */
  passed: number
  timer: NodeJS.Timeout | undefined
  waiters: Set<() => void>
}

/** What the service, the operator API, /readyz and the metrics use of a delivery: Delivery, or PgDelivery on the shared queue. */
export interface ForwardDelivery {
  /** Notifications waiting (not dead). */
  readonly depth: number
  /** The last failure per target, for the operator. */
  readonly lastError: Partial<Record<Target, { at: number, error: string, action: string }>>
  oldestAgeMs: () => number | null
  /** A notification just added (or revived). */
  added: (w: Waiting) => void
  /** Resolves once the lane's notifications added before the call are delivered (or dead), or false at `deadline`. */
  drained: (lane: string, deadline: number) => Promise<boolean>
  start: () => Promise<void>
  stop: () => Promise<void>
}

/** The first delay before trying a notification again after `attempts` failed ones: exponential, half of it random, capped. */
export function backoffMs (attempts: number, retryMaxMs: number, random: () => number): number {
  const cap = Math.min(retryMaxMs, FIRST_RETRY_MS * 2 ** Math.min(attempts - 1, 30))
  return Math.round(cap / 2 + random() * cap / 2)
}

export interface DeliveryOptions {
  outbox: Outbox
  clients: Partial<Record<Target, PlatformClient>>
  concurrency: number
  timeoutMs: number
  maxAgeMs: number
  retryMaxMs: number
  now: () => number
  log: Log
  /** Told of each attempt's result. */
  onResult?: (target: Target, result: DeliveryResult, ms: number) => void
  /** Jitter's source; Math.random by default. */
  random?: () => number
  /** Whether hooks are being answered, or were a moment ago (never when omitted): deliveries then give way. */
  hooksBusy?: () => boolean
}

export class Delivery implements ForwardDelivery {
  readonly #o: DeliveryOptions
  readonly #lanes = new Map<string, Lane>()
  /** Lanes whose head may be delivered now, in the order they became ready. */
  readonly #ready = new Set<string>()
  #inflight = 0
  #waiting = 0
  #running = false
  /** A turn of deliveries is scheduled. */
  #turn: NodeJS.Immediate | undefined
  /** Bodies wanted by this turn's deliveries (by seq, their lanes), read in one call; and its result. */
  #wanted = new Map<number, Lane>()
  #reading: Promise<void> | undefined
  /** Rows delivered since the last removal, removed in one call; and that call, scheduled. */
  #delivered: number[] = []
  #removal: NodeJS.Immediate | undefined
  readonly #idle = new Set<() => void>()
  /** The last failure per target, for the operator. */
  readonly lastError: Partial<Record<Target, { at: number, error: string, action: string }>> = {}

  constructor (opts: DeliveryOptions) {
    this.#o = opts
  }

  /** Takes in what the outbox holds (after a restart) and starts delivering. */
  async start (): Promise<void> {
    const rows = await this.#o.outbox.waiting()
    // Notifications added meanwhile are in the file too: merged, each once, in the file's order.
    const known = new Map<number, Waiting>()
    for (const w of rows) known.set(w.seq, w)
    for (const lane of this.#lanes.values()) for (const w of lane.waiting) known.set(w.seq, w)
    this.#lanes.clear()
    this.#waiting = 0
    this.#running = true
    for (const w of [...known.values()].sort((x, y) => x.seq - y.seq)) this.#push(w)
    this.#pump()
  }

  /** Notifications waiting (not dead). */
  get depth (): number {
    return this.#waiting
  }

  /** How long the oldest waiting notification has waited, in ms; null when none waits. */
  oldestAgeMs (): number | null {
    let oldest = Infinity
    for (const lane of this.#lanes.values()) {
      const head = lane.waiting[0]
      if (head !== undefined && head.since < oldest) oldest = head.since
    }
    return oldest === Infinity ? null : Math.max(0, this.#o.now() - oldest)
  }

  /** A notification just added to the outbox. */
  added (w: Waiting): void {
    this.#push(w)
    this.#pump()
  }

  /**
   * Resolves once every notification of `lane` added before this call is delivered (or dead), or
   * at `deadline` (false then). A decision hook waits so, to reach the platform in SRS's order.
   */
  async drained (lane: string, deadline: number): Promise<boolean> {
    const l = this.#lanes.get(lane)
    if (l === undefined || l.waiting.length === 0) return true
    const target = l.passed + l.waiting.length
    const passed = (): boolean => l.passed >= target
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { l.waiters.delete(check); resolve(false) }, Math.max(0, deadline - this.#o.now()))
      const check = (): void => {
        if (!passed()) return
        clearTimeout(timer)
        l.waiters.delete(check)
        resolve(true)
      }
      l.waiters.add(check)
    })
  }

  /** Stops starting deliveries and waits for those under way (each is bounded by timeoutMs). */
  async stop (): Promise<void> {
    this.#running = false
    clearImmediate(this.#turn)
    this.#turn = undefined
    for (const lane of this.#lanes.values()) clearTimeout(lane.timer)
    if (this.#inflight > 0) await new Promise<void>((resolve) => this.#idle.add(resolve))
    // What was delivered leaves the outbox before it closes.
    clearImmediate(this.#removal)
    await this.#removeDelivered()
  }

  #push (w: Waiting): void {
    let lane = this.#lanes.get(w.lane)
    if (lane === undefined) {
      lane = { waiting: [], loaded: new Map(), busy: false, passed: 0, timer: undefined, waiters: new Set() }
      this.#lanes.set(w.lane, lane)
    }
    lane.waiting.push(w)
    this.#waiting++
    if (lane.waiting.length === 1) this.#schedule(w.lane, lane)
  }

  /** Makes a lane ready now, or at its head's next attempt. */
  #schedule (name: string, lane: Lane): void {
    const head = lane.waiting[0]
    if (head === undefined || lane.busy || !this.#running) return
    const wait = head.nextAt - this.#o.now()
    if (wait <= 0) {
      this.#ready.add(name)
      return
    }
    clearTimeout(lane.timer)
    lane.timer = setTimeout(() => {
      lane.timer = undefined
      this.#ready.add(name)
      this.#pump()
    }, wait)
  }

  /** Schedules a turn of deliveries (one at a time), after the I/O callbacks already due. */
  #pump (): void {
    if (this.#turn !== undefined || !this.#running || this.#ready.size === 0) return
    this.#turn = setImmediate(() => {
      this.#turn = undefined
      this.#starts()
    })
  }

  /** One turn: starts up to its budget of deliveries, and schedules the next turn if more are ready. */
  #starts (): void {
    const busy = this.#o.hooksBusy?.() === true
    const limit = busy ? Math.min(this.#o.concurrency, HOOK_CONCURRENCY) : this.#o.concurrency
    let budget = busy ? HOOK_TURN_BUDGET : TURN_BUDGET
    while (this.#running && this.#inflight < limit && this.#ready.size > 0 && budget-- > 0) {
      const name = this.#ready.values().next().value as string
      this.#ready.delete(name)
      // Only #schedule makes a lane ready, and only an idle lane with a head: only its own delivery empties it.
      const lane = this.#lanes.get(name)!
      lane.busy = true
      this.#inflight++
      void this.#deliver(name, lane).catch((err: unknown) => {
        // The outbox's file failed (a read, a write): the notification stays and is tried again.
        this.#o.log.error({ err: (err as Error).message, lane: name }, 'forwarding: the outbox could not be read or written; retrying')
        const head = lane.waiting[0]
        if (head !== undefined) head.nextAt = this.#o.now() + this.#o.retryMaxMs
      }).finally(() => {
        lane.busy = false
        this.#inflight--
        this.#schedule(name, lane)
        this.#pump()
        if (this.#inflight === 0) {
          for (const wake of this.#idle) wake()
          this.#idle.clear()
        }
      })
    }
    // Otherwise the next answer schedules the next turn.
    if (this.#inflight < limit) this.#pump()
  }

  /** Reads the bodies of `lane`'s first waiting notifications, in one call with those the same turn wants. */
  async #read (lane: Lane): Promise<void> {
    for (const w of lane.waiting.slice(0, PREFETCH)) this.#wanted.set(w.seq, lane)
    this.#reading ??= Promise.resolve().then(async () => {
      const wanted = this.#wanted
      this.#wanted = new Map()
      this.#reading = undefined
      for (const r of await this.#o.outbox.get([...wanted.keys()])) wanted.get(r.seq)!.loaded.set(r.seq, r)
    })
    await this.#reading
  }

  /** Removes a delivered row from the outbox, in one call with the others delivered in the same turn. */
  #remove (seq: number): void {
    this.#delivered.push(seq)
    this.#removal ??= setImmediate(() => { void this.#removeDelivered() })
  }

  async #removeDelivered (): Promise<void> {
    this.#removal = undefined
    const seqs = this.#delivered
    if (seqs.length === 0) return
    this.#delivered = []
    // Not awaited by the deliveries: the next of a lane may go at once. Lost by a crash, they are delivered again, with their keys.
    await this.#o.outbox.done(seqs).catch((err: unknown) => {
      this.#o.log.warn({ err: (err as Error).message, seqs: seqs.length }, 'forwarding: delivered notifications could not be removed from the outbox; they will be delivered again')
    })
  }

  async #deliver (name: string, lane: Lane): Promise<void> {
    const head = lane.waiting[0]!
    let n = lane.loaded.get(head.seq)
    if (n === undefined) {
      await this.#read(lane)
      n = lane.loaded.get(head.seq)
      // Gone from the file (delivered by a process that shared it, or deleted): skipped.
      if (n === undefined) return this.#next(name, lane)
    }
    const now = this.#o.now()
    if (now - head.since > this.#o.maxAgeMs) {
      const error = this.lastError[n.target]?.error ?? 'not delivered'
      await this.#o.outbox.kill(head.seq, now, `older than FORWARD_MAX_AGE: ${error}`)
      this.#o.log.error({ seq: head.seq, action: n.action, lane: name, attempts: head.attempts, error }, 'forwarding: a notification could not be delivered within FORWARD_MAX_AGE; it is a dead letter now')
      this.#o.onResult?.(n.target, 'dead', 0)
      return this.#next(name, lane)
    }
    const client = this.#o.clients[n.target]
    const headers: Record<string, string> = { 'idempotency-key': n.key }
    if (n.replacedBy !== null) headers['x-srs-hooks-replaced-by'] = n.replacedBy
    const answer = client === undefined
      ? { ok: false as const, kind: 'unreachable' as const, message: `no platform URL for ${n.target}'s hooks`, ms: 0 }
      : await client.post(n.action, n.body, this.#o.timeoutMs, headers)
    const verdict = verdictOf(n.target, answer)
    if (verdict.kind === 'allow') {
      this.#o.onResult?.(n.target, 'delivered', answer.ms)
      this.#remove(head.seq)
      return this.#next(name, lane)
    }
    const error = verdict.kind === 'refuse' ? `refused: ${verdict.msg}` : verdict.msg
    this.lastError[n.target] = { at: now, error, action: n.action }
    this.#o.onResult?.(n.target, verdict.kind === 'refuse' ? 'refused' : 'failed', answer.ms)
    head.attempts++
    head.nextAt = this.#o.now() + backoffMs(head.attempts, this.#o.retryMaxMs, this.#o.random ?? Math.random)
    if (head.attempts === 1) this.#o.log.warn({ seq: head.seq, action: n.action, lane: name, error }, 'forwarding: the platform did not take a notification; retrying')
    await this.#o.outbox.failed(head.seq, head.attempts, head.nextAt, error)
  }

  /** The head is done with (delivered or dead): the lane's next one. */
  #next (name: string, lane: Lane): void {
    const head = lane.waiting.shift()!
    lane.loaded.delete(head.seq)
    lane.passed++
    this.#waiting--
    for (const wake of [...lane.waiters]) wake()
    // Keep no empty lanes: a lane per stream ever seen would grow without end.
    if (lane.waiting.length === 0 && lane.waiters.size === 0 && this.#lanes.get(name) === lane) this.#lanes.delete(name)
  }
}
