import { BlockList } from 'node:net'
import type { Config } from '../config.js'
import { Codes } from '../errors.js'
import type { Log } from '../logger.js'
import type { Credentials } from '../publishers/policy.js'
import { splitList } from '../settings.js'
import { streamName } from '../streams.js'
import { KeyFile, keyFor } from './keys.js'
import { FailureLimiter, type FailureCounts } from './limiter.js'
import { parseCidr } from './settings.js'
import { paramsOf, refuse, secretsEqual, verifySignature, type Refusal } from './signature.js'

/**
 * Who may call the hooks (HOOK_TOKEN, HOOK_ALLOW) and who may publish (PUBLISH_AUTH) or play
 * (PLAY_AUTH). Knows nothing of HTTP: callers pass what the request says and get a verdict.
 */

export type Verdict =
  | { ok: true, via: 'off' | 'key' | 'signed' }
  | Refusal

/** What a publish or play hook says about the client. */
export interface ClientAttempt {
  vhost: string
  app: string
  stream: string
  param?: string | undefined
  ip?: string | undefined
}

/** The auth part of the configuration, checked across fields. */
export interface AuthConfig {
  hookToken: string | undefined
  hookAllow: BlockList | undefined
  trustProxy: string[] | false
  publishAuth: 'off' | 'keys' | 'signed'
  keysFile: string | undefined
  keysPollMs: number
  publishSecret: string | undefined
  playAuth: 'off' | 'signed'
  playSecret: string | undefined
  skewS: number
  failMax: number
  failWindowMs: number
}

/** The settings authentication is built from. */
export type AuthSettingsInput = Pick<Config, 'AUTH_FAIL_MAX' | 'AUTH_FAIL_WINDOW_MS' | 'HOOK_ALLOW' | 'HOOK_TOKEN' | 'PLAY_AUTH' | 'PLAY_SECRET' | 'PUBLISH_AUTH' | 'PUBLISH_SECRET' | 'SIGN_CLOCK_SKEW_S' | 'STREAM_KEYS_FILE' | 'STREAM_KEYS_POLL_MS' | 'TRUST_PROXY'>

/** The auth settings as the service uses them; loadConfig has checked how they combine (checkAuthSettings). */
export function authConfigOf (c: AuthSettingsInput): AuthConfig {
  const allow = splitList(c.HOOK_ALLOW)
  return {
    hookToken: c.HOOK_TOKEN,
    hookAllow: allow.length === 0 ? undefined : blockList(allow),
    trustProxy: c.TRUST_PROXY.trim() === '' ? false : splitList(c.TRUST_PROXY),
    publishAuth: c.PUBLISH_AUTH,
    keysFile: c.STREAM_KEYS_FILE,
    keysPollMs: c.STREAM_KEYS_POLL_MS,
    publishSecret: c.PUBLISH_SECRET,
    playAuth: c.PLAY_AUTH,
    playSecret: c.PLAY_SECRET,
    skewS: c.SIGN_CLOCK_SKEW_S,
    failMax: c.AUTH_FAIL_MAX,
    failWindowMs: c.AUTH_FAIL_WINDOW_MS
  }
}

function blockList (entries: string[]): BlockList {
  const list = new BlockList()
  for (const entry of entries) {
    if (entry === 'loopback') {
      list.addSubnet('127.0.0.0', 8, 'ipv4')
      list.addAddress('::1', 'ipv6')
      continue
    }
    // Validated by the settings' schema.
    const [address, prefix, family] = parseCidr(entry)!
    list.addSubnet(address, prefix, family)
  }
  return list
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) -> `10.0.0.1`. */
export function plainIp (ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip
}

export class AuthService {
  readonly config: AuthConfig
  readonly keyFile: KeyFile | undefined
  readonly limiter: FailureLimiter
  readonly #now: () => number
  readonly #log: Log

  constructor (config: AuthConfig, opts: { now: () => number, log: Log, failures?: FailureCounts | undefined }) {
    this.config = config
    this.#now = opts.now
    this.#log = opts.log
    this.limiter = new FailureLimiter({ max: config.failMax, windowMs: config.failWindowMs, now: opts.now, counts: opts.failures })
    if (config.publishAuth === 'keys') {
      this.keyFile = new KeyFile({ path: config.keysFile!, pollMs: config.keysPollMs, log: opts.log })
    }
  }

  /**
   * Whether a caller may call the hooks: `ip` is the peer (or the client named by a trusted
   * proxy's X-Forwarded-For), `token` the URL's ?token= value(s).
   */
  checkCaller (ip: string, token: unknown): Refusal | undefined {
    const { hookToken, hookAllow } = this.config
    if (hookToken !== undefined && (typeof token !== 'string' || !secretsEqual(token, hookToken))) {
      return refuse(Codes.HOOK_TOKEN_INVALID, `${token === undefined ? 'no' : 'a wrong'} ?token= in the hook URL; configure every hook URL in srs.conf with ?token=<HOOK_TOKEN>`)
    }
    if (hookAllow !== undefined) {
      const plain = plainIp(ip)
      if (!hookAllow.check(plain, plain.includes(':') ? 'ipv6' : 'ipv4')) {
        return refuse(Codes.HOOK_CALLER_FORBIDDEN, `caller ${plain} is not in HOOK_ALLOW (behind a proxy, list the proxy in TRUST_PROXY)`)
      }
    }
    return undefined
  }

  /**
   * Whether every hook that reaches a handler has proved it comes from SRS: HOOK_TOKEN or
   * HOOK_ALLOW is set, and checkCaller refuses any caller that fails either. With neither set,
   * anyone who can reach the hook URL may post one, and nobody is authenticated.
   */
  get callersAuthenticated (): boolean {
    return this.config.hookToken !== undefined || this.config.hookAllow !== undefined
  }

