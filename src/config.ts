import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import { ConfigError } from './errors.js'
import { AuthSettings, checkAuthSettings } from './auth/settings.js'
import { EdgeSettings } from './http/edge.js'
import { OperationsSettings } from './operations/settings.js'
import { ForwardSettings } from './forward/settings.js'
import { TakeoverSettings } from './publishers/settings.js'
import { RecordingsSettings } from './recordings/settings.js'
import { RedisSettings } from './redis/settings.js'
import { wordErrors } from './schema-errors.js'
import { apiEndpoints, SrsSettings, type SrsApiEndpoint } from './srs/settings.js'
import { ZlmSettings, zlmEndpoints } from './zlm/settings.js'

/**
 * Every setting, read from the environment. docs/configuration.md documents each one with
 * its default; keep the two in step.
 */
export const ConfigSchema = Type.Object({
  HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  PORT: Type.Integer({ default: 6000, minimum: 0, maximum: 65535 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' }
  ),
  BODY_LIMIT: Type.Integer({ default: 16_384, minimum: 1024, maximum: 10_485_760 }),
  /** Variables not to warn about when they look like a misspelt setting (comma-separated), or `*`: no such warning. */
  SRS_HOOKS_ENV_IGNORE: Type.String({ default: '', maxLength: 16_384 }),
  ...EdgeSettings,
  ...SrsSettings,
  ...ZlmSettings,
  ...TakeoverSettings,
  ...RedisSettings,
  ...AuthSettings,
  ...OperationsSettings,
  ...RecordingsSettings,
  ...ForwardSettings
})

export type RawConfig = Static<typeof ConfigSchema>

export interface Config extends RawConfig {
  /** The SRS servers, from SRS_API_URL with their credentials (none for `none`). */
  srsApis: SrsApiEndpoint[]
  /** The ZLMediaKit servers' API origins, from ZLM_API_URL (none when unset). */
  zlmApis: string[]
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
  // Checked once; the errors are listed only when there are some (a start saves the second walk).
  if (!Value.Check(ConfigSchema, converted)) {
    const lines = wordErrors(Value.Errors(ConfigSchema, converted), ConfigSchema).map((e) => {
      const name = e.path.replace(/^\//, '')
      // Never echo a secret: hide passwords, tokens and secrets, and the credentials in a URL.
      const value = env[name]
      const shown = /PASSWORD|SECRET|TOKEN|HEADERS/.test(name) ? '(hidden)' : JSON.stringify(value?.replace(/\/\/[^/@\s]*@/g, '//***@'))
      return `${name}=${shown}: ${e.message}`
    })
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`)
  }
  // Defaulted, converted and checked above: what Value.Parse would return (no field has a transform).
  const raw = converted as RawConfig
  // The rules that combine settings: here, so that every command refuses the same configurations.
  checkAuthSettings(raw)
  try {
    return { ...raw, srsApis: apiEndpoints(raw.SRS_API_URL, raw.SRS_API_USERNAME, raw.SRS_API_PASSWORD), zlmApis: zlmEndpoints(raw.ZLM_API_URL) }
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`)
  }
}
