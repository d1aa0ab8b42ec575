import type { IncumbentInfo, LiveStream } from './policy.js'

/**
 * What the takeover core needs from a media server (SRS, ZLMediaKit), in the core's own words.
 * Each server kind has an adapter that speaks its API; the core never sees a hook body or an API
 * reply, and never knows which kind it talks to.
 */

/** A stream on one server, as its hooks name it. */
export interface StreamRef {
  /** The stream's url on the server: `[vhost]/app/stream`, the vhost left out when it is the default. */
  key: string
  vhost: string
  app: string
  stream: string
  /** The server's own id for the stream, when the hook carried one (SRS's stream_id). */
  streamId?: string | undefined
}

/** The publishing client as its publish hook names it. */
export interface Newcomer {
  id: string
  ip?: string | undefined
  /** Its source port, when the hook says (ZLMediaKit). */
  port?: number | undefined
}

/** The platform's refusal of a newcomer (forward/): a reply code and words. */
export interface PlatformRefusal {
  code: number
  msg: string
}

/**
 * The platform's verdict on a newcomer, when hooks are forwarded to it (forward/service.ts). Each
 * is asked at most once per hook, whoever asks first; undefined allows.
 */
export interface PlatformCheck {
  /** The platform's verdict on the hook itself. */
  ask: () => Promise<PlatformRefusal | undefined>
  /** Asked before `holder` is evicted for the newcomer: the platform's publish verdict (at on_connect, too). */
  beforeEviction: (holder: string) => Promise<PlatformRefusal | undefined>
}

/** Received bytes of a holder read once; `gone`: the server no longer knows it. */
export type HolderReading =
  | { gone: true }
  | { gone?: false, bytes: number | undefined, info: IncumbentInfo }

/**
 * Which release a takeover waits for: `publish` when the newcomer waits inside the publish hook
 * (the stream must be publishable again), `token` when it waits inside SRS's on_connect (SRS
 * >= 7.0.62 holds a per-stream publish token until the old client's connection is done).
 */
export type ReleaseKind = 'publish' | 'token'

/** How a call to the server's API failed (see errors.ts); thrown as the adapter's own error. */
export interface ApiFailure extends Error {
  /** unreachable, timeout, unauthorized, http_status, bad_body, api_code; or deadline: nothing was sent, the bound was used up. */
  readonly kind: string
  /** Whether the call may have been carried out although its answer was lost (a timeout, a reset). */
  readonly unknownOutcome?: boolean
}

/** A stream the server lists as actively published, for reconciliation. */
export interface PublishedStream {
  key: string
  vhost: string
  app: string
  stream: string
  holder: string
  streamId?: string | undefined
}

export interface MediaServer {
  /** 'srs' or 'zlm', for logs and metrics. */
  readonly kind: string
  /** The server's id (SRS's `server`, ZLMediaKit's `mediaServerId`). */
  readonly id: string
  /** How often the server refreshes the byte counters its API reports, in ms. */
  readonly statsIntervalMs: number
  /**
   * How long a publish hook of this server may take before the server gives up on it (ZLMediaKit's
   * hook.timeoutSec, less a margin); a takeover never takes longer. None: no limit (SRS waits 30 s).
   */
  readonly hookBudgetMs?: number | undefined
  /**
   * False when the server lists a publishing newcomer only after its own busy check (SRS before
   * 5.0.55), so that verify() cannot confirm the newcomer of a conflict: the hook's own evidence
   * (an authenticated caller, valid publish credentials) must stand in. Undefined: it lists it.
   */
  readonly listsNewcomer?: boolean | undefined
  /** The stream's state as the server reports it now. */
  live: (ref: StreamRef, deadline: number) => Promise<LiveStream>
  /**
   * Whether the server lists `newcomer` as a client publishing this very stream (the one `live`
   * found): a publish hook is the caller's word, and a forged one must evict nobody.
   */
  verify: (newcomer: Newcomer, ref: StreamRef, live: LiveStream, deadline: number) => Promise<boolean>
  /** The holder's received bytes and what the server says about it (address, since when). */
  read: (holder: string, live: LiveStream, deadline: number) => Promise<HolderReading>
  /** Asks the server to drop the holder; 'gone' when it no longer knew it. */
  kick: (holder: string, deadline: number) => Promise<'kicked' | 'gone'>
  /**
   * Whether the server has released the holder's stream in the sense of `kind` (the poll that
   * backs up the release hooks).
   */
  released: (holder: string, ref: StreamRef, live: LiveStream, kind: ReleaseKind, deadline: number) => Promise<boolean>
  /** The signal topics its hooks emit when the holder has released the stream in the sense of `kind`. */
  releaseTopics: (holder: string, ref: StreamRef, kind: ReleaseKind) => string[]
  /** Every stream the server lists as actively published, with its publisher. */
  published: () => Promise<PublishedStream[]>
}
