import type { Log } from '../logger.js'
import { MemoryLocks, type Locks } from '../publishers/lock.js'
import { sleep } from '../publishers/release.js'
import { streamUrl } from '../streams.js'
import type { ZlmMediaServer } from './adapter.js'
import { ZlmCode, type RtpOpen, type ZlmApiError, type ZlmRtpServer } from './api.js'

/**
 * RTP servers on ZLMediaKit (docs/zlm-protocol.md section 4, ZLMediaKit issue #4214): openRtpServer
 * answers -300 "This stream already exists" while the RTP server map holds the stream, which it
 * does from the open until closeRtpServer or 15-18 s without data, whatever getRtpInfo says. An
 * open here never fails that way: the same request again (an INVITE retried) gets the server that
 * is there; a different one closes it and opens again, at once (ZLMediaKit allows it, even on the
 * same port while the sender keeps sending). Opens of one stream take turns in this process; an
 * opener elsewhere (another replica, the platform itself) that re-creates it in between is met with
 * a short backoff. RTP servers the caller asked to keep are reopened when ZLMediaKit times them out
 * (on_rtp_server_timeout, sent after the map entry is gone) and when reconciliation finds them gone
 * without a hook (a stream another publisher owns makes the RTP process detach silently).
 */

/** What a caller asks for. */
export interface RtpRequest extends RtpOpen {
  /** Reopen it when ZLMediaKit times it out or drops it. */
  keep: boolean
}

export type RtpOutcome = 'opened' | 'existing' | 'reopened'

/** What became of a kept server that ZLMediaKit dropped. */
export type Restored = 'reopened' | 'existing' | 'reopen-failed'

export interface RtpOpened {
  outcome: RtpOutcome
  server: string
  port: number
  /** The RTP server that was there and was closed ('reopened'). */
  replaced?: ZlmRtpServer | undefined
  /** openRtpServer calls it took. */
  attempts: number
  ms: number
}

/** An RTP server this process keeps open for its caller. */
export interface KeptRtp extends RtpRequest {
  server: string
  /** The port it has (the same port is reopened: the sender was told it). */
  port: number
  /** Epoch ms of the last open. */
  since: number
  /** open: in ZLMediaKit's map when last seen; blocked: gone, and another publisher owns the stream, so not reopened. */
  state: 'open' | 'blocked'
  /** Why it is blocked. */
  note?: string | undefined
}

export type RtpErrorKind = 'port-in-use' | 'busy' | 'conflict'

/** An open that did not happen for a reason of the RTP server itself (not ZLMediaKit's API failing). */
export class RtpOpenError extends Error {
  readonly kind: RtpErrorKind
  readonly port: number | undefined
  constructor (kind: RtpErrorKind, message: string, port?: number) {
    super(message)
    this.name = 'RtpOpenError'
    this.kind = kind
    this.port = port
  }
}

/** The type of the entries RTP servers add to the operator's events log. */
export const RTP_EVENT_TYPE = 'rtp-server'

export interface RtpCounters {
  opened: number
  existing: number
  reopened: number
  portInUse: number
  conflicts: number
  failed: number
  /** Kept servers reopened after on_rtp_server_timeout or a reconciliation. */
  restored: number
  /** Kept servers found gone without a hook by a reconciliation. */
  vanished: number
}

export interface RtpServersOptions {
  log: Log
  now: () => number
  /** Bound of one open: its lock, the close of a stale server and the backoff included. */
  openTimeoutMs: number
  /** Adds an entry to the operator's events log. */
  event: (e: Record<string, unknown> & { type: string, at: number }) => void
  /** Opens of one stream take turns under these; in process by default (shared ones would span replicas). */
  locks?: Locks
  random?: () => number
}

const BACKOFF_FIRST_MS = 20
const BACKOFF_MAX_MS = 200
/** A reconciliation of one server's kept RTP servers takes at most this many open bounds. */
const RECONCILE_BUDGET = 4

export function rtpKey (r: { vhost: string, app: string, streamId: string }): string {
  return streamUrl(r.vhost, r.app, r.streamId)
}

export class RtpServers {
  readonly counters: RtpCounters = { opened: 0, existing: 0, reopened: 0, portInUse: 0, conflicts: 0, failed: 0, restored: 0, vanished: 0 }
  readonly #opts: RtpServersOptions
  readonly #locks: Locks
  readonly #kept = new Map<string, KeptRtp>()
  readonly #random: () => number

  constructor (opts: RtpServersOptions) {
    this.#opts = opts
    this.#locks = opts.locks ?? new MemoryLocks()
    this.#random = opts.random ?? Math.random
  }

