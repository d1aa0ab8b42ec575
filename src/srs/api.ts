import type { Dispatcher } from 'undici'
import { ApiDispatcher } from '../http/dispatcher.js'
import { SrsApiError } from '../errors.js'
import type { LiveClientView, LiveStreamView } from '../streams.js'

/**
 * SRS's HTTP API (docs/srs-protocol.md section 5): the only code that talks to SRS.
 *
 * Every call is bounded by SRS_API_TIMEOUT_MS and, when the caller passes one, by its deadline.
 * Reads are retried with exponential backoff and full jitter while the deadline allows; the kick
 * (DELETE) is never retried. Every failure surfaces as an SrsApiError with a kind.
 */

/** The parts of a stream object we read. `vhost` is a vhost id (`vid-…`), not its name; `url` is SRS >= 5.0.55's. */
export type SrsStream = LiveStreamView

/** The parts of a client object we read. `stream` is a stream id. */
export interface SrsClient extends LiveClientView {
  stream: string
  url?: string
  name?: string
  type: string
  publish: boolean
  recv_bytes?: number
}

export interface SrsVersion { version: string, major: number, minor: number, revision: number }

/** A vhost as SRS lists it: its id (what streams and clients name) and its configured name. */
export interface SrsVhost { id: string, name: string }

/** What the API's answers say about the server behind it, and whether it is answering. */
export interface SrsApiStatus {
  /** `server` of the last answer: SRS's server id, kept across restarts. */
  server: string | undefined
  /** `service` of the last answer: new at every start of SRS (absent before 5.0.135). */
  service: string | undefined
  /** Whether the last call got an answer. */
  up: boolean
}

export interface CallOptions {
  /** Absolute time (same clock as `now`) past which the call gives up. */
  deadline?: number
}

export interface SrsApiOptions {
  url: string
  auth?: { username: string, password: string } | undefined
  timeoutMs: number
  retries: number
  pageSize: number
  /** Injected for tests; by default a Pool on `url`, closed by close(). */
  dispatcher?: Dispatcher
  now?: () => number
  random?: () => number
  /**
   * Called when an answer names another server or service than the one before (SRS restarted,
   * or the URL now reaches another SRS), and when the API answers again after failing.
   */
  onChange?: (status: SrsApiStatus, why: 'identity' | 'recovered') => void
}

const RETRY_BASE_MS = 25
const RETRY_MAX_MS = 500

/** SRS envelope codes that are answers, not failures. */
export const SRS_STREAM_NOT_FOUND = 2048
export const SRS_CLIENT_NOT_FOUND = 2049

type Envelope = Record<string, unknown> & { code: number }

export class SrsApi {
  readonly url: string
  readonly #dispatcher: ApiDispatcher
  readonly #headers: Record<string, string>
  readonly #timeoutMs: number
  readonly #retries: number
  readonly #pageSize: number
  readonly #now: () => number
  readonly #random: () => number
  /** API requests sent, for tests and metrics. */
  requests = 0
  readonly status: SrsApiStatus = { server: undefined, service: undefined, up: true }
  readonly #onChange: SrsApiOptions['onChange']

  constructor (opts: SrsApiOptions) {
    this.url = opts.url
    this.#dispatcher = new ApiDispatcher(opts.url, opts.timeoutMs, opts.dispatcher)
    this.#headers = { accept: 'application/json' }
    if (opts.auth !== undefined) {
      const token = Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')
      this.#headers.authorization = `Basic ${token}`
    }
    this.#timeoutMs = opts.timeoutMs
    this.#retries = opts.retries
    this.#pageSize = opts.pageSize
    this.#now = opts.now ?? Date.now
    this.#random = opts.random ?? Math.random
    this.#onChange = opts.onChange
  }

  async versions (opts?: CallOptions): Promise<SrsVersion> {
    const env = await this.#read('/api/v1/versions', opts)
    const data = env.data as Partial<SrsVersion> | undefined
    if (typeof data?.version !== 'string') throw badBody('/api/v1/versions', 'no data.version')
    return { version: data.version, major: Number(data.major), minor: Number(data.minor), revision: Number(data.revision) }
  }

