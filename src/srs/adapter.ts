import type { HolderReading, MediaServer, Newcomer, PublishedStream, ReleaseKind, StreamRef } from '../publishers/media.js'
import type { LiveStream } from '../publishers/policy.js'
import type { SrsApi, SrsClient, SrsStream, SrsVersion } from './api.js'
import { DEFAULT_VHOST, streamUrl, vhostOfUrl } from '../streams.js'

/**
 * SRS as the takeover core sees it (docs/srs-protocol.md sections 4, 4b and 5): the stream by its id or
 * url, the newcomer as a client SRS lists on that very stream, the holder's bytes, the kick, and
 * which hooks and API answers mean "released".
 */

/**
 * SRS refreshes the byte counters its API reports every 3 s (SrsServer::resample_kbps, timer tick
 * 8), so a publisher's recv_bytes moves only at those refreshes.
 */
export const SRS_STATS_INTERVAL_MS = 3000

/** An SRS version as /api/v1/versions reports it. */
type Version = Pick<SrsVersion, 'major' | 'minor' | 'revision'>

/**
 * SRS 5.0.55 and later register a publisher in /api/v1/clients before on_publish (and send its
 * stream_id); SRS 4 does so only after its busy check (docs/srs-protocol.md section 4), and 5.0 before
 * 5.0.55 is taken to do the same.
 */
export function listsNewcomer (v: Version): boolean {
  return v.major > 5 || (v.major === 5 && (v.minor > 0 || v.revision >= 55))
}

/**
 * SRS 4 and 5 make the stream publishable again before they set publish.active=false
 * (SrsLiveSource::on_unpublish), so that flag is a release; from 6.0.146 it comes first.
 */
function inactiveIsReleased (v: Version): boolean {
  return v.major <= 5
}

/** The release hooks, as signal topics: SRS's on_unpublish and on_close of a client. */
export function srsTopic (server: string, hook: 'unpublish' | 'close', clientId: string): string {
  return `srs\n${server}\n${hook}\n${clientId}`
}

export class SrsMediaServer implements MediaServer {
  readonly kind = 'srs'
  readonly statsIntervalMs: number
  readonly api: SrsApi
  readonly #now: () => number
  /** vhost name -> id, for SRS < 5.0.55, whose listing names a stream's vhost only by id. */
  #vhostIds: Map<string, string> | undefined
  /** What /api/v1/versions said last (set by SrsServers); undefined until it answered. */
  version: Version | undefined

  constructor (api: SrsApi, now: () => number = Date.now, statsIntervalMs = SRS_STATS_INTERVAL_MS) {
    this.api = api
    this.#now = now
    this.statsIntervalMs = statsIntervalMs
  }

  /** SRS's server id as its API reports it; its API's address until it has answered. */
  get id (): string {
    return this.api.status.server ?? this.api.url
  }

  /** Whether SRS lists a newcomer before its busy check; undefined while its version is not known. */
  get listsNewcomer (): boolean | undefined {
    return this.version === undefined ? undefined : listsNewcomer(this.version)
  }

