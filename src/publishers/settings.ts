import { Type } from 'typebox'
import { errorOf, Millis } from '../settings.js'
import { appName } from '../streams.js'
import { POLICIES, type Policy } from './policy.js'
import { PUBLISHERS_MAX_BYTES } from './store.js'

/**
 * Settings of the takeover and the publisher table, merged into ConfigSchema. docs/configuration.md
 * documents each one with its default; keep the two in step.
 */

/** `live=takeover, studio.example.com/live=reject` -> { live: 'takeover', ... }; throws on a bad entry. */
export function parsePolicyByApp (value: string): Record<string, Policy> {
  const out: Record<string, Policy> = Object.create(null)
  for (const entry of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^((?:[^=\s/]+\/)?[^=\s/]+)\s*=\s*(\S+)$/.exec(entry)
    if (m === null || !(POLICIES as readonly string[]).includes(m[2]!)) {
      throw new Error(`"${entry}" is not [vhost/]app=${POLICIES.join('|')}`)
    }
    out[m[1]!] = m[2] as Policy
  }
  return out
}

/** The policy of an app: its TAKEOVER_POLICY_BY_APP entry (`app`, or `vhost/app` off the default vhost), else the default. */
export function policyFor (byApp: Record<string, Policy>, fallback: Policy, vhost: string, app: string): Policy {
  return byApp[appName(vhost, app)] ?? fallback
}

export const TakeoverSettings = {
  TAKEOVER_TIMEOUT_MS: Millis(3000),
  /** Where takeovers happen: auto (by each SRS's version), publish (inside on_publish), connect (inside on_connect). */
  TAKEOVER_AT: Type.Union([Type.Literal('auto'), Type.Literal('publish'), Type.Literal('connect')], { default: 'auto' }),
  TAKEOVER_POLICY: Type.Union(POLICIES.map((p) => Type.Literal(p)), { default: 'takeover' }),
  TAKEOVER_POLICY_BY_APP: Type.Refine(Type.String({ default: '' }),
    (v: string) => errorOf(parsePolicyByApp, v) === '', (v: string) => errorOf(parsePolicyByApp, v)),
  /** takeover-stale's probe bound; unset: two refreshes of the server's counters and a margin (7 s on SRS). */
  STALE_PROBE_MS: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
  FLAP_MAX: Type.Integer({ default: 3, minimum: 1, maximum: 1000 }),
  FLAP_WINDOW_MS: Millis(60_000),
  FLAP_COOLDOWN_MS: Millis(120_000),
  /** A newcomer on one server for a stream another server lists as published: take it over there, or ignore it. */
  CROSS_SERVER: Type.Union([Type.Literal('takeover'), Type.Literal('ignore')], { default: 'takeover' }),
  RECONCILE_INTERVAL_MS: Millis(30_000, 0),
  FAIL_MODE: Type.Union([Type.Literal('open'), Type.Literal('closed')], { default: 'open' }),
  MAX_PUBLISHERS: Type.Integer({ default: 200_000, minimum: 1 }),
  /** The in-process publisher table's bound in bytes (each entry is counted by its names' lengths); the least recently used entries go first. */
  MAX_PUBLISHERS_BYTES: Type.Integer({ default: PUBLISHERS_MAX_BYTES, minimum: 1_048_576, maximum: 68_719_476_736 })
}
