import { isIP } from 'node:net'
import { Type } from 'typebox'
import { ConfigError } from '../errors.js'
import { Millis, splitList } from '../settings.js'

/**
 * Settings for who may call the hooks and who may publish or play, merged into ConfigSchema.
 * docs/configuration.md documents each one; keep the two in step. Cross-field rules
 * (a mode that needs a secret or a file) are checkAuthSettings(), which loadConfig applies: serve,
 * doctor and every command refuse the same configurations.
 */

/** Names proxy-addr (Fastify's trustProxy) knows, besides addresses and CIDRs. */
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** `10.0.0.0/8`, `192.168.1.7`, `::1`, `fd00::/8`: returns [address, prefix, family] or undefined. */
export function parseCidr (entry: string): [string, number, 'ipv4' | 'ipv6'] | undefined {
  const slash = entry.indexOf('/')
  const address = slash === -1 ? entry : entry.slice(0, slash)
  const version = isIP(address)
  if (version === 0) return undefined
  const max = version === 4 ? 32 : 128
  if (slash === -1) return [address, max, version === 4 ? 'ipv4' : 'ipv6']
  const bits = entry.slice(slash + 1)
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined
  return [address, Number(bits), version === 4 ? 'ipv4' : 'ipv6']
}

const badEntries = (value: string, extra: Set<string>): string[] =>
  splitList(value).filter((e) => !extra.has(e) && parseCidr(e) === undefined)

const Secret = Type.Optional(Type.String({ minLength: 16, maxLength: 1024 }))

export const AuthSettings = {
  /** Every callback must carry ?token=<HOOK_TOKEN> in its URL. */
  HOOK_TOKEN: Type.Optional(Type.String({ minLength: 8, maxLength: 1024 })),
  /** IPs/CIDRs allowed to call the callbacks; empty allows any. */
  HOOK_ALLOW: Type.Refine(Type.String({ default: '' }),
    (v: string) => badEntries(v, new Set(['loopback'])).length === 0,
    (v: string) => `not an IP or CIDR: ${badEntries(v, new Set(['loopback'])).join(', ')}`),
  /** Proxies whose X-Forwarded-For is believed; empty believes none. */
  TRUST_PROXY: Type.Refine(Type.String({ default: '' }),
    (v: string) => badEntries(v, PROXY_NAMES).length === 0,
    (v: string) => `not an IP, CIDR, loopback, linklocal or uniquelocal: ${badEntries(v, PROXY_NAMES).join(', ')}`),
  PUBLISH_AUTH: Type.Union([Type.Literal('off'), Type.Literal('keys'), Type.Literal('signed')], { default: 'off' }),
  STREAM_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  STREAM_KEYS_POLL_MS: Millis(2000, 20),
  PUBLISH_SECRET: Secret,
  PLAY_AUTH: Type.Union([Type.Literal('off'), Type.Literal('signed')], { default: 'off' }),
  PLAY_SECRET: Secret,
  /** Seconds a signed URL is still accepted after its `expires`, for clocks that disagree. */
  SIGN_CLOCK_SKEW_S: Type.Integer({ default: 30, minimum: 0, maximum: 3600 }),
  AUTH_FAIL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 100_000 }),
  AUTH_FAIL_WINDOW_MS: Millis(60_000)
}

/** Fastify's trustProxy from TRUST_PROXY: the listed proxies, or false (trust no X-Forwarded-For). */
export function trustProxyOf (value: string): string[] | false {
  const list = splitList(value)
  return list.length === 0 ? false : list
}

/** The rules that combine auth settings; throws ConfigError naming the variables. */
export function checkAuthSettings (c: { PUBLISH_AUTH: string, STREAM_KEYS_FILE?: string | undefined, PUBLISH_SECRET?: string | undefined, PLAY_AUTH: string, PLAY_SECRET?: string | undefined }): void {
  const missing = (need: string, because: string): never => {
    throw new ConfigError(`invalid configuration: ${need} must be set when ${because}`)
  }
  if (c.PUBLISH_AUTH === 'keys' && c.STREAM_KEYS_FILE === undefined) missing('STREAM_KEYS_FILE', 'PUBLISH_AUTH=keys')
  if (c.PUBLISH_AUTH === 'signed' && c.PUBLISH_SECRET === undefined) missing('PUBLISH_SECRET', 'PUBLISH_AUTH=signed')
  if (c.PLAY_AUTH === 'signed' && c.PLAY_SECRET === undefined) missing('PLAY_SECRET', 'PLAY_AUTH=signed')
  if (c.PUBLISH_SECRET !== undefined && c.PUBLISH_SECRET === c.PLAY_SECRET) {
    throw new ConfigError('invalid configuration: PLAY_SECRET must differ from PUBLISH_SECRET, or every play URL could publish')
  }
}
