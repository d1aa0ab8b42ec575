import { Type } from 'typebox'

/**
 * Settings for the state several replicas share in Redis, merged into ConfigSchema. docs/configuration.md
 * documents each one with its default; keep the two in step.
 */
export const RedisSettings = {
  /**
   * Redis 7 or Valkey, standalone (`redis://[user:password@]host:port[/db]`, or `rediss://` for
   * TLS). Unset: every replica keeps its state in process, as a single srs-hooks does.
   */
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://[^/]', maxLength: 4096 })),
  /** Starts every key and channel, so that several deployments can share one Redis. */
  REDIS_PREFIX: Type.String({ default: 'srs-hooks:', minLength: 1, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' }),
  /**
   * Bound on every Redis command; past it the operation uses this replica's local state. Well
   * under the hooks' own bounds (SRS_API_TIMEOUT_MS, TAKEOVER_TIMEOUT_MS): a hung Redis costs a
   * hook at most this once, after which the link answers "down" at once until Redis answers again.
   */
  REDIS_TIMEOUT_MS: Type.Integer({ default: 250, minimum: 1, maximum: 60_000 })
}
