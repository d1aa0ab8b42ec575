import { EventEmitter } from 'node:events'
import type { Log } from '../logger.js'
import type { Release } from './release.js'

/**
 * What the publisher side did, as one stream of events: the service emits each takeover,
 * eviction, refusal, API failure and correction once, and the counters, metrics, the operator's
 * events log and the log lines all subscribe to it.
 */

/** Where a takeover was decided: inside the publish hook, inside SRS's on_connect, or after a refused client left. */
export type TakeoverPath = 'publish' | 'connect' | 'deferred'

interface Where {
  /** The media server the stream is on (for a takeover: the newcomer's). */
  server: string
  /** The stream's url on that server. */
  stream: string
}

export type PublisherEvent = Where & { at: number } & (
  | {
    type: 'takeover' | 'takeover-timeout'
    path: TakeoverPath
    incumbent: string
    newcomer: string
    ip?: string | undefined
    waitMs: number
    via: Release['via']
    /** The incumbent's server, when it held the stream on another one. */
    from?: string | undefined
  }
  | { type: 'eviction', clientId: string, waitMs: number, via: Release['via'] }
  | { type: 'refusal', path: TakeoverPath, client: string, ip?: string | undefined, code: number, reason: string, msg: string }
  | { type: 'api-failure', client: string, kind: string, stage: string, path: TakeoverPath, err: string, failMode: 'open' | 'closed' }
  /** The bound ran out before a decision (waiting for the stream's lock, or for an answer): allowed, the server decides. */
  | { type: 'bound-exhausted', client: string, stage: string, path: TakeoverPath }
  | { type: 'correction', kind: 'added' | 'replaced' | 'dropped', clientId: string, previous?: string | undefined }
)

export type PublisherEventType = PublisherEvent['type']

export const EVENT_TYPES: readonly PublisherEventType[] = [
  'takeover', 'takeover-timeout', 'eviction', 'refusal', 'api-failure', 'bound-exhausted', 'correction'
]

/** Distributes PublisherEvents, each with the logger of the request it happened in. */
export class PublisherEvents {
  readonly #emitter = new EventEmitter<{ event: [PublisherEvent, Log] }>()

  emit (event: PublisherEvent, log: Log): void {
    this.#emitter.emit('event', event, log)
  }

  on (listener: (event: PublisherEvent, log: Log) => void): void {
    this.#emitter.on('event', listener)
  }
}

/** Counters of what happened, fed by the events; for tests, diagnostics and the metrics. */
export class PublisherStats {
  takeovers = 0
  takeoverTimeouts = 0
  boundExhausted = 0
  refusals = 0
  evictions = 0
  corrections = 0
  readonly apiFailures: Partial<Record<string, number>> = {}
  /** Takeovers by path (publish, connect, deferred). */
  readonly byPath: Partial<Record<TakeoverPath, number>> = {}

  constructor (events: PublisherEvents) {
    events.on((e) => this.#count(e))
  }

  #count (e: PublisherEvent): void {
    switch (e.type) {
      case 'takeover':
        this.takeovers++
        this.byPath[e.path] = (this.byPath[e.path] ?? 0) + 1
        break
      case 'takeover-timeout':
        this.takeoverTimeouts++
        break
      case 'eviction':
        this.evictions++
        break
      case 'refusal':
        this.refusals++
        break
      case 'api-failure':
        this.apiFailures[e.kind] = (this.apiFailures[e.kind] ?? 0) + 1
        break
      case 'bound-exhausted':
        this.boundExhausted++
        break
      case 'correction':
        this.corrections++
        break
    }
  }
}

/** The log line each event is told with, in the logger of the request it happened in. */
export function narrate (e: PublisherEvent, log: Log): void {
  switch (e.type) {
    case 'takeover':
      log.info(e, `takeover${e.path === 'publish' ? '' : ` at ${e.path === 'connect' ? 'on_connect' : 'the refused client\'s close'}`}: evicted the incumbent, stream released`)
      break
    case 'takeover-timeout':
      log.warn(e, 'evicted the incumbent but the server did not release the stream in time; allowing, the server decides')
      break
    case 'eviction':
      log.info(e, e.via === 'timeout' ? 'evicted on request; the server did not release the stream in time' : 'evicted on request, stream released')
      break
    case 'refusal': {
      const { msg, ...line } = e
      log.info(line, msg)
      break
    }
    case 'api-failure':
      log.warn(e, `the media server's API failed while trying to ${e.stage}`)
      break
    case 'bound-exhausted':
      log.warn(e, `the bound ran out while ${e.stage}; allowing, the server decides`)
      break
    case 'correction':
      // Reconciliation logs its corrections itself (the first ones at info, the rest at debug).
      break
  }
}
