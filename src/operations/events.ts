import type { Correction } from '../publishers/reconcile.js'
import type { PublisherEvent } from '../publishers/service.js'

/** One entry of the operator's events log: a publisher event, or a reconciliation correction. */
export type OperatorEvent =
  | (PublisherEvent & { seq: number, at: number })
  | (Correction & { type: 'correction', seq: number, at: number })

export type OperatorEventType = OperatorEvent['type']

/**
 * The most recent takeovers, evictions, refusals, API failures and reconciliation corrections, in a
 * ring buffer of fixed size: the oldest entry goes when a new one comes and the buffer is full.
 */
export class EventLog {
  readonly max: number
  readonly #ring: OperatorEvent[] = []
  #start = 0
  #seq = 0

  constructor (max: number) {
    this.max = max
  }

  /** Entries ever added (also the `seq` of the newest one). */
  get total (): number {
    return this.#seq
  }

  add (event: (PublisherEvent | (Correction & { type: 'correction' })) & { at?: number | undefined }, at: number): void {
    const entry = { ...event, at: event.at ?? at, seq: ++this.#seq } as OperatorEvent
    if (this.#ring.length < this.max) {
      this.#ring.push(entry)
    } else {
      this.#ring[this.#start] = entry
      this.#start = (this.#start + 1) % this.max
    }
  }

  /** Newest first, at most `limit`, optionally only of some types. */
  list (limit: number, types?: ReadonlySet<string>): OperatorEvent[] {
    const out: OperatorEvent[] = []
    const n = this.#ring.length
    for (let i = n - 1; i >= 0 && out.length < limit; i--) {
      const e = this.#ring[(this.#start + i) % n]!
      if (types === undefined || types.has(e.type)) out.push(e)
    }
    return out
  }
}