  /**
   * A publish attempt: its credentials, with failures counted against its IP (AUTH_FAIL_MAX).
   * `atConnect`: what its on_connect concluded (checkConnect); credentials counted there are not
   * counted again, only a blocked IP refused.
   */
  async checkPublish (a: ClientAttempt, atConnect?: Credentials): Promise<Verdict> {
    if (this.config.publishAuth === 'off') return { ok: true, via: 'off' }
    if (atConnect !== undefined && countedAtConnect(atConnect)) {
      // Its own attempt is among the counts: past the allowance only if others came after it.
      const ip = ipOf(a)
      if (this.limiter.over(await this.limiter.failures(ip))) return this.#rateLimited(ip)
      return this.publishCredentials(a)
    }
    return await this.#limited(a, () => this.publishCredentials(a))
  }

  /**
   * Whether the client's param carries valid publish credentials (PUBLISH_AUTH keys or signed;
   * its callers answer `off` themselves), counting nothing: at SRS's on_connect every player is
   * asked too, and a player carries no publish key.
   */
  publishCredentials (a: ClientAttempt): Verdict {
    if (this.config.publishAuth === 'signed') return this.#signed(a, this.config.publishSecret!, 'publish')
    return this.#key(a)
  }

  async checkPlay (a: ClientAttempt): Promise<Verdict> {
    if (this.config.playAuth === 'off') return { ok: true, via: 'off' }
    return await this.#limited(a, () => this.#signed(a, this.config.playSecret!, 'play'))
  }

  /**
   * SRS >= 7.0.62's on_connect: whether the param carries valid publish credentials. Credentials
   * that are present (a ?key=, a sign=) and wrong count against the IP as at on_publish (SRS's
   * token refuses a second publisher before on_publish, where they would be counted), and a
   * blocked IP is refused unchecked, so it takes nothing over. A player carries none, or its play
   * signature: not counted.
   */
  async checkConnect (a: ClientAttempt): Promise<Verdict> {
    const mode = this.config.publishAuth
    if (mode === 'off') return { ok: true, via: 'off' }
    const params = paramsOf(a.param)
    const present = mode === 'keys' ? params.has('key') : params.has('sign')
    if (!present || (this.config.playAuth === 'signed' && this.#signed(a, this.config.playSecret!, 'play').ok)) return this.publishCredentials(a)
    return await this.#limited(a, () => this.publishCredentials(a))
  }

  async #limited (a: ClientAttempt, check: () => Verdict): Promise<Verdict> {
    const ip = ipOf(a)
    // Counted before it is checked: simultaneous attempts cannot all pass the limit.
    const n = await this.limiter.attempt(ip)
    if (this.limiter.over(n)) return this.#rateLimited(ip)
    const verdict = check()
    // A key file that cannot be read is our problem, not the client's: not counted.
    if (verdict.ok || verdict.code === Codes.PUBLISH_KEYS_UNAVAILABLE) {
      await this.limiter.forgive(ip)
      return verdict
    }
    if (n === this.config.failMax) {
      this.#log.warn({ ip, failures: this.config.failMax, windowMs: this.config.failWindowMs },
        'too many failed publish/play authorisations from one IP; refusing it for the rest of the window')
    }
    return verdict
  }

  #rateLimited (ip: string): Refusal {
    return refuse(Codes.AUTH_RATE_LIMITED, `too many failed attempts from ${ip}; refused without checking for up to ${Math.round(this.config.failWindowMs / 1000)} s (AUTH_FAIL_MAX)`)
  }

  #signed (a: ClientAttempt, secret: string, what: 'publish' | 'play'): Verdict {
    const r = verifySignature({
      secret,
      name: streamName(a.vhost, a.app, a.stream),
      params: paramsOf(a.param),
      nowS: Math.floor(this.#now() / 1000),
      skewS: this.config.skewS,
      what
    })
    return r.ok ? { ok: true, via: 'signed' } : r
  }

  #key (a: ClientAttempt): Verdict {
    const file = this.keyFile!
    const name = streamName(a.vhost, a.app, a.stream)
    if (file.keys === undefined) {
      return refuse(Codes.PUBLISH_KEYS_UNAVAILABLE, `publish ${name}: no stream keys are loaded (${file.problem})`)
    }
    const expected = keyFor(file.keys, name)
    if (expected === undefined) {
      return refuse(Codes.PUBLISH_KEY_UNKNOWN_STREAM, `publish ${name}: the key file has no entry for "${name}" or "${name.slice(0, name.lastIndexOf('/'))}/*"`)
    }
    const given = paramsOf(a.param).get('key')
    if (given === null) {
      return refuse(Codes.PUBLISH_KEY_MISSING, `publish ${name}: the URL carries no ?key= (a camera with only a stream key field can enter "${a.stream}?key=<key>")`)
    }
    if (!secretsEqual(given, expected)) return refuse(Codes.PUBLISH_KEY_WRONG, `publish ${name}: wrong key`)
    return { ok: true, via: 'key' }
  }
}

/** The address an attempt is counted against. */
function ipOf (a: ClientAttempt): string {
  return a.ip ?? 'unknown'
}

/** Whether checkConnect counted the credentials it concluded this about (they were present). */
function countedAtConnect (c: Credentials): boolean {
  return c.kind === 'valid' || (c.kind === 'invalid' && c.code !== Codes.PUBLISH_KEY_MISSING && c.code !== Codes.SIGNATURE_MISSING)
}

/** The policy's view of a publish verdict. */
export function credentialsOf (v: Verdict): Credentials {
  if (!v.ok) return { kind: 'invalid', code: v.code, msg: v.msg }
  return v.via === 'off' ? { kind: 'none' } : { kind: 'valid' }
}
