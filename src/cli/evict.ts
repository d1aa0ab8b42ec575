import { parseArgs } from 'node:util'
import { pino } from 'pino'
import type { Command, Io } from './command.js'
import { loadConfig, type Config } from '../config.js'
import { ZlmApiError } from '../zlm/api.js'
import type { MediaApiError } from '../errors.js'
import { PublisherEvents } from '../publishers/events.js'
import { PublisherService, refOf } from '../publishers/service.js'
import { MemoryPublisherStore } from '../publishers/store.js'
import type { MediaServer } from '../publishers/media.js'
import { SrsServers } from '../srs/servers.js'
import { ZlmServers } from '../zlm/servers.js'
import { DEFAULT_VHOST, streamUrl } from '../streams.js'

/**
 * `srs-hooks evict [--server ID|URL] [vhost/]app/stream`: for a pusher that wants a stale
 * publisher gone before it starts. Finds the stream's publisher in SRS or ZLMediaKit, kicks it
 * through the server's API and waits for the server to release the stream, with the takeover's own
 * machinery and bound (TAKEOVER_TIMEOUT_MS). It only ever talks to the servers' APIs: it never
 * signals or kills a local process. With several servers (SRS_API_URL and ZLM_API_URL list them),
 * the one that publishes the stream is found, or named with --server.
 *
 * Exit codes: 0 released; 1 failed (the server's API, no release within the bound, or a stream an
 * RTP server feeds, which is never kicked); 2 bad usage or
 * configuration, or a stream several servers publish without --server; 3 nothing to evict.
 */

export const usage = 'srs-hooks evict [--server <id or API URL>] [vhost/]app/stream   (SRS_API_URL, ZLM_API_URL, ZLM_SECRET, TAKEOVER_TIMEOUT_MS... from the environment)'

const PROGRESS_EVERY_MS = 1000

/** A server the stream may be published on. */
interface Target { kind: 'SRS' | 'ZLMediaKit', url: string, server: MediaServer, lookupMs: number }

