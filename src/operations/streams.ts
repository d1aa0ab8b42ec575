import type { Publisher } from '../publishers/store.js'
import { vhostOfUrl, type LiveClientView, type LiveStreamView } from '../streams.js'

/** One server's live view: its streams and clients, or `ok: false` when its API failed. */
export interface LiveView {
  server: string
  ok: boolean
  msg: string | null
  streams: LiveStreamView[]
  clients: LiveClientView[]
}

/** One stream on one server as the operator sees it: the publisher table merged with the server's live view. */
export interface StreamView {
  server: string
  stream_url: string
  vhost: string
  app: string
  stream: string
  stream_id: string | null
  /** SRS reports the stream actively published (null when SRS's view is unavailable). */
  active: boolean | null
  publisher: {
    client_id: string
    ip: string | null
    /** Epoch ms since when this client publishes, as far as we know. */
    since: number | null
    /** 'publishing' or 'confirmed' (the table's state), or 'srs' (SRS's publisher, which the table does not hold). */
    state: string
  } | null
  /** Bytes SRS received for the stream (SRS's stream recv_bytes). */
  recv_bytes: number | null
  /** Clients of the stream in SRS (the publisher and the players). */
  clients: number | null
  /** Takeovers on this stream since the table entry was created. */
  takeovers: number
  in_table: boolean
  in_srs: boolean
}

function keyOf (s: LiveStreamView): string {
  return s.url ?? `/${s.app}/${s.name}`
}

/**
 * Every stream that is in the table or actively published on a server, sorted by server and
 * stream url. A server whose view failed is shown from the table alone.
 */
export function mergeStreams (table: Publisher[], views: LiveView[], now: number): StreamView[] {
  const out: StreamView[] = []
  const byServer = new Map<string, Publisher[]>()
  for (const p of table) {
    let list = byServer.get(p.server)
    if (list === undefined) byServer.set(p.server, list = [])
    list.push(p)
  }
  const servers = [...new Set([...views.map((v) => v.server), ...byServer.keys()])].sort()
  for (const server of servers) {
    const view = views.find((v) => v.server === server)
    out.push(...mergeServer(server, byServer.get(server) ?? [], view?.ok === true ? view : null, now))
  }
  return out
}

function mergeServer (server: string, table: Publisher[], srs: LiveView | null, now: number): StreamView[] {
  const clients = new Map(srs?.clients.map((c) => [c.id, c]))
  const live = new Map<string, LiveStreamView>()
  for (const s of srs?.streams ?? []) {
    if (s.publish.active) live.set(keyOf(s), s)
  }
  const entries = new Map(table.map((p) => [p.key, p]))
  const keys = [...new Set([...entries.keys(), ...live.keys()])].sort()
  return keys.map((key) => {
    const p = entries.get(key)
    const s = live.get(key)
    const cid = s?.publish.cid ?? p?.clientId
    const c = cid === undefined ? undefined : clients.get(cid)
    const fromTable = p !== undefined && p.clientId === cid
    let publisher: StreamView['publisher'] = null
    if (cid !== undefined) {
      publisher = {
        client_id: cid,
        ip: c?.ip ?? (fromTable ? p.ip ?? null : null),
        since: fromTable ? p.since : c?.alive !== undefined ? Math.round(now - c.alive * 1000) : null,
        state: fromTable ? p.state : 'srs'
      }
    }
    return {
      server,
      stream_url: key,
      vhost: p?.vhost ?? vhostOfUrl(key),
      app: p?.app ?? s!.app,
      stream: p?.stream ?? s!.name,
      stream_id: s?.id ?? p?.streamId ?? null,
      active: srs === null ? null : s !== undefined,
      publisher,
      recv_bytes: s?.recv_bytes ?? null,
      clients: s?.clients ?? null,
      takeovers: p?.takeovers ?? 0,
      in_table: p !== undefined,
      in_srs: s !== undefined
    }
  })
}

/** A time given as epoch milliseconds or as an ISO 8601 date; null when it is neither. */
export function parseTime (value: string): number | null {
  if (/^\d{1,15}$/.test(value)) return Number(value)
  if (!/^\d{4}-\d{2}-\d{2}/.test(value)) return null
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? null : ms
}
