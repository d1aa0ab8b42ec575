import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import { AuthSettings } from './auth/settings.js'
import { OperationsSettings } from './operations/settings.js'
import { RecordingsSettings } from './recordings/settings.js'

/**
 * Every setting, read from the environment. README.md ("Configuration") documents each one with
 * its default; keep the two in step.
 */
const Millis = (def: number, min = 1) => Type.Integer({ default: def, minimum: min, maximum: 3_600_000 })

export const ConfigSchema = Type.Object({
  HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  PORT: Type.Integer({ default: 6000, minimum: 0, maximum: 65535 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' }
  ),
  SRS_API_URL: Type.String({ default: 'http://127.0.0.1:1985', pattern: '^https?://[^/]+/?$' }),
  SRS_API_USERNAME: Type.Optional(Type.String()),
  SRS_API_PASSWORD: Type.Optional(Type.String()),
  SRS_API_TIMEOUT_MS: Millis(1000),
  SRS_API_RETRIES: Type.Integer({ default: 2, minimum: 0, maximum: 10 }),
  SRS_API_PAGE_SIZE: Type.Integer({ default: 1000, minimum: 10, maximum: 100_000 }),
  TAKEOVER_TIMEOUT_MS: Millis(3000),
  RECONCILE_INTERVAL_MS: Millis(30_000, 0),
  FAIL_MODE: Type.Union([Type.Literal('open'), Type.Literal('closed')], { default: 'open' }),
  MAX_PUBLISHERS: Type.Integer({ default: 200_000, minimum: 1 }),
  BODY_LIMIT: Type.Integer({ default: 16_384, minimum: 1024, maximum: 10_485_760 }),
  ...AuthSettings,
  ...OperationsSettings,
  ...RecordingsSettings
})

export type RawConfig = Static<typeof ConfigSchema>

export interface Config extends Omit<RawConfig, 'SRS_API_URL' | 'SRS_API_USERNAME' | 'SRS_API_PASSWORD'> {
  /** SRS's API origin, without credentials or a trailing slash. */
  SRS_API_URL: string
  /** Basic credentials for SRS's API, from SRS_API_URL's userinfo or SRS_API_USERNAME/PASSWORD. */
  srsAuth: { username: string, password: string } | undefined
}

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

const keys = Object.keys(ConfigSchema.properties) as Array<keyof RawConfig>

/**
 * Builds the configuration from an environment. Pure: throws ConfigError naming the variable and
 * what is wrong with it, so the process can refuse to start with a message an operator can act on.
 */
export function loadConfig (env: Record<string, string | undefined>): Config {
  const picked: Record<string, unknown> = {}
  for (const key of keys) {
    const value = env[key]
    if (value !== undefined && value.trim() !== '') picked[key] = value.trim()
  }
  const withDefaults = Value.Default(ConfigSchema, picked)
  const converted = Value.Convert(ConfigSchema, withDefaults)
  const errors = [...Value.Errors(ConfigSchema, converted)]
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const name = e.instancePath.replace(/^\//, '')
      return `${name}=${JSON.stringify(env[name])}: ${e.message}`
    })
    throw new ConfigError(`invalid configuration: ${[...new Set(lines)].join('; ')}`)
  }
  const raw = Value.Parse(ConfigSchema, converted)
  return { ...raw, ...splitApiUrl(raw) }
}

function splitApiUrl (raw: RawConfig): Pick<Config, 'SRS_API_URL' | 'srsAuth'> {
  const url = new URL(raw.SRS_API_URL)
  const username = raw.SRS_API_USERNAME ?? decodeURIComponent(url.username)
  const password = raw.SRS_API_PASSWORD ?? decodeURIComponent(url.password)
  if (username.includes(':') || password.includes(':')) {
    // SRS splits the decoded Basic token on ':' and wants exactly two parts.
    throw new ConfigError('SRS_API_USERNAME/SRS_API_PASSWORD: must not contain ":" (SRS splits Basic credentials on it)')
  }
  return {
    SRS_API_URL: url.origin,
    srsAuth: username === '' && password === '' ? undefined : { username, password }
  }
}
