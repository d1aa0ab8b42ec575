import { StringDecoder } from 'node:string_decoder'
import type { Dispatcher } from 'undici'

/**
 * A media server API client's dispatcher: the one injected (tests), or our Pool (http/pool.ts)
 * made at the first call, so that a start does not load undici for the hooks that need no API
 * call. Shared by the SRS and ZLMediaKit clients.
 */
export class ApiDispatcher {
  readonly #url: string
  readonly #connectTimeoutMs: number
  readonly #owned: boolean
  #dispatcher: Dispatcher | Promise<Dispatcher> | undefined

  constructor (url: string, connectTimeoutMs: number, injected?: Dispatcher) {
    this.#url = url
    this.#connectTimeoutMs = connectTimeoutMs
    this.#owned = injected === undefined
    this.#dispatcher = injected
  }

  /**
   * One call to the API within `budgetMs` (undici's header and body timeouts, and a signal for the
   * whole call) and its answer: the body as text when the status is 200 (bodyText), read to its end
   * and dropped otherwise. What fails (connecting, a timeout, a body cut short) is thrown as undici
   * throws it, for the client to say what it means.
   */
  async read (call: Pick<Dispatcher.RequestOptions, 'method' | 'path' | 'headers' | 'body'>, budgetMs: number): Promise<{ status: number, text: string }> {
    const res = await (await this.#get()).request({ ...call, origin: this.#url, headersTimeout: budgetMs, bodyTimeout: budgetMs, signal: AbortSignal.timeout(budgetMs) })
    if (res.statusCode !== 200) {
      await res.body.dump()
      return { status: res.statusCode, text: '' }
    }
    return { status: 200, text: await bodyText(res.body) }
  }

  /** Closes our Pool (an injected dispatcher is its owner's). Made now if no call made it, so that a call after close() fails as with the Pool closed. */
  async close (): Promise<void> {
    if (this.#owned) await (await this.#get()).close()
  }

  #get (): Dispatcher | Promise<Dispatcher> {
    this.#dispatcher ??= import('./pool.js').then(({ apiPool }) => apiPool(this.#url, this.#connectTimeoutMs))
    return this.#dispatcher
  }
}

/**
 * A response's body as text, decoded as its chunks arrive (a character split between two chunks
 * included; undici's body yields Buffers whatever its encoding is set to). undici's `body.text()`
 * first joins the chunks into one Buffer of the body's size, outside V8's heap: for each page of a
 * listing (about 450 KB for SRS's 1,000 streams) an allocation that the C allocator keeps in the
 * process once freed, which took tens of MB of resident memory over a reconciliation of 100,000
 * streams (BENCHMARKS.md). The decoded text is a string in V8's heap instead. A leading byte order
 * mark is dropped, as `body.text()` drops it.
 */
export async function bodyText (body: AsyncIterable<Buffer>): Promise<string> {
  const decoder = new StringDecoder('utf8')
  let text = ''
  for await (const chunk of body) text += decoder.write(chunk)
  text += decoder.end()
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
}
