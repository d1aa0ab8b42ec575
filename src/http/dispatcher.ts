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

  get (): Dispatcher | Promise<Dispatcher> {
    this.#dispatcher ??= import('./pool.js').then(({ apiPool }) => apiPool(this.#url, this.#connectTimeoutMs))
    return this.#dispatcher
  }

  /** Closes our Pool (an injected dispatcher is its owner's). Made now if no call made it, so that a call after close() fails as with the Pool closed. */
  async close (): Promise<void> {
    if (this.#owned) await (await this.get()).close()
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
