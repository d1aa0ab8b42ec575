import { splitList } from './settings.js'

/**
 * Environment variables that look like a setting of srs-hooks but are none (`SRS_API_ULR`,
 * `ADMIN_TOKN`, `FAIL_MOD`, `fail_mode`, `SRS_HOOKS_PORT`): each is silently ignored otherwise,
 * and the server runs on a default the operator did not mean. `serve` and `doctor` warn about
 * each, naming the setting it resembles. SRS_HOOKS_ENV_IGNORE lists names not to warn about, or
 * `*` for none at all.
 */

/** The variable that silences the check: names separated by commas, or `*`. */
export const ENV_IGNORE = 'SRS_HOOKS_ENV_IGNORE'

/** Where other software's variables start: never ours, however close. */
const FOREIGN = /^(npm_|NPM_|NODE_|NVM_|LC_|XDG_|GIT_|SSH_|DOCKER_|KUBERNETES_|COMPOSE_|SYSTEMD_|JOURNAL_|DBUS_|TERM_|UV_|PNPM_|YARN_|COREPACK_|OTEL_|AWS_|GOOGLE_|AZURE_|PG[A-Z]|SUDO_|BENCH_|TAP_)/

/**
 * Kubernetes and Docker links name each service's address `<NAME>_SERVICE_HOST`,
 * `<NAME>_SERVICE_PORT[_<port>]`, `<NAME>_PORT[_<port>_<proto>[_ADDR|_PORT|_PROTO]]`: a service
 * called srs-hooks or redis gets `SRS_HOOKS_PORT` or `REDIS_PORT`, which nobody typed.
 */
const LINKS = /_SERVICE_(HOST|PORT)(_.*)?$|_PORT_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?$/
const LINK_VALUE = /^(tcp|udp|sctp):\/\//

/** The prefix an operator may think srs-hooks's settings carry. */
const OWN_PREFIX = 'SRS_HOOKS_'

export interface Lookalike {
  /** The variable as it is set. */
  name: string
  /** The setting it resembles. */
  like: string
}

/**
 * The variables of `env` that are not settings but resemble one of `known`: the same name in
 * another case, ours behind an `SRS_HOOKS_` prefix, or a few letters off (one for a name of five
 * letters or fewer, then one more for every five: a transposition counts as one).
 */
export function lookalikes (env: Record<string, string | undefined>, known: readonly string[]): Lookalike[] {
  const ignore = env[ENV_IGNORE]
  const ignored = new Set(splitList(ignore ?? ''))
  if (ignored.has('*')) return []
  const settings = new Set([...known, ENV_IGNORE])
  const upper = new Map([...settings].map((k) => [k.toUpperCase(), k]))
  const found: Lookalike[] = []
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || settings.has(name) || ignored.has(name) || FOREIGN.test(name) || LINKS.test(name)) continue
    if (name.endsWith('_PORT') && LINK_VALUE.test(value)) continue
    const up = name.toUpperCase()
    const like = upper.get(up) ?? (up.startsWith(OWN_PREFIX) ? upper.get(up.slice(OWN_PREFIX.length)) : undefined) ?? nearest(up, [...settings])
    if (like !== undefined) found.push({ name, like })
  }
  return found
}

/** The one line a lookalike is warned with. */
export function lookalikeLine ({ name, like }: Lookalike): string {
  return `environment variable ${name} is not a setting of srs-hooks and is ignored: did you mean ${like}? (${ENV_IGNORE}=${name} silences this)`
}

/** The closest setting within the allowed distance; undefined when none is, or two are as close. */
function nearest (name: string, known: string[]): string | undefined {
  const allowed = Math.max(1, Math.floor(name.length / 5))
  let best: string | undefined
  let bestDistance = allowed + 1
  let tie = false
  for (const k of known) {
    if (Math.abs(k.length - name.length) > allowed) continue
    const d = distance(name, k)
    if (d < bestDistance) {
      best = k
      bestDistance = d
      tie = false
    } else if (d === bestDistance) tie = true
  }
  return tie ? undefined : best
}

/** Edit distance with adjacent transpositions (optimal string alignment). */
export function distance (a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1)
      rows[i]![j] = d
    }
  }
  return rows[a.length]![b.length]!
}
