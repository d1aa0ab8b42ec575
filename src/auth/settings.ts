import { isIP } from 'node:net'
import { STALE_PROBE_DEFAULT_MS } from '../publishers/service.js'
import { Type } from 'typebox'

/**
 * Settings for who may call the hooks and who may publish or play, merged into ConfigSchema.
 * README.md ("Configuration") documents each one; keep the two in step. Cross-field rules
 * (a mode that needs a secret or a file) are checked by checkAuthConfig() when the app is built.
 */

const Millis = (def: number, min = 1) => Type.Integer({ default: def, minimum: min, maximum: 3_600_000 })

export const POLICIES = ['takeover', 'takeover-stale', 'reject'] as const
export type Policy = typeof POLICIES[number]

/** Names proxy-addr (Fastify's trustProxy) knows, besides addresses and CIDRs. */
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** Splits a comma-separated list, dropping blanks. */
export function splitList (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

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

/** `live=takeover, studio=reject` -> { live: 'takeover', studio: 'reject' }; throws on a bad entry. */
export function parsePolicyByApp (value: string): Record<string, Policy> {
  const out: Record<string, Policy> = Object.create(null)
  for (const entry of splitList(value)) {
    const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(entry)
    if (m === null || !(POLICIES as readonly string[]).includes(m[2]!)) {
      throw new Error(`"${entry}" is not app=${POLICIES.join('|')}`)
    }
    out[m[1]!] = m[2] as Policy
  }
  return out
}

function policyByAppError (value: string): string {
  try {
    parsePolicyByApp(value)
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

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
  TAKEOVER_POLICY: Type.Union(POLICIES.map((p) => Type.Literal(p)), { default: 'takeover' }),
  TAKEOVER_POLICY_BY_APP: Type.Refine(Type.String({ default: '' }),
    (v: string) => policyByAppError(v) === '', policyByAppError),
  STALE_PROBE_MS: Millis(STALE_PROBE_DEFAULT_MS, 10),
  FLAP_MAX: Type.Integer({ default: 3, minimum: 1, maximum: 1000 }),
  FLAP_WINDOW_MS: Millis(60_000),
  FLAP_COOLDOWN_MS: Millis(120_000),
  AUTH_FAIL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 100_000 }),
  AUTH_FAIL_WINDOW_MS: Millis(60_000)
}

/** Fastify's trustProxy from TRUST_PROXY: the listed proxies, or false (trust no X-Forwarded-For). */
export function trustProxyOf (value: string): string[] | false {
  const list = splitList(value)
  return list.length === 0 ? false : list
}
