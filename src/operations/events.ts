/**
 * The operator's events log: the most recent takeovers, evictions, refusals, API failures and
 * reconciliation corrections. In process it is a ring buffer; with shared state every replica
 * writes to one capped log, so `GET events` on any replica shows them all.
 */

/** One entry as stored: its kind, when it happened, and what the emitter said about it. */
export type StoredEvent = Record<string, unknown> & { type: string, at: number }

/** An entry as listed: numbered in the order the log received them. */
export type ListedEvent = StoredEvent & { seq: number }

export interface EventStore {
  /** Entries kept at most; the oldest goes when a new one comes and the log is full. */
  readonly max: number
  add: (event: StoredEvent) => Promise<void>
  /** Newest first, at most `limit`, optionally only of some types. */
  list: (limit: number, types?: ReadonlySet<string>) => Promise<ListedEvent[]>
  /** Entries ever added (also the `seq` of the newest one). */
  total: () => Promise<number>
}

export class MemoryEventStore implements EventStore {
  readonly max: number
  readonly #ring: ListedEvent[] = []
  #start = 0
  #seq = 0

  constructor (max: number) {
    this.max = max
  }

  async total (): Promise<number> {
    return this.#seq
  }

  async add (event: StoredEvent): Promise<void> {
    const entry = { ...event, seq: ++this.#seq }
    if (this.#ring.length < this.max) {
      this.#ring.push(entry)
    } else {
      this.#ring[this.#start] = entry
      this.#start = (this.#start + 1) % this.max
    }
  }

  async list (limit: number, types?: ReadonlySet<string>): Promise<ListedEvent[]> {
    const out: ListedEvent[] = []
    const n = this.#ring.length
    for (let i = n - 1; i >= 0 && out.length < limit; i--) {
      const e = this.#ring[(this.#start + i) % n]!
      if (types === undefined || types.has(e.type)) out.push(e)
    }
    return out
  }
}
