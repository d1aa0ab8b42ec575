import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { extname } from 'node:path'
import type { PlatformSummary } from './platform-process.js'

const STARTUP_TIMEOUT_MS = 60_000

/**
 * The platform's callback (platform-process.ts) in its own process, driven over IPC. Like the
 * simulator it inherits the bench's CPUs (the non-server ones when pinned).
 */
export class PlatformProcess {
  readonly #child: ChildProcess
  readonly #pending = new Map<number, (v: unknown) => void>()
  #next = 0
  /** FORWARD_URL for it: `{action}` in the path, as a platform's callback has it. */
  readonly url: string

  private constructor (child: ChildProcess, origin: string) {
    this.#child = child
    this.url = `${origin}/admin-api/video/camera/callback/{action}`
    child.on('message', (m: { id: number, result: unknown }) => {
      const resolve = this.#pending.get(m.id)!
      this.#pending.delete(m.id)
      resolve(m.result)
    })
  }

  /** A platform that answers every request `{"code":0}` after `delayMs`. */
  static async start (delayMs: number): Promise<PlatformProcess> {
    const entry = new URL('./platform-process' + extname(import.meta.url), import.meta.url)
    const child = fork(entry, [String(delayMs)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    const [ready] = await once(child, 'message', { signal: AbortSignal.timeout(STARTUP_TIMEOUT_MS) }) as [{ url: string }]
    return new PlatformProcess(child, ready.url)
  }

  /** Forgets what it recorded: the next summary counts from now. */
  async clear (): Promise<void> { await this.#call('clear') }
  async summary (): Promise<PlatformSummary> { return await this.#call('summary') as PlatformSummary }

  async close (): Promise<void> {
    const exited = once(this.#child, 'exit')
    this.#child.disconnect()
    await exited
  }

  async #call (method: string): Promise<unknown> {
    const id = this.#next++
    return await new Promise((resolve) => {
      this.#pending.set(id, resolve)
      this.#child.send({ id, method })
    })
  }
}
