import { posix } from 'node:path'

/**
 * The DVR recordings index: one row per file SRS reported with on_dvr. Plain TypeScript; the route
 * translates SRS's hook and the operator API's query to and from these types.
 *
 * File names come from SRS's hook body, which anyone who can reach the hook URL can forge: they are
 * stored and displayed, and the only thing ever done with them is a stat() (see service.ts).
 */

/** An on_dvr, as the route reads it from SRS's body. */
export interface DvrNotice {
  vhost: string
  app: string
  stream: string
  /** SRS's stream_url, `[vhost]/app/stream`. */
  streamUrl: string
  clientId: string
  serverId?: string | undefined
  streamId?: string | undefined
  /** SRS's working directory, as reported. */
  cwd?: string | undefined
  /** The file exactly as SRS reported it. */
  file: string
  /** When the recording began (epoch ms), when the server says (ZLMediaKit's start_time); else read from the file name. */
  startedAt?: number | undefined
}

/** What an on_dvr tells us, with the path resolved and the time span read from the name. */
export interface NewRecording extends Omit<DvrNotice, 'startedAt'> {
  /** `file` made absolute against `cwd`; null when neither is absolute. Data, never opened. */
  path: string | null
  /** Epoch ms from the `[timestamp]` in the file name, when there is one. */
  startedAt: number | null
  /** Epoch ms when the on_dvr arrived. */
  receivedAt: number
  /** Why the file will not be examined, when that is known at once. */
  fileError: string | null
}

export interface Recording extends NewRecording {
  id: number
  /** Bytes, when the file could be examined from here. */
  size: number | null
  /** The file's modification time (epoch ms), when it could be examined from here. */
  mtime: number | null
  /** Epoch ms of the last examination (stat) of the file. */
  checkedAt: number | null
}

/** The result of examining a recorded file. */
export type FileInfo = { size: number, mtime: number } | { error: string }

/** Position after which a page starts: the last item of the previous page, newest first. */
export interface Cursor { receivedAt: number, id: number }

export interface RecordingQuery {
  vhost?: string | undefined
  app?: string | undefined
  stream?: string | undefined
  /** Recordings whose span [startedAt (or receivedAt), receivedAt] overlaps [from, to] (epoch ms). */
  from?: number | undefined
  to?: number | undefined
  limit: number
  after?: Cursor | undefined
}

export interface RecordingPage {
  /** Newest first (by receivedAt, then id). */
  items: Recording[]
  /** Where the next page starts; null on the last page. */
  next: Cursor | null
  /** Recordings this process acknowledged that wait in its spool, not yet in the index (0 without one). */
  spooled: number
}

/**
 * What identifies a recording: one per file per publisher session. The same on_dvr twice (two hook
 * URLs, a replay, a spooled row drained after its write did land) is one recording; a later
 * session overwriting a fixed dvr_path is another.
 */
export interface RecordingKey {
  /** SRS's server_id, '' when the hook had none (SRS before 4.0.151). */
  serverId: string
  clientId: string
  /** The resolved path, or the file as reported when it cannot be resolved. */
  fileKey: string
}

export function keyOf (r: Pick<NewRecording, 'serverId' | 'clientId' | 'path' | 'file'>): RecordingKey {
  return { serverId: r.serverId ?? '', clientId: r.clientId, fileKey: r.path ?? r.file }
}

export interface Added {
  /** The recording's id in the index; null while it waits in the spool. */
  id: number | null
  /** False when the index (or the spool) already held this recording. */
  created: boolean
  /** The index could not be reached within its bound: the recording is in the local spool. */
  spooled: boolean
}

/** The spool in front of an index that can be out of reach (PostgreSQL), as reported to operators. */
export interface SpoolStatus {
  /** Recordings waiting. */
  depth: number
  /** receivedAt of the oldest one waiting (epoch ms), null when empty. */
  oldestAt: number | null
  /** SPOOL_MAX_ROWS: beyond it an on_dvr that cannot reach the index is refused. */
  max: number
}

/** Whether the index takes a write now, and in what state. */
export interface Readiness {
  ok: boolean
  /** Why not, or what is degraded (PostgreSQL out of reach while the spool takes the writes); null when all is well. */
  msg: string | null
  /** Ready, but on a fallback: PostgreSQL out of reach while the spool takes the writes (/readyz lists it under `degraded`). */
  degraded?: 'postgres'
}

/**
 * Where recordings are kept: SQLite in DATA_DIR, or PostgreSQL (DATABASE_URL) behind a local
 * spool. Routes and the service do not know which one runs. Every method is asynchronous: no
 * store does its I/O on the event loop that answers SRS's hooks.
 */
export interface RecordingStore {
  /** 'sqlite' or 'postgres', for logs and diagnostics. */
  readonly kind: string
  /**
   * Stores the recording durably before resolving (committed, and fsync()ed where the store
   * does); the same one again resolves `created: false`. Rejects when it cannot be stored.
   */
  add: (recording: NewRecording) => Promise<Added>
  /** Records what examining the file found; an older examination never overwrites a newer one. */
  setFileInfo: (key: RecordingKey, info: FileInfo, checkedAt: number) => Promise<void>
  list: (query: RecordingQuery) => Promise<RecordingPage>
  count: () => Promise<number>
  /** Whether a write reaches the store now (the readiness probe). */
  readiness: (now: number) => Promise<Readiness>
  /** Deletes up to `limit` recordings received before `before` (epoch ms), oldest first; resolves how many. */
  prune: (before: number, limit: number) => Promise<number>
  /** The spool's state, null when the store has none. */
  spool: () => SpoolStatus | null
  close: () => Promise<void>
}

/** Epoch ms between 2000 and 2100, as SRS writes `[timestamp]` (srs_utils_time_ms). */
const TIMESTAMP = /(?<!\d)(\d{13})(?!\d)/g
const MIN_TS = Date.UTC(2000, 0, 1)
const MAX_TS = Date.UTC(2100, 0, 1)

/** The `[timestamp]` of SRS's dvr_path in a file's base name (the last one, if several), or null. */
export function timestampOf (file: string): number | null {
  let found: number | null = null
  for (const m of posix.basename(file).matchAll(TIMESTAMP)) {
    const ms = Number(m[1])
    if (ms >= MIN_TS && ms < MAX_TS) found = ms
  }
  return found
}

/**
 * The file's absolute path: as is when absolute, else against SRS's `cwd` when that is absolute;
 * null otherwise (resolving against our own directory would name a file on the wrong machine).
 * The result is data: it names a file on SRS's machine and is only ever stat()ed.
 */
export function resolveRecordingPath (file: string, cwd: string | undefined): string | null {
  if (posix.isAbsolute(file)) return posix.resolve(file)
  if (cwd !== undefined && posix.isAbsolute(cwd)) return posix.resolve(cwd, file)
  return null
}

export function encodeCursor (c: Cursor): string {
  return Buffer.from(JSON.stringify([c.receivedAt, c.id])).toString('base64url')
}

/** The cursor a page handed out, or null when `s` is not one. */
export function decodeCursor (s: string): Cursor | null {
  let v: unknown
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString())
  } catch {
    return null
  }
  if (!Array.isArray(v) || v.length !== 2 || !v.every((n) => Number.isSafeInteger(n) && n >= 0)) return null
  return { receivedAt: v[0], id: v[1] }
}
