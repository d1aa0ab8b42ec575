import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { extname } from 'node:path'
import type { PlayOptions, PublishOptions, PublishResult, SimOptions } from '../../test/fixtures/srs-sim.js'

const STARTUP_TIMEOUT_MS = 60_000

/**
 * Publishers arriving spread over a time (SimProcess.publishSpread): from the first arrival, the
 * ms until the last attempt ended (on air, or refused); each attempt's ms from its arrival to its
 * end; the attempts refused, with their codes.
 */
export interface Spread { ms: number, attemptsMs: number[], refused: number, codes: number[] }

/**
 * The SRS simulator running in its own process (sim-process.ts), driven over IPC: the methods the
 * bench uses, each a round trip. It inherits the bench's CPUs (the non-server ones when pinned).
 */
export class SimProcess {
  readonly #child: ChildProcess
  readonly #pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  #next = 0
  /** SRS's HTTP API (and the simulator's hooks' source). */
  readonly apiUrl: string

  private constructor (child: ChildProcess, apiUrl: string) {
    this.#child = child
    this.apiUrl = apiUrl
    child.on('message', (m: { id: number, result?: unknown, error?: string }) => {
      const p = this.#pending.get(m.id)!
      this.#pending.delete(m.id)
      if (m.error === undefined) p.resolve(m.result)
      else p.reject(new Error(`simulator: ${m.error}`))
    })
  }

  static async start (opts: SimOptions = {}): Promise<SimProcess> {
    const entry = new URL('./sim-process' + extname(import.meta.url), import.meta.url)
    const child = fork(entry, [JSON.stringify(opts)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    const [ready] = await once(child, 'message', { signal: AbortSignal.timeout(STARTUP_TIMEOUT_MS) }) as [{ url: string }]
    return new SimProcess(child, ready.url)
  }

  async publish (o: PublishOptions): Promise<PublishResult> { return await this.#call('publish', o) as PublishResult }
  async play (o: PlayOptions): Promise<PublishResult> { return await this.#call('play', o) as PublishResult }
  /**
   * Publishers of `${prefix}0` to `${prefix}${n - 1}` (app live) arriving one after another, evenly
   * spaced over `overMs`, each trying once; paced inside the simulator's process, so that the
   * arrivals and their ends are timed where SRS would see them.
   */
  async publishSpread (n: number, prefix: string, overMs: number): Promise<Spread> { return await this.#call('publishSpread', n, prefix, overMs) as Spread }
  async seedLive (n: number, o: { app?: string, prefix?: string, stalled?: boolean } = {}): Promise<void> { await this.#call('seedLive', n, o) }
  async setReleaseDelay (ms: number): Promise<void> { await this.#call('setReleaseDelay', ms) }
  async setHookBase (base: string): Promise<void> { await this.#call('setHookBase', base) }
  async clientIds (): Promise<string[]> { return await this.#call('clientIds') as string[] }
  /** API requests the simulator answered so far. */
  async apiRequests (): Promise<number> { return await this.#call('apiRequests') as number }
  /** The time of the last `hook` about `clientId` as the simulator saw it (connect, send, reply), ms. */
  async hookMs (hook: string, clientId: string): Promise<number> {
    const ms = await this.#call('hookMs', hook, clientId) as number | undefined
    if (ms === undefined) throw new Error(`simulator: no ${hook} of ${clientId}`)
    return ms
  }

  async close (): Promise<void> {
    const exited = once(this.#child, 'exit')
    this.#child.disconnect()
    await exited
  }

  async #call (method: string, ...args: unknown[]): Promise<unknown> {
    const id = this.#next++
    return await new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#child.send({ id, method, args })
    })
  }
}
