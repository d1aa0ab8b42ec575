import { parseArgs } from 'node:util'
import { pino } from 'pino'
import type { Command, Io } from './command.js'
import { loadConfig, type Config } from '../config.js'
import type { SrsApiError } from '../errors.js'
import { PublisherEvents } from '../publishers/events.js'
import { PublisherService, refOf } from '../publishers/service.js'
import { MemoryPublisherStore } from '../publishers/store.js'
import { SrsServers, type SrsNode } from '../srs/servers.js'
import { DEFAULT_VHOST, streamUrl } from '../streams.js'

/**
 * `srs-hooks evict [--server ID|URL] [vhost/]app/stream`: for a pusher that wants a stale
 * publisher gone before it starts. Finds the stream's publisher in SRS, kicks it through SRS's API
 * and waits for SRS to release the stream, with the takeover's own machinery and bound
 * (TAKEOVER_TIMEOUT_MS). It only ever talks to SRS's API: it never signals or kills a local process.
 * With several SRS servers (SRS_API_URL lists them), the one that publishes the stream is found,
 * or named with --server.
 *
 * Exit codes: 0 released; 1 failed (SRS's API, or no release within the bound); 2 bad usage or
 * configuration, or a stream several servers publish without --server; 3 nothing to evict.
 */

export const usage = 'srs-hooks evict [--server <id or API URL>] [vhost/]app/stream   (SRS_API_URL, TAKEOVER_TIMEOUT_MS... from the environment)'

const PROGRESS_EVERY_MS = 1000

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
  const key = streamUrl(vhost, app, stream)
  const log = pino({ level: 'silent' })
  const servers = new SrsServers({
    apis: config.srsApis,
    api: { timeoutMs: config.SRS_API_TIMEOUT_MS, retries: config.SRS_API_RETRIES, pageSize: config.SRS_API_PAGE_SIZE },
    takeoverAt: config.TAKEOVER_AT,
    log,
    now: Date.now
  })
  const code = await attempt().catch((err: unknown) => {
    const e = err as SrsApiError
    io.err(`cannot evict the publisher of ${key}: SRS's API failed (${e.kind}): ${e.message}`)
    return 1
  })
  await servers.close()
  return code

  async function attempt (): Promise<number> {
    let candidates: SrsNode[] = servers.nodes
    if (values.server !== undefined) {
      await servers.discover()
      const n = servers.node(values.server.replace(/\/+$/, ''))
      if (n === undefined) {
        io.err(`srs-hooks evict: no server ${JSON.stringify(values.server)} in SRS_API_URL (${servers.nodes.map((x) => `${x.server.id} = ${x.url}`).join(', ')})`)
        return 2
      }
      candidates = [n]
    }
    const found: Array<{ node: SrsNode, holder: string, id: string | undefined }> = []
    for (const node of candidates) {
      io.out(`looking for the publisher of ${key} in SRS at ${node.url}`)
      const live = await node.server.live(refOf(key), Date.now() + config.SRS_API_TIMEOUT_MS * (config.SRS_API_RETRIES + 1))
      if (live.active && live.holder !== undefined) found.push({ node, holder: live.holder, id: live.id })
    }
    if (found.length === 0) {
      io.err(`nothing to evict: ${candidates.length === 1 ? 'SRS lists' : 'no SRS server lists'} no active publisher of ${key}`.replace('no SRS server lists no', 'no SRS server lists an'))
      return 3
    }
    if (found.length > 1) {
      io.err(`${key} is published on several servers (${found.map((f) => `${f.node.server.id} = ${f.node.url}`).join(', ')}); name one with --server`)
      return 2
    }
    const { node, holder, id } = found[0]!
    io.out(`found publisher ${holder} (SRS stream ${id ?? '?'}); kicking it and waiting up to ${config.TAKEOVER_TIMEOUT_MS} ms for SRS to release ${key}`)
    const service = new PublisherService({
      store: new MemoryPublisherStore(1), events: new PublisherEvents(), log, now: Date.now, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS, failMode: 'open'
    })
    const started = Date.now()
    const progress = setInterval(() => { io.out(`still waiting for SRS to release ${key} (${((Date.now() - started) / 1000).toFixed(1)} s)`) }, PROGRESS_EVERY_MS)
    let r
    try {
      r = await service.evict(node.server, key)
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
  summary: 'kick the publisher of a stream in SRS and wait until SRS releases it',
  usage,
  run: evict
}
