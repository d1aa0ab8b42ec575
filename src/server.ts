import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { flushCompileCache } from './compile-cache.js'
import { loadConfig } from './config.js'

/**
 * `srs-hooks serve`: read the environment, serve, and close gracefully on SIGTERM/SIGINT.
 * Resolves with an exit code once listening (0), or 1 when the configuration is bad or the app
 * cannot be built.
 */
export async function serve (env: Record<string, string | undefined>, err: (line: string) => void): Promise<number> {
  let config
  let app
  try {
    config = loadConfig(env)
    // Building checks the rules between settings (a mode that needs a secret or a file).
    app = await buildApp(config)
  } catch (e) {
    // A ConfigError names the variable; anything else failing at start is said as it is.
    err(`srs-hooks: ${(e as Error).message}`)
    return 1
  }
  try {
    await app.listen({ host: config.HOST, port: config.PORT })
  } catch (e) {
    // First and alone: which setting could not be bound, and why.
    err(`srs-hooks: cannot listen on ${config.HOST}:${config.PORT}: ${bindFailure(e as NodeJS.ErrnoException, config.HOST, config.PORT)}`)
    await app.close()
    return 1
  }
  // Once listening: close-with-grace also closes on the event loop's end (beforeExit), which a
  // failed listen reaches, and would then log a shutdown and exit 0.
  closeWithGrace({ delay: config.TAKEOVER_TIMEOUT_MS + 5000 }, async ({ signal, err }) => {
    // A signal, or an uncaught error (logged as `err`).
    app.log.warn({ signal, err }, 'closing: no new connections, answering hooks in flight')
    await app.close()
  })
  // What the start compiled goes to the compile cache now (when the build's cli.js turned it on),
  // not only at a clean exit: a killed or crashed server still leaves it for the next start.
  flushCompileCache()
  app.log.info({ srsApi: config.srsApis.map((a) => a.url), zlmApi: config.zlmApis, takeoverAt: config.TAKEOVER_AT, failMode: config.FAIL_MODE, takeoverTimeoutMs: config.TAKEOVER_TIMEOUT_MS }, 'srs-hooks ready')
  return 0
}

/** What an operator changes when the address cannot be bound, from the listen error. */
export function bindFailure (e: NodeJS.ErrnoException, host: string, port: number): string {
  switch (e.code) {
    case 'EADDRINUSE': return `PORT=${port} is in use by another process (EADDRINUSE); stop it or set another PORT`
    case 'EADDRNOTAVAIL': return `HOST=${host} is not an address of this host (EADDRNOTAVAIL); set HOST to one of its addresses, or 0.0.0.0 for all`
    case 'EACCES': return `PORT=${port} needs privileges this process lacks (EACCES); set a PORT above 1023`
    case 'ENOTFOUND': case 'EAI_AGAIN': return `HOST=${host} does not resolve (${e.code}); set HOST to an address of this host`
    default: return e.message
  }
}