  async live (ref: StreamRef, deadline: number): Promise<LiveStream> {
    if (ref.streamId !== undefined) {
      const s = await this.api.stream(ref.streamId, { deadline })
      if (s === null) return { active: false }
      // A stream id is the caller's word (a hook's stream_id, the table): another stream's id is
      // looked past, to the stream by its url.
      if (await this.#names(s, ref, deadline)) return liveOf(s)
    }
    const streams = await this.api.allStreams({ deadline })
    const byUrl = streams.find((x) => x.url === ref.key)
    if (byUrl !== undefined) return liveOf(byUrl)
    // SRS < 5.0.55 lists no stream url: match app, name and the vhost (by its id).
    const candidates = streams.filter((x) => x.url === undefined && x.app === ref.app && x.name === ref.stream && x.publish.active)
    if (candidates.length === 0) return { active: false }
    const vhostId = await this.#vhostId(ref.vhost, deadline)
    const s = candidates.find((x) => x.vhost === vhostId)
    return s === undefined ? { active: false } : liveOf(s)
  }

  async verify (newcomer: Newcomer, ref: StreamRef, live: LiveStream, deadline: number): Promise<boolean> {
    const client = await this.api.client(newcomer.id, { deadline })
    // An unlisted newcomer means a forgery only where SRS lists one (5.0.55+): learn which SRS this is.
    if (client === null && this.version === undefined) this.version = await this.api.versions({ deadline }).catch(() => undefined)
    return publishes(client, live, ref)
  }

  async read (holder: string, _live: LiveStream, deadline: number): Promise<HolderReading> {
    const c = await this.api.client(holder, { deadline })
    if (c === null) return { gone: true }
    const now = this.#now()
    return { bytes: c.recv_bytes, info: { ip: c.ip, since: c.alive === undefined ? undefined : now - Math.round(c.alive * 1000) } }
  }

  async kick (holder: string, deadline: number): Promise<'kicked' | 'gone'> {
    return await this.api.kick(holder, { deadline })
  }

  /**
   * 'token': the holder's connection is done (SRS frees the token before its on_close, and the
   * client leaves the API after it), so SRS no longer knowing the client is the sign. 'publish':
   * the same, or the stream published by someone else, or gone. `publish.active=false` is enough
   * only on SRS 4 and 5: from 6.0.146 SRS sets it before the stream can be published again.
   */
  async released (holder: string, _ref: StreamRef, live: LiveStream, kind: ReleaseKind, deadline: number): Promise<boolean> {
    if (await this.api.client(holder, { deadline }) === null) return true
    if (kind === 'token' || live.id === undefined) return false
    const s = await this.api.stream(live.id, { deadline })
    if (s === null) return true
    return s.publish.active ? s.publish.cid !== holder : this.version !== undefined && inactiveIsReleased(this.version)
  }

  releaseTopics (holder: string, _ref: StreamRef, kind: ReleaseKind): string[] {
    const close = srsTopic(this.id, 'close', holder)
    // The token is held until SRS has our answer to on_unpublish: only on_close comes after it.
    return kind === 'token' ? [close] : [srsTopic(this.id, 'unpublish', holder), close]
  }

  async published (): Promise<PublishedStream[]> {
    const streams = (await this.api.allStreams()).filter((s) => s.publish.active && s.publish.cid !== undefined)
    // SRS < 5.0.55 lists no stream url: build it from the vhost's name.
    const names = streams.some((s) => s.url === undefined)
      ? new Map((await this.api.vhosts()).map((v) => [v.id, v.name]))
      : undefined
    return streams.map((s) => {
      const vhost = s.url !== undefined ? vhostOfUrl(s.url) : names!.get(s.vhost) ?? DEFAULT_VHOST
      return { key: s.url ?? streamUrl(vhost, s.app, s.name), vhost, app: s.app, stream: s.name, holder: s.publish.cid!, streamId: s.id }
    })
  }

  /** Whether SRS's stream `s` is the stream `ref` names: its url, or (before 5.0.55) app, name and vhost. */
  async #names (s: SrsStream, ref: StreamRef, deadline: number): Promise<boolean> {
    if (s.url !== undefined) return s.url === ref.key
    return s.app === ref.app && s.name === ref.stream && s.vhost === await this.#vhostId(ref.vhost, deadline)
  }

  async #vhostId (name: string, deadline: number): Promise<string | undefined> {
    if (this.#vhostIds?.has(name) !== true) {
      this.#vhostIds = new Map((await this.api.vhosts({ deadline })).map((v) => [v.name, v.id]))
    }
    return this.#vhostIds.get(name)
  }
}

function liveOf (s: SrsStream): LiveStream {
  return { id: s.id, active: s.publish.active, holder: s.publish.cid, url: s.url }
}

/** Whether SRS lists `client` as a publisher of this very stream. */
function publishes (client: SrsClient | null, live: LiveStream, ref: StreamRef): boolean {
  if (client === null || !client.publish) return false
  // By SRS's own stream id: a hook's stream_url and stream_id are both the caller's word, and must
  // not be able to name one stream for the check and another for the eviction.
  return client.stream === live.id && (live.url === undefined || live.url === ref.key)
}

/** The key SRS >= 7.0.62 takes its publish token under (SrsRequest::get_stream_url). */
export function tokenKey (vhost: string, app: string, stream: string): string {
  // Only streaming extensions are stripped (srs_net_url_encode_sid).
  const name = stream.replace(/\.(flv|m3u8|mp4|ts)$/, '')
  return `${vhost === DEFAULT_VHOST ? '' : vhost}/${app}/${name}`
}
