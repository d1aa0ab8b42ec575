import { Type } from 'typebox'

/**
 * Settings for recordings, the operator API and diagnostics, merged into ConfigSchema.
 * docs/configuration.md documents each one with its default.
 */
export const OperationsSettings = {
  /** Where the recordings index (recordings.db, SQLite) lives; created if missing. */
  DATA_DIR: Type.String({ default: './data', minLength: 1, maxLength: 4096 }),
  /** Recordings smaller than this many bytes are marked `tiny` (SRS reaps very short segments). */
  DVR_MIN_BYTES: Type.Integer({ default: 8192, minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  /** Bound on the stat() of a recorded file (it may sit on a slow mount); the row is written before it. */
  DVR_STAT_TIMEOUT_MS: Type.Integer({ default: 2000, minimum: 1, maximum: 60_000 }),
  /** Bearer token for the operator API, 16 characters at least (as the other secrets). Unset: the operator API answers loopback callers only. */
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 4096 })),
  /** How many recent takeovers, evictions, refusals and corrections GET events keeps. */
  EVENTS_MAX: Type.Integer({ default: 1000, minimum: 1, maximum: 100_000 }),
  /** Live streams of GET events/stream open at once; one more is refused with 503. */
  EVENTS_STREAM_CLIENTS: Type.Integer({ default: 32, minimum: 1, maximum: 10_000 }),
  /** Bytes an events stream may have waiting for a slow reader before it is cut off (it resumes with Last-Event-ID). */
  EVENTS_STREAM_QUEUE_BYTES: Type.Integer({ default: 1_048_576, minimum: 1024, maximum: 1_073_741_824 }),
  /** How often an idle events stream sends a comment, so that proxies and readers know it is alive. */
  EVENTS_STREAM_HEARTBEAT_MS: Type.Integer({ default: 15_000, minimum: 10, maximum: 600_000 }),
  /** Where the console's built files are (index.html, console.js, console.css); by default dist/console. */
  CONSOLE_DIR: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** Bound on /readyz's call to SRS's API. */
  READY_TIMEOUT_MS: Type.Integer({ default: 1000, minimum: 1, maximum: 60_000 })
}
