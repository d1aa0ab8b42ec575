import { MemorySignals, SIGNAL_MEMORY_MS, type Signals } from '../publishers/signals.js'
import type { RedisLink } from './link.js'

/**
 * Release signals shared by the replicas: a client's on_unpublish or on_close on any replica wakes
 * the takeover waiting for it on any other.
 *
 *   {prefix}signal:T     string  "1", PX SIGNAL_MEMORY_MS: T was emitted within the last minute
 *   channel {prefix}signals      "<replica id>\n<T>" for each emit
 *
 * emit() wakes this replica's waiters at once (the local twin), then sends one script (one round
 * trip, not awaited) that sets the marker and publishes the topic. Each replica listens on the one
 * channel (subscribed once, not per wait) and wakes its waiters of the topic. wait() registers the
 * waiter first and then reads the marker once, so a topic emitted on another replica just before
 * the wait counts, and one emitted during the read is heard on the channel. When the subscription
 * comes back after a disconnection (messages sent meanwhile are lost), the markers of every topic
 * waited for are read again.
 *
 * With Redis down, hung or restarted empty, signals still work within a replica; across replicas
 * a waiter falls back to what the caller races it with (the API poll). Nothing waits on Redis.
 */

export interface RedisSignalsOptions {
  link: RedisLink
  /** The local twin (a MemorySignals unless given). */
  local?: MemorySignals
}

/** KEYS: marker. ARGV: memory ms, channel, message. */
const EMIT = `
redis.call('set', KEYS[1], '1', 'PX', ARGV[1])
redis.call('publish', ARGV[2], ARGV[3])
return 1
`

export class RedisSignals implements Signals {
  readonly #link: RedisLink
  readonly #local: MemorySignals
  readonly #emit
  readonly #channel: string
  /** Topics waited for here, with how many waiters, to read their markers after a resubscription. */
  readonly #pending = new Map<string, number>()

  constructor (opts: RedisSignalsOptions) {
    const link = this.#link = opts.link
    this.#local = opts.local ?? new MemorySignals()
    this.#emit = link.script('signalEmit', 1, EMIT)
    this.#channel = link.channel('signals')
    link.subscribe('signals', (message) => {
      const nl = message.indexOf('\n')
      // Our own emits woke our waiters already; anything without a sender is not ours to read.
      if (nl === -1 || message.slice(0, nl) === link.id) return
      this.#local.emit(message.slice(nl + 1))
    })
    link.onResubscribed(() => {
      if (this.#pending.size > 0) void this.#check([...this.#pending.keys()])
    })
  }

  emit (topic: string): void {
    this.#local.emit(topic)
    void this.#link.call('signals.emit', async (redis) =>
      await this.#emit(redis, [this.#marker(topic)], [SIGNAL_MEMORY_MS, this.#channel, `${this.#link.id}\n${topic}`]))
  }

  wait (topic: string, signal: AbortSignal): Promise<void> {
    const woken = this.#local.wait(topic, signal)
    if (this.#local.seen(topic) || signal.aborted) return woken
    this.#pending.set(topic, (this.#pending.get(topic) ?? 0) + 1)
    // Once each: an aborted waiter is never woken, and a woken one stops listening for the abort.
    const done = (): void => {
      signal.removeEventListener('abort', done)
      const n = this.#pending.get(topic)! - 1
      if (n === 0) this.#pending.delete(topic)
      else this.#pending.set(topic, n)
    }
    signal.addEventListener('abort', done, { once: true })
    void woken.then(done)
    void this.#check([topic])
    return woken
  }

  get waiting (): number {
    return this.#local.waiting
  }

  /** Reads the markers of `topics` (one round trip) and wakes the waiters of those emitted. */
  async #check (topics: string[]): Promise<void> {
    const r = await this.#link.call('signals.check', async (redis) => await redis.mget(...topics.map((topic) => this.#marker(topic))))
    if (!r.ok) return
    r.value.forEach((v, i) => { if (v !== null) this.#local.emit(topics[i]!) })
  }

  #marker (topic: string): string {
    return this.#link.key('signal', topic)
  }
}
