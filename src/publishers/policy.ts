import { Codes } from '../errors.js'

/**
 * Who gets a stream when a newcomer publishes it: a pure function of what is known so far. The
 * service calls it as it learns more (credentials, then the media server's live state, then a staleness
 * sample) and does what the answer asks: look the stream up, probe the incumbent, evict, allow or
 * refuse.
 */

/** Who keeps a stream when a newcomer publishes it while another client holds it. */
export const POLICIES = ['takeover', 'takeover-stale', 'reject'] as const
export type Policy = typeof POLICIES[number]

/** What the media server's API says about the stream right now. */
export interface LiveStream {
  /** The server's own id for the stream (SRS's stream id), when known. */
  id?: string | undefined
  active: boolean
  /** Client (session) id of the active publisher. */
  holder?: string | undefined
  /** The stream's url as the server lists it (SRS >= 5.0.55). */
  url?: string | undefined
  /**
   * Set when the server says the holder must never be evicted (ZLMediaKit: a stream an RTP server
   * or a pull feeds, which has no session to kick): why, in words. The newcomer is refused.
   */
  keep?: string | undefined
}

/** What the publish authorisation concluded about the newcomer. */
export type Credentials =
  /** PUBLISH_AUTH=off: nothing to check. */
  | { kind: 'none' }
  | { kind: 'valid' }
  | { kind: 'invalid', code: number, msg: string }

/** The incumbent as far as known, for the words of a refusal. */
export interface IncumbentInfo {
  ip?: string | undefined
  /** Epoch ms since when it publishes. */
  since?: number | undefined
}

/**
 * The incumbent's received bytes read twice, `ms` apart. Undefined counts: the server did not say,
 * which is taken as "sending" (the incumbent keeps the stream). `gone`: the server no longer knows
 * the client.
 */
export type StaleSample =
  | { gone: true }
  | { gone?: false, before: number | undefined, after: number | undefined, ms: number }

/** The flap guard's view of the stream (see flap.ts). */
export interface FlapState {
  /** Epoch ms until which newcomers are refused; 0 when not cooling down. */
  coolingUntil: number
  /** Takeovers of the stream within FLAP_WINDOW_MS. */
  recent: number
  /** FLAP_MAX. */
  max: number
}

export type RefusalReason = 'credentials' | 'policy-reject' | 'incumbent-sending' | 'incumbent-newer' | 'flapping' | 'not-evictable'

export type Decision =
  /** Nobody else holds the stream: let the server go ahead. */
  | { kind: 'allow', reason: 'free' | 'own' }
  /** Someone else holds it and the newcomer should have it: evict `incumbent` first. */
  | { kind: 'evict', incumbent: string }
  /** The server's state of the stream is needed. */
  | { kind: 'lookup' }
  /** takeover-stale: whether `incumbent` is still sending is needed. */
  | { kind: 'probe', incumbent: string }
  /** The newcomer is refused. `trip`: this refusal starts a flap-guard cooldown. */
  | { kind: 'refuse', reason: RefusalReason, code: number, msg: string, trip?: boolean }

export interface DecisionInput {
  policy: Policy
  /** `app/stream` (with the vhost in front if not the default), for messages. */
  stream: string
  newcomer: string
  credentials?: Credentials
  /** Undefined until the server was asked. */
  live?: LiveStream
  incumbent?: IncumbentInfo
  sample?: StaleSample
  flap?: FlapState
  /**
   * Set for a deferred takeover without valid publish credentials (epoch ms of the client's
   * connect): the holder is evicted only on evidence, whatever the policy says: stalled (probed as
   * under takeover-stale) and publishing since before that connect.
   */
  connectedAt?: number | undefined
  now: number
}

export function decide (input: DecisionInput): Decision {
  const { credentials, live, newcomer, policy } = input
  // Nothing an unauthorised newcomer sends may cost an API call, let alone an eviction.
  if (credentials?.kind === 'invalid') return { kind: 'refuse', reason: 'credentials', code: credentials.code, msg: credentials.msg }
  if (live === undefined) return { kind: 'lookup' }
  if (!live.active || live.holder === undefined) return { kind: 'allow', reason: 'free' }
  if (live.holder === newcomer) return { kind: 'allow', reason: 'own' }
  const incumbent = live.holder
  if (live.keep !== undefined) return refuse('not-evictable', Codes.INCUMBENT_NOT_EVICTABLE, `${held(input)}; ${live.keep}`)
  if (policy === 'reject') {
    return refuse('policy-reject', Codes.INCUMBENT_KEPT, `${held(input)}; policy reject keeps the incumbent`)
  }
  const flap = input.flap
  if (flap !== undefined && flap.coolingUntil > input.now) {
    return refuse('flapping', Codes.TAKEOVER_FLAPPING,
      `${held(input)}; it changed hands more than ${flap.max} times recently, so takeovers are paused until ${clock(flap.coolingUntil)} (flap guard)`)
  }
  const evidence = input.connectedAt !== undefined
  if (policy === 'takeover-stale' || evidence) {
    const sample = input.sample
    if (sample === undefined) return { kind: 'probe', incumbent }
    if (sample.gone !== true) {
      const { before, after } = sample
      const why = evidence ? 'without publish credentials only a stalled holder is evicted' : 'policy takeover-stale'
      if (before === undefined || after === undefined || after > before) {
        const how = before === undefined || after === undefined ? 'may be sending (the server did not report its bytes)' : `is sending (${after - before} bytes in ${sample.ms} ms)`
        return refuse('incumbent-sending', Codes.INCUMBENT_SENDING, `${held(input)} and ${how}; ${why}`)
      }
      // The holder the client was refused for began before it: a later one (the camera's own
      // retry that got in meanwhile) is no evidence, nor one the server gives no start for.
      const since = input.incumbent?.since
      if (evidence && (since === undefined || since > input.connectedAt!)) {
        const when = since === undefined ? 'the server did not say since when' : `it began after this client connected at ${clock(input.connectedAt!)}`
        return refuse('incumbent-newer', Codes.INCUMBENT_KEPT, `${held(input)} and ${when}; without publish credentials only a holder publishing before the client connected is evicted`)
      }
    }
  }
  if (flap !== undefined && flap.recent >= flap.max) {
    return {
      ...refuse('flapping', Codes.TAKEOVER_FLAPPING,
        `${held(input)}; it changed hands ${flap.recent} times in a row, as when two live encoders share a stream, so the incumbent keeps it for now (flap guard)`),
      trip: true
    }
  }
  // The newest publisher wins: a reconnecting device replaces its own dead connection
  // ('takeover'), or the incumbent has stopped sending ('takeover-stale').
  return { kind: 'evict', incumbent }
}

function refuse (reason: RefusalReason, code: number, msg: string): Decision & { kind: 'refuse' } {
  return { kind: 'refuse', reason, code, msg }
}

/** "stream live/cam1 is published by 10.0.0.7 since 12:01:03 UTC" */
function held ({ stream, live, incumbent }: DecisionInput): string {
  const by = incumbent?.ip ?? `client ${live!.holder!}`
  const since = incumbent?.since === undefined ? '' : ` since ${clock(incumbent.since)}`
  return `stream ${stream} is published by ${by}${since}`
}

/** HH:MM:SS UTC */
function clock (ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`
}
