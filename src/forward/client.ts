import { Pool, type Dispatcher } from 'undici'

/**
 * The platform's callback, as srs-hooks calls it: one POST of a hook's body to the URL (its
 * `{action}` replaced), within a bound, through a Pool of our own (never the global dispatcher nor
 * fetch). Redirects are not followed (undici's request does not; a 3xx is an answer like any
 * other), and no more than REPLY_LIMIT bytes of the reply are read.
 */

/** The most of a reply body that is read; the rest is cut. */
export const REPLY_LIMIT = 4096

/** Which media server's hooks, and so which reply contract. */
export type Target = 'srs' | 'zlm'

/** The platform's answer (its status and up to REPLY_LIMIT bytes of its body), or why there is none. */
export type PlatformAnswer =
  | { ok: true, status: number, text: string, ms: number }
  | { ok: false, kind: 'timeout' | 'unreachable', message: string, ms: number }

export interface PlatformClientOptions {
  url: string
  headers: Record<string, string>
  connections?: number
  /** Tests: a dispatcher of their own. */
  dispatcher?: Dispatcher
}

export class PlatformClient {
  readonly url: string
  /** The URL a hook goes to, its credentials hidden (for logs and the operator API). */
  readonly where: string
  readonly #origin: string
  readonly #path: string
  readonly #headers: Record<string, string>
  readonly #pool: Dispatcher
  readonly #owned: boolean

  constructor (opts: PlatformClientOptions) {
    this.url = opts.url
    const at = opts.url.indexOf('/', opts.url.indexOf('//') + 2)
    const u = new URL(at < 0 ? opts.url : opts.url.slice(0, at))
    this.#origin = u.origin
    this.#path = at < 0 ? '/' : opts.url.slice(at)
    // An origin has no credentials: those of the URL are sent as Basic authorization, as curl does,
    // unless FORWARD_HEADERS names an Authorization of its own.
    const credentials = u.username !== '' || u.password !== ''
    this.#headers = credentials && opts.headers.authorization === undefined
      ? { ...opts.headers, authorization: `Basic ${Buffer.from(`${decoded(u.username)}:${decoded(u.password)}`).toString('base64')}` }
      : opts.headers
    this.where = `${u.protocol}//${credentials ? '***@' : ''}${u.host}${this.#path}`
    this.#owned = opts.dispatcher === undefined
    this.#pool = opts.dispatcher ?? new Pool(this.#origin, { connections: opts.connections ?? 64, keepAliveTimeout: 4000, connectTimeout: 2000 })
  }

  /**
   * POSTs `body` (a hook's JSON, unchanged) for `action`, within `budgetMs`; never throws. The
   * bound covers the whole exchange, the reply's body included (undici's headersTimeout and
   * bodyTimeout would each bound one phase, or one wait between chunks): one timer, cleared once
   * the answer is read. (AbortSignal.timeout would leave a timer per request running for
   * `budgetMs`, to fire answered or not, and build an exception each time.)
   */
  async post (action: string, body: string, budgetMs: number, extra: Record<string, string> = {}): Promise<PlatformAnswer> {
    const started = performance.now()
    const ms = (): number => performance.now() - started
    if (budgetMs <= 0) return { ok: false, kind: 'timeout', message: 'no time left to ask the platform', ms: 0 }
    const abort = new AbortController()
    let late = false
    const timer = setTimeout(() => { late = true; abort.abort() }, budgetMs)
    let answer: PlatformAnswer
    try {
      const res = await this.#pool.request({
        origin: this.#origin,
        path: this.#path.replaceAll('{action}', action),
        method: 'POST',
        headers: { ...this.#headers, ...extra, 'content-type': 'application/json' },
        body,
        signal: abort.signal
      })
      const text = await readCapped(res.body, REPLY_LIMIT)
      answer = { ok: true, status: res.statusCode, text, ms: ms() }
    } catch (err) {
      const e = err as Error & { code?: string }
      answer = late
        ? { ok: false, kind: 'timeout', message: `no answer within ${budgetMs} ms`, ms: ms() }
        : { ok: false, kind: 'unreachable', message: e.code ?? e.message, ms: ms() }
    }
    clearTimeout(timer)
    return answer
  }

  async close (): Promise<void> {
    if (this.#owned) await this.#pool.close()
  }
}

/** A URL's user or password, percent-decoded (a `%` that starts no escape is kept as it is). */
function decoded (v: string): string {
  try {
    return decodeURIComponent(v)
  } catch {
    return v
  }
}

/** Up to `limit` bytes of a body as text; past it the body is destroyed (its connection is not reused). */
async function readCapped (body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    size += chunk.length
    if (size > limit) {
      body.destroy()
      break
    }
  }
  const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
  return all.subarray(0, limit).toString('utf8')
}
