import { parseArgs } from 'node:util'
import type { Command, Io } from './command.js'
import { signedQuery } from '../auth/signature.js'
import { DEFAULT_VHOST, streamName } from '../streams.js'

/**
 * `srs-hooks sign [vhost/]app/stream [--ttl s | --expires unix] [--play] [--base url]`: mints an
 * expiring signed URL with PUBLISH_SECRET (or PLAY_SECRET with --play) from the environment.
 * Prints the query (`?expires=…&sign=…`), then with --base the full URL (with `&vhost=` for a
 * stream of another vhost than the default).
 */

const USAGE = 'srs-hooks sign [<vhost>/]<app>/<stream> [--ttl <seconds> | --expires <unix seconds>] [--play] [--base rtmp://host[:port]]\n' +
  '  signs with PUBLISH_SECRET (or PLAY_SECRET with --play) from the environment; the default --ttl is 3600'

export async function run (args: string[], io: Io, now: () => number = Date.now): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ttl: { type: 'string' },
        expires: { type: 'string' },
        play: { type: 'boolean', default: false },
        base: { type: 'string' }
      }
    })
  } catch (err) {
    return usage(io, (err as Error).message)
  }
  const { values, positionals } = parsed
  const name = positionals[0] ?? ''
  const m = /^(?:([^/\s?#&]+)\/)?([^/\s?#]+)\/([^/\s?#]+)$/.exec(name)
  if (m === null || positionals.length !== 1) return usage(io, `expected one [<vhost>/]<app>/<stream>, got ${JSON.stringify(positionals.join(' '))}`)
  const [vhost, app, stream] = [m[1] ?? DEFAULT_VHOST, m[2]!, m[3]!]
  const secretName = values.play ? 'PLAY_SECRET' : 'PUBLISH_SECRET'
  const secret = io.env[secretName] ?? ''
  if (secret.length < 16) return usage(io, `${secretName} must be set (16 characters or more), as for the server`)
  let expires: number
  if (values.expires !== undefined) {
    if (values.ttl !== undefined || !/^\d{1,12}$/.test(values.expires)) return usage(io, '--expires takes unix seconds, and not with --ttl')
    expires = Number(values.expires)
  } else {
    const ttl = values.ttl ?? '3600'
    if (!/^\d{1,9}$/.test(ttl) || Number(ttl) < 1) return usage(io, '--ttl takes a positive number of seconds')
    expires = Math.floor(now() / 1000) + Number(ttl)
  }
  const late = Math.floor(now() / 1000) - expires
  if (late >= 0) io.err(`srs-hooks sign: warning: this URL expired ${late} s ago (--expires ${expires}); the server refuses it`)
  const query = signedQuery(secret, streamName(vhost, app, stream), expires)
  io.out(query)
  const vhostParam = vhost === DEFAULT_VHOST ? '' : `&vhost=${encodeURIComponent(vhost)}`
  if (values.base !== undefined) io.out(`${values.base.replace(/\/+$/, '')}/${app}/${stream}${query}${vhostParam}`)
  return 0
}

function usage (io: Io, why: string): number {
  io.err(`srs-hooks sign: ${why}\nusage: ${USAGE}`)
  return 2
}

export const sign: Command = {
  summary: 'print an expiring signed publish (or play) URL',
  usage: USAGE,
  exits: [
    [0, 'printed (a warning on stderr when the expiry is already past)'],
    [2, 'bad usage, or the secret is not set']
  ],
  run: async (args, io) => await run(args, io)
}
