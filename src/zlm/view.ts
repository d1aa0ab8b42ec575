import type { Log } from '../logger.js'
import type { LiveView } from '../operations/streams.js'
import { streamUrl, type LiveClientView, type LiveStreamView } from '../streams.js'
import type { ZlmApiError } from './api.js'
import type { ZlmNode } from './servers.js'

/**
 * One ZLMediaKit's live view for the operator's GET streams, in the shape the SRS view has: each
 * stream once (its sources under every schema share one origin), its origin session as the
 * publisher. The operator API merges it with the publisher table as it does SRS's.
 */
export async function zlmLiveView (n: ZlmNode, log: Pick<Log, 'warn'>): Promise<LiveView> {
  try {
    const streams = new Map<string, LiveStreamView>()
    const clients: LiveClientView[] = []
    for (const m of await n.api.mediaList({})) {
      const key = streamUrl(m.vhost, m.app, m.stream)
      if (streams.has(key)) continue
      // ZLMediaKit has no stream id: the view shows none.
      const publish = m.identifier === undefined ? { active: false } : { active: true, cid: m.identifier }
      streams.set(key, { id: '', name: m.stream, app: m.app, vhost: m.vhost, url: key, clients: (m.totalReaderCount ?? 0) + 1, recv_bytes: m.totalBytes, publish })
      if (m.identifier !== undefined) clients.push({ id: m.identifier, ip: m.peerIp, alive: m.aliveSecond })
    }
    return { server: n.server.id, ok: true, msg: null, streams: [...streams.values()], clients }
  } catch (err) {
    // ZlmApi reports every failure as a ZlmApiError.
    const e = err as ZlmApiError
    log.warn({ err: e.message, kind: e.kind, zlmApi: n.url }, 'operator API: a server\'s live view is unavailable')
    return { server: n.server.id, ok: false, msg: `ZLMediaKit's API at ${n.url} failed (${e.kind}): ${e.message}; showing the publisher table alone for it`, streams: [], clients: [] }
  }
}