  /** One page of streams. SRS raises `count` to at least 10 and has no maximum. */
  async streams (start: number, count: number, opts?: CallOptions): Promise<SrsStream[]> {
    const env = await this.#read(`/api/v1/streams/?start=${start}&count=${count}`, opts)
    if (!Array.isArray(env.streams)) throw badBody('/api/v1/streams/', 'no streams array')
    return env.streams.map((s) => toStream(s, '/api/v1/streams/'))
  }

  /** Every stream, page by page, until a page comes back short. */
  async allStreams (opts?: CallOptions): Promise<SrsStream[]> {
    const all: SrsStream[] = []
    let page: SrsStream[]
    do {
      page = await this.streams(all.length, this.#pageSize, opts)
      for (const s of page) all.push(s)
    } while (page.length === this.#pageSize)
    return all
  }

  /** One stream by id, or null when SRS does not know it (2048). */
  async stream (id: string, opts?: CallOptions): Promise<SrsStream | null> {
    const path = `/api/v1/streams/${encodeURIComponent(id)}`
    const env = await this.#read(path, opts, SRS_STREAM_NOT_FOUND)
    if (env.code === SRS_STREAM_NOT_FOUND) return null
    return toStream(env.stream, path)
  }

  /** Every vhost: SRS's streams and clients name theirs by id. */
  async vhosts (opts?: CallOptions): Promise<SrsVhost[]> {
    const env = await this.#read('/api/v1/vhosts/', opts)
    if (!Array.isArray(env.vhosts)) throw badBody('/api/v1/vhosts/', 'no vhosts array')
    return env.vhosts.filter(isObject).filter((v) => typeof v.id === 'string' && typeof v.name === 'string')
      .map((v) => ({ id: v.id as string, name: v.name as string }))
  }

  async clients (start: number, count: number, opts?: CallOptions): Promise<SrsClient[]> {
    const env = await this.#read(`/api/v1/clients/?start=${start}&count=${count}`, opts)
    if (!Array.isArray(env.clients)) throw badBody('/api/v1/clients/', 'no clients array')
    return env.clients.map((c) => toClient(c, '/api/v1/clients/'))
  }

  /** One client by id, or null when SRS does not know it (2049: it is gone). */
  async client (id: string, opts?: CallOptions): Promise<SrsClient | null> {
    const path = `/api/v1/clients/${encodeURIComponent(id)}`
    const env = await this.#read(path, opts, SRS_CLIENT_NOT_FOUND)
    if (env.code === SRS_CLIENT_NOT_FOUND) return null
    return toClient(env.client, path)
  }

  /**
   * Kicks a client. SRS answers at once and releases the client asynchronously, so 'kicked' does
   * not mean the stream is free yet. 'gone': SRS no longer knows the client (2049).
   */
  async kick (id: string, opts?: CallOptions): Promise<'kicked' | 'gone'> {
    const path = `/api/v1/clients/${encodeURIComponent(id)}`
    const env = await this.#call('DELETE', path, opts, SRS_CLIENT_NOT_FOUND)
    return env.code === SRS_CLIENT_NOT_FOUND ? 'gone' : 'kicked'
  }

  async close (): Promise<void> {
    await this.#dispatcher.close()
  }

  async #read (path: string, opts: CallOptions | undefined, accept?: number): Promise<Envelope> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#call('GET', path, opts, accept)
      } catch (err) {
        const e = err as SrsApiError
        if (!e.retryable || attempt >= this.#retries) throw e
        const pause = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt) * this.#random()
        if (opts?.deadline !== undefined && this.#now() + pause >= opts.deadline) throw e
        await new Promise((resolve) => setTimeout(resolve, pause))
      }
    }
  }

