/**
 * How streams are named, the same for every media server: both SRS and ZLMediaKit call the vhost
 * of a URL that names none `__defaultVhost__`.
 */

export const DEFAULT_VHOST = '__defaultVhost__'

/**
 * How long a hook field may be, in characters: what SRS and ZLMediaKit really send, with room to
 * spare. Names are short (a vhost is a host name; apps and streams are path segments), ids are a
 * dozen characters, a query or URL is a few KB at most and a file path at most PATH_MAX. Every
 * table entry is built from these fields, so they bound its size too (docs/limits.md).
 */
export const FieldBounds = { host: 255, name: 512, id: 128, streamUrl: 1536, url: 4096, path: 4096 } as const

/** A stream's url: `[vhost]/app/stream`, the vhost left out for the default one (SRS's srs_generate_stream_url). */
export function streamUrl (vhost: string, app: string, stream: string): string {
  return `${vhost === DEFAULT_VHOST ? '' : vhost}/${app}/${stream}`
}

/**
 * A stream's name as operators write it in settings, key files and signatures: `app/stream` on
 * the default vhost, `vhost/app/stream` on another.
 */
export function streamName (vhost: string, app: string, stream: string): string {
  return vhost === DEFAULT_VHOST ? `${app}/${stream}` : `${vhost}/${app}/${stream}`
}

/** An app's name the same way: `app`, or `vhost/app`. */
export function appName (vhost: string, app: string): string {
  return vhost === DEFAULT_VHOST ? app : `${vhost}/${app}`
}

/** The vhost of a stream url: `/app/stream` is the default vhost's. */
export function vhostOfUrl (url: string): string {
  return url.startsWith('/') ? DEFAULT_VHOST : url.slice(0, url.indexOf('/'))
}

/**
 * A stream in a server's live view: what srs-hooks reads of SRS's streams (SrsStream), and
 * what ZLMediaKit's media list is made into for the operator API (src/zlm/view.ts).
 */
export interface LiveStreamView {
  /** The server's stream id ('' where it has none). */
  id: string
  name: string
  app: string
  vhost: string
  /** The stream url (SRS >= 5.0.55; ZLMediaKit), `vhost/app/stream` or `/app/stream`. */
  url?: string
  /** Clients of the stream: the publisher and the players. */
  clients?: number
  recv_bytes?: number
  publish: { active: boolean, cid?: string }
}

/** A client in a server's live view. */
export interface LiveClientView {
  id: string
  ip?: string
  /** Seconds since it connected. */
  alive?: number
}
