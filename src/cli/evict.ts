import { pino } from 'pino'
import type { Command, Io } from '../cli.js'
import { loadConfig, type Config } from '../config.js'
import type { SrsApiError } from '../errors.js'
import { PublisherService } from '../publishers/service.js'
import { MemoryPublisherStore } from '../publishers/store.js'
import { SrsApi } from '../srs/api.js'
import { DEFAULT_VHOST, streamUrl } from '../srs/hooks.js'

/**
 * `srs-hooks evict [vhost/]app/stream`: for a pusher that wants a stale publisher gone before it
 * starts. Finds the stream's publisher in SRS, kicks it through SRS's API and waits for SRS to
 * release the stream, with the takeover's own machinery and bound (TAKEOVER_TIMEOUT_MS). It only
 * ever talks to SRS's API: it never signals or kills a local process.
 *
 * Exit codes: 0 released; 1 failed (SRS's API, or no release within the bound); 2 bad usage or
 * configuration; 3 nothing to evict (SRS lists no active publisher of the stream).
 */

export const usage = 'srs-hooks evict [vhost/]app/stream   (SRS_API_URL, TAKEOVER_TIMEOUT_MS... from the environment)'

const PROGRESS_EVERY_MS = 1000

export async function evict (args: string[], io: Io): Promise<number> {
  const parts = args.length === 1 ? args[0]!.replace(/^\/+/, '').split('/') : []
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    io.err(`srs-hooks evict: name one stream as app/stream or vhost/app/stream\nusage: ${usage}`)
    return 2
  }
  const [vhost, app, stream] = parts.length === 3 ? parts as [string, string, string] : [DEFAULT_VHOST, parts[0]!, parts[1]!]
  let config: Config
  try {
    config = loadConfig(io.env)
  } catch (e) {
    io.err(`srs-hooks evict: ${(e as Error).message}`)
    return 2
  }
  const key = streamUrl(vhost, app, stream)
  const api = SrsApi.fromConfig(config)
  const code = await attempt().catch((err: unknown) => {
    const e = err as SrsApiError
    io.err(`cannot evict the publisher of ${key}: SRS's API failed (${e.kind}): ${e.message}`)
    return 1
  })
  await api.close()
  return code

  async function attempt (): Promise<number> {
    io.out(`looking for the publisher of ${key} in SRS at ${config.SRS_API_URL}`)
    const streams = await api.allStreams()
    // SRS < 5.0.55 lists no stream url: match app and name on the default vhost.
    const live = streams.find((s) => (s.url !== undefined ? s.url === key : vhost === DEFAULT_VHOST && s.app === app && s.name === stream) && s.publish.active)
    if (live?.publish.cid === undefined) {
      io.err(`nothing to evict: SRS lists no active publisher of ${key}`)
      return 3
    }
    const cid = live.publish.cid
    io.out(`found publisher ${cid} (SRS stream ${live.id}); kicking it and waiting up to ${config.TAKEOVER_TIMEOUT_MS} ms for SRS to release ${key}`)

    const store = new MemoryPublisherStore(1)
    await store.set({ key, vhost, app, stream, clientId: cid, streamId: live.id, since: Date.now(), state: 'confirmed', takeovers: 0 })
    const service = new PublisherService({
      api, store, log: pino({ level: 'silent' }), now: Date.now, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS, failMode: 'open'
    })
    const started = Date.now()
    const progress = setInterval(() => { io.out(`still waiting for SRS to release ${key} (${((Date.now() - started) / 1000).toFixed(1)} s)`) }, PROGRESS_EVERY_MS)
    let r
    try {
      r = await service.evict(key)
    } finally {
      clearInterval(progress)
    }
    switch (r.outcome) {
      case 'released':
        io.out(`evicted ${r.clientId}: SRS released ${key} after ${Math.round(r.release.waitMs)} ms (seen via ${r.release.via}); the stream is free`)
        return 0
      case 'timeout':
        io.err(`kicked ${r.clientId} but SRS did not release ${key} within ${config.TAKEOVER_TIMEOUT_MS} ms; SRS may still be tearing it down, try again`)
        return 1
      case 'not-published':
        io.err(`nothing to evict: the publisher of ${key} left before the kick`)
        return 3
      /* c8 ignore next 3 */
      default: // 'busy' needs another on_publish inside this process, which never happens here
        io.err(`could not evict: ${key} is busy`)
        return 1
    }
  }
}

export const command: Command = {
  summary: 'kick the publisher of a stream in SRS and wait until SRS releases it',
  usage,
  run: evict
}