  /** The RTP servers kept open, of one server or all. */
  kept (server?: string): KeptRtp[] {
    return [...this.#kept.values()].filter((k) => server === undefined || k.server === server)
  }

  /**
   * Opens the RTP server `req` asks for, or returns the one ZLMediaKit holds if it is the same
   * (port, when one is asked, transport and SSRC); any other is closed first. Throws RtpOpenError
   * (a port in use, the open's bound used up waiting for a concurrent open) or ZlmApiError.
   */
  async open (server: ZlmMediaServer, req: RtpRequest): Promise<RtpOpened> {
    const { now, openTimeoutMs } = this.#opts
    const started = now()
    const deadline = started + openTimeoutMs
    const key = rtpKey(req)
    const id = `${server.id}\n${key}`
    const unlock = await this.#locks.acquire(id, openTimeoutMs, openTimeoutMs + 1000)
    if (unlock === null) {
      this.counters.conflicts++
      throw new RtpOpenError('busy', `another open of the RTP server of ${key} held it for the whole ${openTimeoutMs} ms; try again`)
    }
    const opened = await this.#open(server, req, key, deadline).finally(unlock).catch((err: unknown) => {
      if (!(err instanceof RtpOpenError)) this.counters.failed++
      else if (err.kind === 'port-in-use') this.counters.portInUse++
      else this.counters.conflicts++
      throw err
    })
    const result = { ...opened, server: server.id, ms: now() - started }
    this.counters[result.outcome]++
    if (req.keep) this.#kept.set(id, { ...req, port: result.port, server: server.id, since: now(), state: 'open' })
    else this.#kept.delete(id)
    return result
  }

  /** Closes the stream's RTP server and stops keeping it; resolves with whether ZLMediaKit held one. */
  async close (server: ZlmMediaServer, r: { vhost: string, app: string, streamId: string }): Promise<boolean> {
    this.#kept.delete(`${server.id}\n${rtpKey(r)}`)
    return await server.api.closeRtpServer(r, { deadline: this.#opts.now() + this.#opts.openTimeoutMs })
  }

  /**
   * on_rtp_server_timeout: ZLMediaKit already erased the map entry. A kept server is reopened at
   * once, on its port; any other is left closed. A forged timeout for a server that is still open
   * finds it there and changes nothing.
   */
  async timedOut (server: ZlmMediaServer, r: { vhost: string, app: string, streamId: string }): Promise<'not-kept' | Restored> {
    const kept = this.#kept.get(`${server.id}\n${rtpKey(r)}`)
    if (kept === undefined) return 'not-kept'
    return await this.#restore(server, kept, 'timeout')
  }

  /**
   * Checks the kept servers of `server` against ZLMediaKit's map (listRtpServer): one that is gone
   * is reopened, unless another publisher owns its stream (then it would detach again at its first
   * packet): it is marked blocked until that publisher leaves. Throws ZlmApiError when the map
   * cannot be read.
   */
  async reconcile (server: ZlmMediaServer): Promise<{ restored: number, blocked: number, left: number }> {
    const kept = this.kept(server.id)
    if (kept.length === 0) return { restored: 0, blocked: 0, left: 0 }
    const { now, openTimeoutMs } = this.#opts
    // The whole run is bounded (the app's close waits for it); what is left waits for the next one.
    const end = now() + RECONCILE_BUDGET * openTimeoutMs
    const map = await server.api.rtpServers({ deadline: Math.min(end, now() + openTimeoutMs) })
    let restored = 0
    let blocked = 0
    for (const [i, k] of kept.entries()) {
      if (map.some((m) => rtpKey(m) === rtpKey(k))) {
        k.state = 'open'
        k.note = undefined
        continue
      }
      if (now() >= end) {
        this.#opts.log.info({ server: server.id, left: kept.length - i }, 'kept RTP servers left for the next reconciliation: this one used its time')
        return { restored, blocked, left: kept.length - i }
      }
      const sources = await server.sources(rtpKey(k), Math.min(end, now() + openTimeoutMs)).catch((err: unknown) => err as ZlmApiError)
      if (!Array.isArray(sources)) {
        this.#report(server, k, 'reopen-failed', { why: 'reconcile', err: sources.message }, 'warn', 'could not check a kept RTP server\'s stream; the next reconciliation tries again')
        continue
      }
      const owner = sources.find((m) => m.identifier !== undefined && m.originTypeStr !== 'rtp_push')
      if (owner !== undefined) {
        blocked++
        const note = `the stream is published by ${owner.originTypeStr} session ${owner.identifier!}; reopened once it leaves`
        if (k.state !== 'blocked') {
          this.counters.vanished++
          this.#report(server, k, 'vanished', { note }, 'warn', 'a kept RTP server is gone without a hook (another publisher owns its stream); not reopened while it does')
        }
        k.state = 'blocked'
        k.note = note
        continue
      }
      if (k.state !== 'blocked') this.counters.vanished++
      if (await this.#restore(server, k, 'reconcile') !== 'reopen-failed') restored++
    }
    return { restored, blocked, left: 0 }
  }

  /** Opens a kept server again: 'existing' when it was there after all (a forged timeout). */
  async #restore (server: ZlmMediaServer, kept: KeptRtp, why: 'timeout' | 'reconcile'): Promise<Restored> {
    try {
      const r = await this.open(server, { ...kept })
      if (r.outcome === 'existing') return 'existing'
      this.counters.restored++
      this.#report(server, kept, 'reopened', { why, port: r.port }, 'info', why === 'timeout' ? 'reopened a kept RTP server that ZLMediaKit timed out' : 'reopened a kept RTP server that was gone without a hook')
      return 'reopened'
    } catch (err) {
      this.#report(server, kept, 'reopen-failed', { why, err: (err as Error).message }, 'warn', 'could not reopen a kept RTP server; a reconciliation will try again')
      return 'reopen-failed'
    }
  }

  /**
   * Opens first: a free stream costs one call, as openRtpServer alone. On -300 (the map holds the
   * stream) the map says what is there (listRtpServer has no filter: it is read only then): the same
   * server is returned, another is closed and the open tried again. A -300 again after that close
   * means an opener elsewhere re-created it: a short backoff before looking again. A lost answer may
   * have opened it: the map tells.
   */
  async #open (server: ZlmMediaServer, req: RtpRequest, key: string, deadline: number): Promise<Omit<RtpOpened, 'server' | 'ms'>> {
    let replaced: ZlmRtpServer | undefined
    for (let attempt = 0; ; attempt++) {
      // ZlmApi reports every failure as a ZlmApiError.
      const answer = await server.api.openRtpServer(req, { deadline }).catch((err: unknown) => err as ZlmApiError)
      if (typeof answer === 'number') return { outcome: replaced === undefined ? 'opened' : 'reopened', port: answer, replaced, attempts: attempt + 1 }
      const failure = answer
      const inUse = failure.kind === 'api_code' && failure.detail === ZlmCode.Exception ? /in use/i.exec(String(failure.zlmMsg)) : null
      if (inUse !== null) throw await this.#portInUse(server, req, inUse.input, deadline)
      if (!(failure.kind === 'api_code' && failure.detail === ZlmCode.InvalidArgs) && !failure.unknownOutcome) throw failure
      if (attempt > 0) {
        const pause = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (attempt - 1)) * (0.5 + this.#random() / 2)
        if (this.#opts.now() + pause >= deadline) {
          throw new RtpOpenError('conflict', `the RTP server of ${key} kept being re-created by another opener (or ZLMediaKit did not answer) for ${this.#opts.openTimeoutMs} ms: ${failure.message}`)
        }
        await sleep(pause)
      }
      const current = (await server.api.rtpServers({ deadline })).find((m) => rtpKey(m) === key)
      if (current === undefined) continue
      if (same(current, req)) return { outcome: 'existing', port: current.port, attempts: attempt + 1 }
      await server.api.closeRtpServer(req, { deadline })
      replaced ??= current
    }
  }

  /** The port that cannot be bound, and who holds it when it is another RTP server. */
  async #portInUse (server: ZlmMediaServer, req: RtpRequest, said: string, deadline: number): Promise<RtpOpenError> {
    // "Create RTP port 0.0.0.0:30000 failed:address already in use" (or "rtcp port ...:30001").
    const port = Number(/:(\d+) failed/.exec(said)?.[1] ?? req.port)
    let by = 'another socket on ZLMediaKit\'s host'
    try {
      const holder = (await server.api.rtpServers({ deadline })).find((m) => m.port === port || m.port + 1 === port)
      if (holder !== undefined) by = `the RTP server of ${rtpKey(holder)} (port ${holder.port})`
    } catch {
      // The words stay general.
    }
    return new RtpOpenError('port-in-use', `port ${port} is in use on ZLMediaKit ${server.id}, by ${by}; open with another port, or port 0 for any`, port)
  }

  #report (server: ZlmMediaServer, k: KeptRtp, action: string, extra: Record<string, unknown>, level: 'info' | 'warn', msg: string): void {
    const stream = rtpKey(k)
    this.#opts.log[level]({ server: server.id, stream, action, ...extra }, msg)
    this.#opts.event({ type: RTP_EVENT_TYPE, at: this.#opts.now(), server: server.id, stream, action, ...extra })
  }
}

/** The same RTP server: the port when one is asked, the transport and the SSRC. */
function same (m: ZlmRtpServer, req: RtpRequest): boolean {
  return (req.port === 0 || m.port === req.port) && m.tcpMode === req.tcpMode && m.ssrc === req.ssrc
}
