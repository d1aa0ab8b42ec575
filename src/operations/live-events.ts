import { randomBytes } from 'node:crypto'
import type { StoredEvent } from './events.js'

/**
 * What happens, as it happens, for the readers of the events stream (GET events/stream, the
 * console): this replica's takeovers, refusals, evictions, failures, and its media servers and
 * Redis going down and coming back. Each event gets an id `<run>-<seq>`: `seq` counts up from 1
 * in this process, `run` is new at every start, so that a reader resuming with an id of an
 * earlier run is not taken for one that has seen everything up to that number. The most recent
 * `max` events are kept for readers that resume.
 */

export interface LiveEvent {
  /** `<run>-<seq>`. */
  id: string
  seq: number
  event: StoredEvent
}

export interface LiveReader {
  send: (e: LiveEvent) => void
  /** No more events: the server closes. */
  end: () => void
}

/** Where a resuming reader starts: after its last event, or (`gap`) from the oldest kept one when its events are gone. */
export interface Replay {
  events: LiveEvent[]
  /** Events the reader has not seen are no longer kept (or its id is of another run): it should reload what it shows. */
  gap: boolean
}

export class LiveEvents {
  readonly run: string
  readonly max: number
  readonly #ring: LiveEvent[] = []
  #start = 0
  #seq = 0
  readonly #readers = new Set<LiveReader>()

  constructor (max: number, run = randomBytes(4).toString('hex')) {
    this.max = max
    this.run = run
  }

  /** The newest event's seq (0 before the first). */
  get last (): number {
    return this.#seq
  }

  publish (event: StoredEvent): LiveEvent {
    const seq = ++this.#seq
    const entry = { id: `${this.run}-${seq}`, seq, event }
    if (this.#ring.length < this.max) {
      this.#ring.push(entry)
    } else {
      this.#ring[this.#start] = entry
      this.#start = (this.#start + 1) % this.max
    }
    for (const reader of this.#readers) reader.send(entry)
    return entry
  }

  /** Gives `reader` each event published from now on, until the returned function is called. */
  subscribe (reader: LiveReader): () => void {
    this.#readers.add(reader)
    return () => { this.#readers.delete(reader) }
  }

  /** Readers subscribed. */
  get readers (): number {
    return this.#readers.size
  }

  /** Ends every reader (the server closes). */
  end (): void {
    for (const reader of this.#readers) reader.end()
    this.#readers.clear()
  }

  /** The kept events, oldest first. */
  kept (): LiveEvent[] {
    const n = this.#ring.length
    const out: LiveEvent[] = []
    for (let i = 0; i < n; i++) out.push(this.#ring[(this.#start + i) % n]!)
    return out
  }

  /** The newest `n` kept events, oldest first. */
  newest (n: number): LiveEvent[] {
    return n <= 0 ? [] : this.kept().slice(-n)
  }

  /**
   * The events after `lastId` (a Last-Event-ID). An id this run never gave out (another run's, or
   * garbage) and an id older than the oldest kept event are gaps: every kept event is replayed.
   */
  after (lastId: string): Replay {
    const kept = this.kept()
    const m = /^([0-9a-f]+)-(\d{1,15})$/.exec(lastId.trim())
    const seq = m === null || m[1] !== this.run ? NaN : Number(m[2])
    if (Number.isNaN(seq) || seq > this.#seq) return { events: kept, gap: true }
    const oldest = kept[0]?.seq ?? this.#seq + 1
    return { events: kept.filter((e) => e.seq > seq), gap: seq < oldest - 1 }
  }
}
