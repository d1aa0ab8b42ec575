import { MemoryEventStore, type EventStore, type ListedEvent, type StoredEvent } from '../operations/events.js'
import type { RedisLink } from './link.js'

/**
 * The operator's events log shared by the replicas: `GET events` on any of them shows them all.
 *
 *   {prefix}events       stream   fields s (seq), t (type, for people reading it), e (the event as JSON); MAXLEN ~ max
 *   {prefix}events-seq   integer  events ever added (the newest one's seq)
 *
 * add() is one script (INCR the sequence, XADD with approximate trimming, which is cheap; list()
 * reads no further back than the newest `max` entries, so the log behaves as capped at exactly
 * `max`). list() reads newest first (XREVRANGE) a chunk at a time until it has `limit` entries of
 * the types asked for. Both keys live as long as the deployment: the log is capped, not expired.
 *
 * When Redis cannot answer, add() keeps the event in the local twin only, and list() and total()
 * answer from the twin (this replica's events, numbered by this replica). Restarted empty, the log
 * and its numbering start over.
 */

export interface RedisEventStoreOptions {
  link: RedisLink
  /** Entries kept (EVENTS_MAX). */
  max: number
  /** The local twin (a MemoryEventStore of `max` unless given). */
  local?: EventStore
  /** Entries read per round trip by list(). */
  chunk?: number
}

/** KEYS: stream, seq. ARGV: event JSON, type, max. Returns the event's seq. */
const ADD = `
local seq = redis.call('incr', KEYS[2])
redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 's', seq, 't', ARGV[2], 'e', ARGV[1])
return seq
`

export class RedisEventStore implements EventStore {
  readonly max: number
  readonly #link: RedisLink
  readonly #local: EventStore
  readonly #chunk: number
  readonly #stream: string
  readonly #seq: string
  readonly #add

  constructor (opts: RedisEventStoreOptions) {
    this.max = opts.max
    this.#link = opts.link
    this.#local = opts.local ?? new MemoryEventStore(opts.max)
    this.#chunk = opts.chunk ?? 500
    this.#stream = opts.link.key('events')
    this.#seq = opts.link.key('events-seq')
    this.#add = opts.link.script('eventsAdd', 2, ADD)
  }

  async add (event: StoredEvent): Promise<void> {
    await this.#local.add(event)
    // An event that cannot be written as JSON (a BigInt in it) fails here, counted, never thrown.
    await this.#link.call('events.add', async (redis) =>
      await this.#add(redis, [this.#stream, this.#seq], [JSON.stringify(event), event.type, this.max]))
  }

  async list (limit: number, types?: ReadonlySet<string>): Promise<ListedEvent[]> {
    const out: ListedEvent[] = []
    let end = '+'
    let read = 0
    while (out.length < limit && read < this.max) {
      const count = Math.min(this.#chunk, this.max - read)
      const r = await this.#link.call('events.list', async (redis) => {
        const page = await redis.xrevrange(this.#stream, end, '-', 'COUNT', count)
        return page.map(([id, fields]) => ({ id, ...parse(fields) }))
      })
      if (!r.ok) return await this.#local.list(limit, types)
      for (const e of r.value) {
        if (types !== undefined && !types.has(e.type)) continue
        out.push({ ...e.event, seq: e.seq })
        if (out.length === limit) break
      }
      read += r.value.length
      if (r.value.length < count) break
      end = `(${r.value.at(-1)!.id}`
    }
    return out
  }

  async total (): Promise<number> {
    const r = await this.#link.call('events.total', async (redis) => Number(await redis.get(this.#seq)))
    return r.ok ? r.value : await this.#local.total()
  }
}

/** A stream entry's fields -> its seq, type and event. Throws on a malformed entry (the call falls back). */
function parse (fields: string[]): { seq: number, type: string, event: StoredEvent } {
  const f = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!)
  const event: unknown = JSON.parse(f.get('e') ?? '')
  const seq = Number(f.get('s'))
  if (typeof event !== 'object' || event === null || !Number.isSafeInteger(seq)) throw new TypeError('a malformed entry in the events log')
  return { seq, type: (event as StoredEvent).type, event: event as StoredEvent }
}
