import { readFile, stat } from 'node:fs/promises'
import type { Log } from '../logger.js'

/**
 * Per-stream publish keys from a JSON file: `{"live/cam1": "k1", "live/*": "k-for-the-app"}`.
 * An exact `app/stream` entry wins over its app's `app/*` entry. Streams of another vhost than the
 * default are named with it in front: `"studio.example.com/live/cam1"`, `"studio.example.com/live/*"`;
 * the short form only ever names the default vhost.
 *
 * The file is polled (stat every STREAM_KEYS_POLL_MS, read when its inode, size, mtime or ctime
 * changed) rather than watched with fs.watch: inotify watches an inode, so it loses the file when
 * an editor, `kubectl`/ConfigMap or `mv` replaces it by rename, and its events do not cross every
 * bind mount or network filesystem (Docker Desktop, NFS). A stat per period works everywhere.
 * In Docker, mount the key file's directory rather than the file itself: a single-file bind mount
 * pins the old inode when the host replaces the file by rename.
 */

const MAX_FILE_BYTES = 1_048_576
const NAME = /^([^/\s]+\/)?[^/\s]+\/[^/\s]+$/

export type KeyTable = ReadonlyMap<string, string>

/** Parses the file's text; throws an Error saying what is wrong. */
export function parseKeys (text: string): KeyTable {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new Error('not a JSON object mapping "[vhost/]app/stream" (or "[vhost/]app/*") to a key')
  }
  const keys = new Map<string, string>()
  for (const [name, key] of Object.entries(data)) {
    if (!NAME.test(name)) throw new Error(`entry ${JSON.stringify(name)} is not "[vhost/]app/stream" or "[vhost/]app/*"`)
    if (typeof key !== 'string' || key.length < 1 || key.length > 1024) {
      throw new Error(`the key of ${JSON.stringify(name)} is not a string of 1 to 1024 characters`)
    }
    keys.set(name, key)
  }
  return keys
}

/** The key that guards a stream (named by streamName()), if any: its own entry, else its app's. */
export function keyFor (keys: KeyTable, name: string): string | undefined {
  return keys.get(name) ?? keys.get(`${name.slice(0, name.lastIndexOf('/'))}/*`)
}

export interface KeyFileOptions {
  path: string
  pollMs: number
  log: Log
}

/** The key file, kept loaded: the last good table survives a broken or missing file. */
export class KeyFile {
  /** The last good table; undefined until one was loaded. */
  keys: KeyTable | undefined
  /** Why the file is not (or no longer) what is loaded, for the refusal message; '' when all is well. */
  problem = 'not loaded yet'
  /** Successful loads, for tests and diagnostics. */
  loads = 0
  readonly #opts: KeyFileOptions
  #signature = ''
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (opts: KeyFileOptions) {
    this.#opts = opts
  }

  /** Loads the file once now, then polls it until stop(). */
  async start (): Promise<void> {
    await this.check()
    this.#schedule()
  }

  stop (): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }

  /** Reloads if the file changed since the last look. Never throws. */
  async check (): Promise<void> {
    const { path, log } = this.#opts
    let signature: string
    try {
      const s = await stat(path)
      signature = `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
      if (signature === this.#signature) return
      if (s.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`)
      this.keys = parseKeys(await readFile(path, 'utf8'))
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the file does not exist' : (err as Error).message
      const problem = `STREAM_KEYS_FILE ${path}: ${why}`
      if (problem !== this.problem) {
        log.error({ file: path, why, keeping: this.keys?.size ?? 0 },
          this.keys === undefined ? 'stream keys not loaded; every publish is refused until the file is fixed' : 'stream key file is broken; keeping the last good keys')
      }
      this.problem = problem
      // Remember nothing, so that the next look reads the file again whatever changed.
      this.#signature = ''
      return
    }
    this.#signature = signature
    this.problem = ''
    this.loads++
    log.info({ file: path, streams: this.keys.size }, 'stream keys loaded')
  }

  #schedule (): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => { void this.check().then(() => this.#schedule()) }, this.#opts.pollMs)
    this.#timer.unref()
  }
}
