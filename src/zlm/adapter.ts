import { LRUCache } from 'lru-cache'
import type { HolderReading, MediaServer, Newcomer, PublishedStream, ReleaseKind, StreamRef } from '../publishers/media.js'
import type { LiveStream } from '../publishers/policy.js'
import { refOf } from '../publishers/service.js'
import { streamUrl } from '../streams.js'
import type { ZlmApi, ZlmMedia } from './api.js'

/**
 * ZLMediaKit as the takeover core sees it (docs/zlm-protocol.md sections 2 and 3): the stream by its
 * media sources (getMediaList, one entry per schema), the holder as the origin's session
 * (originSock.identifier), the newcomer as a session ZLMediaKit lists with the hook's address,
 * the kick (kick_session), and which answers mean "released".
 */

/**
 * ZLMediaKit counts a source's bytes as frames arrive (MultiMediaSourceMuxer::inputFrame), so its
 * totalBytes moves at once; a second is the longest a live camera goes without a frame.
 */
export const ZLM_STATS_INTERVAL_MS = 1000

/** The origins that are a publisher's session, which kick_session closes (section 2). */
export const PUSH_ORIGINS: ReadonlySet<string> = new Set(['rtmp_push', 'rtsp_push', 'srt_push', 'rtc_push'])

/**
 * The signal that `holder` no longer holds `key` on server `server`. ZLMediaKit's release hook
 * (on_stream_changed regist:false) names no session, so the topic is emitted only once ZLMediaKit's
 * API confirmed it (see releases.ts): a late or old regist:false cannot end a later wait.
 */
export function zlmReleaseTopic (server: string, key: string, holder: string): string {
  return `zlm\n${server}\nreleased\n${key}\n${holder}`
}

/** Why a source that is no publisher's session is never evicted (LiveStream.keep). */
function keepWhy (origin: string): string {
  return origin === 'rtp_push'
    ? 'it is fed by an RTP server (rtp_push), whose id is a stream id, not a session; it is never kicked here: close the RTP server instead (DELETE rtp-servers/{stream_id})'
    : `it is fed by ZLMediaKit's own ${origin} source, not by a publisher's session, and is never kicked here`
}

/** How the adapter knows the server it speaks for (its id and hook timeout are learnt later). */
export interface ZlmIdentity {
  /** mediaServerId once known; the API's URL before. */
  readonly id: string
  /** How long a publish hook may take before ZLMediaKit gives up on it. */
  readonly hookBudgetMs: number
}

export class ZlmMediaServer implements MediaServer {
  readonly kind = 'zlm'
  readonly statsIntervalMs: number
  readonly api: ZlmApi
  readonly #node: ZlmIdentity
  readonly #now: () => number
  /** Holders a takeover here waits to see released, by stream url (for the release check). */
  readonly #awaited = new LRUCache<string, Set<string>>({ max: 10_000, ttl: 60_000 })

  constructor (api: ZlmApi, node: ZlmIdentity, now: () => number = Date.now, statsIntervalMs = ZLM_STATS_INTERVAL_MS) {
    this.api = api
    this.#node = node
    this.#now = now
    this.statsIntervalMs = statsIntervalMs
  }

  get id (): string {
    return this.#node.id
  }

  get hookBudgetMs (): number {
    return this.#node.hookBudgetMs
  }

  /** The stream's media sources (every schema), as ZLMediaKit lists them now. */
  async sources (key: string, deadline?: number): Promise<ZlmMedia[]> {
    const ref = refOf(key)
    const all = await this.api.mediaList({ vhost: ref.vhost, app: ref.app, stream: ref.stream }, { deadline })
    // An older ZLMediaKit filters by vhost and app only.
    return all.filter((m) => streamUrl(m.vhost, m.app, m.stream) === key)
  }

  async live (ref: StreamRef, deadline: number): Promise<LiveStream> {
    return liveOf(await this.sources(ref.key, deadline), ref.key)
  }

  /**
   * ZLMediaKit sends on_publish before the newcomer's source exists, so the newcomer is checked as
   * a session: one ZLMediaKit lists with the hook's id, from the hook's address and port. A forged
   * hook naming a session ZLMediaKit does not know (or another address's) evicts nobody.
   */
  async verify (newcomer: Newcomer, _ref: StreamRef, _live: LiveStream, deadline: number): Promise<boolean> {
    if (newcomer.ip === undefined || newcomer.ip === '') return false
    const sessions = await this.api.sessions({ peer_ip: newcomer.ip }, { deadline })
    return sessions.some((s) => s.id === newcomer.id && s.peerIp === newcomer.ip && (newcomer.port === undefined || s.peerPort === newcomer.port))
  }

  async read (holder: string, live: LiveStream, deadline: number): Promise<HolderReading> {
    const mine = (await this.sources(live.url!, deadline)).filter((m) => m.identifier === holder)
    if (mine.length === 0) return { gone: true }
    const bytes = mine.map((m) => m.totalBytes).find((b) => b !== undefined)
    const created = mine[0]!.createStamp
    return { bytes, info: { ip: mine[0]!.peerIp, since: created === undefined ? undefined : created * 1000 } }
  }

  async kick (holder: string, deadline: number): Promise<'kicked' | 'gone'> {
    return await this.api.kickSession(holder, { deadline })
  }

  /**
   * Released in either sense when no source of the stream names the holder as its origin: the
   * stream is gone (a kick unregisters it at once), published by someone else, or left by a
   * crashed holder for a newcomer to continue (continue_push_ms).
   */
  async released (holder: string, ref: StreamRef, _live: LiveStream, _kind: ReleaseKind, deadline: number): Promise<boolean> {
    return !(await this.sources(ref.key, deadline)).some((m) => m.identifier === holder)
  }

  releaseTopics (holder: string, ref: StreamRef): string[] {
    let set = this.#awaited.get(ref.key)
    if (set === undefined) this.#awaited.set(ref.key, set = new Set())
    set.add(holder)
    return [zlmReleaseTopic(this.id, ref.key, holder)]
  }

  /** Holders a takeover in this process waits to see released from `key`. */
  awaited (key: string): string[] {
    return [...this.#awaited.get(key) ?? []]
  }

  /** They were seen released. */
  forget (key: string, holders: string[]): void {
    const set = this.#awaited.get(key)
    if (set === undefined) return
    for (const h of holders) set.delete(h)
    if (set.size === 0) this.#awaited.delete(key)
  }

  async published (): Promise<PublishedStream[]> {
    const byKey = new Map<string, PublishedStream>()
    for (const m of await this.api.mediaList({})) {
      const key = streamUrl(m.vhost, m.app, m.stream)
      if (m.identifier === undefined || byKey.has(key)) continue
      byKey.set(key, { key, vhost: m.vhost, app: m.app, stream: m.stream, holder: m.identifier })
    }
    return [...byKey.values()]
  }
}

/** The stream as the core sees it, from its sources under every schema (they share one origin). */
export function liveOf (sources: ZlmMedia[], key: string): LiveStream {
  const origin = sources.find((m) => m.identifier !== undefined)
  // No source, or one a crashed publisher left (continue_push_ms): a newcomer continues it.
  if (origin === undefined) return { active: false, url: key }
  const live: LiveStream = { active: true, holder: origin.identifier, url: key }
  if (!PUSH_ORIGINS.has(origin.originTypeStr)) live.keep = keepWhy(origin.originTypeStr)
  return live
}
