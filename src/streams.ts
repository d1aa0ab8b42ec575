/**
 * How streams are named, the same for every media server: both SRS and ZLMediaKit call the vhost
 * of a URL that names none `__defaultVhost__`.
 */

export const DEFAULT_VHOST = '__defaultVhost__'

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
