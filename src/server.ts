#!/usr/bin/env node
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

/** Entry point: read the environment, serve, and close gracefully on SIGTERM/SIGINT. */
async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`srs-hooks: ${err.message}\n`)
    process.exitCode = 1
    return
  }
  const app = await buildApp(config)
  closeWithGrace({ delay: config.TAKEOVER_TIMEOUT_MS + 5000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'closing: no new connections, answering hooks in flight')
    await app.close()
  })
  await app.listen({ host: config.HOST, port: config.PORT })
  app.log.info({ srsApi: config.SRS_API_URL, failMode: config.FAIL_MODE, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS }, 'srs-hooks ready')
}

await main()
