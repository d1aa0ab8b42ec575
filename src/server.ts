import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, type ConfigError } from './config.js'

/**
 * `srs-hooks serve`: read the environment, serve, and close gracefully on SIGTERM/SIGINT.
 * Resolves with an exit code once listening (0) or when the configuration is bad (1).
 */
export async function serve (env: Record<string, string | undefined>, err: (line: string) => void): Promise<number> {
  let config
  try {
    config = loadConfig(env)
  } catch (e) {
    // loadConfig throws only ConfigError, whose message names the variable.
    err(`srs-hooks: ${(e as ConfigError).message}`)
    return 1
  }
  const app = await buildApp(config)
  closeWithGrace({ delay: config.TAKEOVER_TIMEOUT_MS + 5000 }, async ({ signal, err }) => {
    // A signal, or an uncaught error (logged as `err`).
    app.log.warn({ signal, err }, 'closing: no new connections, answering hooks in flight')
    await app.close()
  })
  await app.listen({ host: config.HOST, port: config.PORT })
  app.log.info({ srsApi: config.SRS_API_URL, failMode: config.FAIL_MODE, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS }, 'srs-hooks ready')
  return 0
}