export async function evict (args: string[], io: Io): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { server: { type: 'string' } } })
  } catch (err) {
    io.err(`srs-hooks evict: ${(err as Error).message}\nusage: ${usage}`)
    return 2
  }
  const { positionals, values } = parsed
  const parts = positionals.length === 1 ? positionals[0]!.replace(/^\/+/, '').split('/') : []
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
  if (config.srsApis.length === 0 && config.zlmApis.length === 0) {
    io.err('srs-hooks evict: no server to evict from: SRS_API_URL is none and ZLM_API_URL is unset; set one of them')
    return 2
  }
  const key = streamUrl(vhost, app, stream)
  const log = pino({ level: 'silent' })
  const servers = new SrsServers({
    apis: config.srsApis,
    api: { timeoutMs: config.SRS_API_TIMEOUT_MS, retries: config.SRS_API_RETRIES, pageSize: config.SRS_API_PAGE_SIZE },
    takeoverAt: config.TAKEOVER_AT,
    log,
    now: Date.now
  })
  const zlm = new ZlmServers({
    urls: config.zlmApis,
    secret: config.ZLM_SECRET,
    timeoutMs: config.ZLM_API_TIMEOUT_MS,
    retries: config.ZLM_API_RETRIES,
    log,
    now: Date.now
  })
  // The servers of every kind, each with the words and the bound of a lookup on it.
  const targets: Target[] = [
    ...servers.nodes.map((n) => ({ kind: 'SRS' as const, url: n.url, server: n.server as MediaServer, lookupMs: config.SRS_API_TIMEOUT_MS * (config.SRS_API_RETRIES + 1) })),
    ...zlm.nodes.map((n) => ({ kind: 'ZLMediaKit' as const, url: n.url, server: n.server as MediaServer, lookupMs: config.ZLM_API_TIMEOUT_MS * (config.ZLM_API_RETRIES + 1) }))
  ]
  const code = await attempt().catch((err: unknown) => {
    const e = err as MediaApiError
    io.err(`cannot evict the publisher of ${key}: ${e instanceof ZlmApiError ? 'ZLMediaKit' : 'SRS'}'s API failed (${e.kind}): ${e.message}`)
    return 1
  })
  await Promise.all([servers.close(), zlm.close()])
  return code

  async function attempt (): Promise<number> {
    let candidates = targets
    // ZLMediaKit's answers do not name the server: its id is read once, for the messages and --server.
    await zlm.discover()
    if (values.server !== undefined) {
      await servers.discover()
      const named = values.server.replace(/\/+$/, '')
      const n = targets.find((x) => x.server.id === named || x.url === named)
      if (n === undefined) {
        const known = targets.map((x) => x.server.id === x.url ? `${x.url} (its API did not answer: id unknown)` : `${x.server.id} = ${x.url}`)
        io.err(`srs-hooks evict: no server ${JSON.stringify(values.server)} in SRS_API_URL or ZLM_API_URL; name one by its id or API URL: ${known.join(', ')}`)
        return 2
      }
      candidates = [n]
    }
    const found: Array<{ node: Target, holder: string, id: string | undefined }> = []
    for (const node of candidates) {
      io.out(`looking for the publisher of ${key} in ${node.kind} at ${node.url}`)
      const live = await node.server.live(refOf(key), Date.now() + node.lookupMs)
      if (live.active && live.holder !== undefined) found.push({ node, holder: live.holder, id: live.id })
    }
    if (found.length === 0) {
      const kinds = [...new Set(candidates.map((c) => c.kind))]
      const who = candidates.length === 1 ? `${candidates[0]!.kind} lists no` : `no ${kinds.length === 1 ? `${kinds[0]!} ` : ''}server lists an`
      io.err(`nothing to evict: ${who} active publisher of ${key}`)
      return 3
    }
    if (found.length > 1) {
      io.err(`${key} is published on several servers (${found.map((f) => `${f.node.server.id} = ${f.node.url}`).join(', ')}); name one with --server`)
      return 2
    }
    const { node, holder, id } = found[0]!
    const kind = node.kind
    io.out(`found publisher ${holder}${kind === 'SRS' ? ` (SRS stream ${String(id)})` : ''}; kicking it and waiting up to ${config.TAKEOVER_TIMEOUT_MS} ms for ${kind} to release ${key}`)
    const service = new PublisherService({
      store: new MemoryPublisherStore(1), events: new PublisherEvents(), log, now: Date.now, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS, failMode: 'open'
    })
    const started = Date.now()
    const progress = setInterval(() => { io.out(`still waiting for ${kind} to release ${key} (${((Date.now() - started) / 1000).toFixed(1)} s)`) }, PROGRESS_EVERY_MS)
    let r
    try {
      r = await service.evict(node.server, key)
    } finally {
      clearInterval(progress)
    }
    switch (r.outcome) {
      case 'released':
        io.out(`evicted ${r.clientId}: ${kind} released ${key} after ${Math.round(r.release.waitMs)} ms (seen via ${r.release.via}); the stream is free`)
        return 0
      case 'timeout':
        io.err(`kicked ${r.clientId} but ${kind} did not release ${key} within ${config.TAKEOVER_TIMEOUT_MS} ms; ${kind} may still be tearing it down, try again`)
        return 1
      case 'not-published':
        io.err(`nothing to evict: the publisher of ${key} left before the kick`)
        return 3
      case 'not-evictable':
        io.err(`${key} is not evicted: ${r.why}`)
        return 1
      /* c8 ignore next 3 */
      default: // 'busy' needs another takeover inside this process, which never happens here
        io.err(`could not evict: ${key} is busy`)
        return 1
    }
  }
}

export const command: Command = {
  summary: 'kick the publisher of a stream in SRS or ZLMediaKit and wait until the server releases it',
  usage,
  exits: [
    [0, 'evicted, and the server released the stream'],
    [1, 'failed: the server\'s API, no release within TAKEOVER_TIMEOUT_MS, or a stream an RTP server feeds'],
    [2, 'bad usage or configuration (no server configured, an unknown --server), or a stream several servers publish without --server'],
    [3, 'nothing to evict: no server lists an active publisher of the stream']
  ],
  run: evict
}