  async #call (method: 'GET' | 'DELETE', path: string, opts: CallOptions | undefined, accept?: number): Promise<Envelope> {
    const budget = opts?.deadline === undefined
      ? this.#timeoutMs
      : Math.min(this.#timeoutMs, opts.deadline - this.#now())
    if (budget <= 0) throw new SrsApiError('deadline', `${method} ${path}: no time left before the deadline`)
    this.requests++
    let status: number
    let text: string
    try {
      ({ status, text } = await this.#dispatcher.read({ method, path, headers: this.#headers }, budget))
    } catch (err) {
      throw this.#failed(mapNetworkError(method, path, budget, err), budget)
    }
    if (status === 401) {
      throw new SrsApiError('unauthorized', `${method} ${path}: SRS answered 401; check SRS_API_USERNAME/SRS_API_PASSWORD against http_api.auth`, 401)
    }
    if (status !== 200) {
      throw new SrsApiError('http_status', `${method} ${path}: SRS answered HTTP ${status}`, status)
    }
    let env: unknown
    try {
      env = JSON.parse(text)
    } catch {
      throw badBody(path, 'not JSON')
    }
    if (typeof env !== 'object' || env === null || !Number.isInteger((env as Envelope).code)) {
      throw badBody(path, 'no integer code')
    }
    this.#answered(env as Envelope)
    const code = (env as Envelope).code
    if (code !== 0 && code !== accept) {
      throw new SrsApiError('api_code', `${method} ${path}: SRS answered code ${code}`, code)
    }
    return env as Envelope
  }

  /** Notes who answered; tells when the server's identity changed or the API came back. */
  #answered (env: Envelope): void {
    const st = this.status
    const server = typeof env.server === 'string' ? env.server : st.server
    const service = typeof env.service === 'string' ? env.service : st.service
    const changed = (st.server !== undefined && server !== st.server) || (st.service !== undefined && service !== st.service)
    const recovered = !st.up
    st.server = server
    st.service = service
    st.up = true
    if (changed) this.#onChange?.(st, 'identity')
    else if (recovered) this.#onChange?.(st, 'recovered')
  }

  /**
   * A call that got no answer. Cut short by the caller's deadline (less time than
   * SRS_API_TIMEOUT_MS was left), a timeout says nothing about SRS: it is the caller's bound that
   * ran out ('deadline'). Otherwise the API is down as far as we know.
   */
  #failed (err: SrsApiError, budget: number): SrsApiError {
    if (err.kind === 'timeout' && budget < this.#timeoutMs) {
      return new SrsApiError('deadline', `${err.message} (the caller's bound, not SRS_API_TIMEOUT_MS)`, undefined, { cause: err, unknownOutcome: err.unknownOutcome })
    }
    this.status.up = false
    return err
  }
}

function badBody (path: string, why: string): SrsApiError {
  return new SrsApiError('bad_body', `${path}: unexpected answer from SRS (${why})`)
}

/** Errors after which the request cannot have reached SRS. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

function mapNetworkError (method: string, path: string, budget: number, err: unknown): SrsApiError {
  const e = err as { name?: string, code?: string, message?: string }
  const code = e.code
  // Unless the connection was never made, the request may have been carried out.
  const unknownOutcome = code === undefined || !NOT_SENT.has(code)
  const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
  if (timedOut) {
    return new SrsApiError('timeout', `${method} ${path}: no answer from SRS within ${budget} ms`, undefined, { cause: err, unknownOutcome })
  }
  return new SrsApiError('unreachable', `${method} ${path}: SRS's API is unreachable (${String(e.message)})`, undefined, { cause: err, unknownOutcome })
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null
}

function toStream (v: unknown, path: string): SrsStream {
  if (!isObject(v) || typeof v.id !== 'string' || typeof v.name !== 'string' || typeof v.app !== 'string') {
    throw badBody(path, 'stream without id, name or app')
  }
  const publish = isObject(v.publish) ? v.publish : {}
  const stream: SrsStream = {
    id: v.id,
    name: v.name,
    app: v.app,
    vhost: typeof v.vhost === 'string' ? v.vhost : '',
    publish: { active: publish.active === true }
  }
  if (typeof publish.cid === 'string' && publish.cid !== '') stream.publish.cid = publish.cid
  if (typeof v.url === 'string') stream.url = v.url
  if (typeof v.clients === 'number') stream.clients = v.clients
  if (typeof v.recv_bytes === 'number') stream.recv_bytes = v.recv_bytes
  return stream
}

function toClient (v: unknown, path: string): SrsClient {
  if (!isObject(v) || typeof v.id !== 'string') throw badBody(path, 'client without id')
  const client: SrsClient = {
    id: v.id,
    stream: typeof v.stream === 'string' ? v.stream : '',
    type: typeof v.type === 'string' ? v.type : '',
    publish: v.publish === true
  }
  if (typeof v.url === 'string') client.url = v.url
  if (typeof v.name === 'string') client.name = v.name
  if (typeof v.ip === 'string') client.ip = v.ip
  if (typeof v.alive === 'number') client.alive = v.alive
  if (typeof v.recv_bytes === 'number') client.recv_bytes = v.recv_bytes
  return client
}
