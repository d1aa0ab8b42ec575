#!/usr/bin/env node
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, type ConfigError } from './config.js'

/** Entry point: read the environment, serve, and close gracefully on SIGTERM/SIGINT. */
async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    // loadConfig throws only ConfigError, whose message names the variable.
    process.stderr.write(`srs-hooks: ${(err as ConfigError).message}\n`)
    process.exitCode = 1
    return
  }
  const app = await buildApp(config)
  closeWithGrace({ delay: config.TAKEOVER_TIMEOUT_MS + 5000 }, async ({ signal, err }) => {
    // A signal, or an uncaught error (logged as `err`).
    app.log.warn({ signal, err }, 'closing: no new connections, answering hooks in flight')
    await app.close()
  })
  await app.listen({ host: config.HOST, port: config.PORT })
  app.log.info({ srsApi: config.SRS_API_URL, failMode: config.FAIL_MODE, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS }, 'srs-hooks ready')
}

await main()
