import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Type } from 'typebox'
import type { Config } from '../src/config.js'
import { AppError, Codes } from '../src/errors.js'
import { isLoopback } from '../src/operations/access.js'
import liveEvents from '../src/operations/live-plugin.js'
import { ADMIN_PREFIXES, operatorsOnly } from './admin.js'
import events from './events.js'

/**
 * The operator console, under each prefix of the operator API: the page (GET console/, its
 * script and its style, built by scripts/build-console.mjs into dist/console), the small status
 * endpoint it reads besides the operator API (GET console/status), and the events stream it
 * listens to (routes/events.ts). The page's files hold no data: with ADMIN_TOKEN set anyone may
 * load them, and the page asks for the token before it reads anything; without ADMIN_TOKEN they
 * are served to loopback callers only, like the operator API.
 */

export interface ConsoleRoutesOptions {
  config: Config
  now: () => number
}

/** No script or style but the page's own files: a name shown by the page can never run. */
export const CONTENT_SECURITY_POLICY = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"

const FILES = {
  'index.html': 'text/html; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8'
} as const

type FileName = keyof typeof FILES

/** The folder with the built page: CONSOLE_DIR, else dist/console beside the bundle (or beside the sources). */
export function consoleDir (configured: string | undefined): string | undefined {
  const candidates = configured !== undefined
    ? [configured]
    : [fileURLToPath(new URL('../console/', import.meta.url)), fileURLToPath(new URL('../dist/console/', import.meta.url))]
  return candidates.find((d) => existsSync(join(d, 'index.html')))
}

const Check = Type.Object({ ok: Type.Boolean(), msg: Type.Union([Type.String(), Type.Null()]) })

const page: FastifyPluginAsyncTypebox<ConsoleRoutesOptions & { files: Map<FileName, Buffer> | undefined, dir: string }> = async (app, { config, files, dir }) => {
  const headers = {
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache'
  }
  const serve = (name: FileName) => async (req: FastifyRequest, reply: FastifyReply) => {
    if (config.ADMIN_TOKEN === undefined && !isLoopback(req.socket.remoteAddress)) {
      throw new AppError('the console answers loopback callers only while ADMIN_TOKEN is unset; set ADMIN_TOKEN to open it to others', Codes.ADMIN_FORBIDDEN, 403)
    }
    const body = files?.get(name)
    if (body === undefined) throw new AppError(`the console is not built: no ${name} in ${dir}; run npm run build`, Codes.CONSOLE_NOT_BUILT, 503)
    reply.headers(headers)
    reply.type(FILES[name])
    return await reply.send(body)
  }
  // Every URL in the page is relative to console/: the bare path goes there.
  app.get('/console', async (_req, reply) => await reply.redirect('console/', 301))
  app.get('/console/', serve('index.html'))
  app.get('/console/console.js', serve('console.js'))
  app.get('/console/console.css', serve('console.css'))

  // What the operator API does not say: the state of Redis and of the recordings index.
  await app.register(async (status) => {
    status.addHook('onRequest', operatorsOnly(config))
    status.get('/console/status', {
      schema: {
        response: {
          200: Type.Object({
            code: Type.Integer(),
            redis: Type.Union([Check, Type.Null()]),
            database: Type.Object({ kind: Type.String(), ok: Type.Boolean(), msg: Type.Union([Type.String(), Type.Null()]), spooled: Type.Union([Type.Integer(), Type.Null()]) }),
            events: Type.Object({ run: Type.String(), last: Type.Integer(), readers: Type.Integer() })
          })
        }
      }
    }, async () => {
      const store = await app.recordings.readiness()
      return {
        code: 0,
        redis: app.redis?.check() ?? null,
        database: { kind: config.DATABASE_URL === undefined ? 'sqlite' : 'postgresql', ok: store.ok, msg: store.msg, spooled: app.recordings.spool()?.depth ?? null },
        events: { run: app.liveEvents.run, last: app.liveEvents.last, readers: app.liveEvents.readers }
      }
    })
  })
}

/** The console and the events stream, under each prefix of the operator API. */
export default fp<ConsoleRoutesOptions>(async (app, { config, now }) => {
  await app.register(liveEvents, { config, now })
  const dir = consoleDir(config.CONSOLE_DIR)
  let files: Map<FileName, Buffer> | undefined
  if (dir !== undefined) {
    files = new Map()
    for (const name of Object.keys(FILES) as FileName[]) if (existsSync(join(dir, name))) files.set(name, readFileSync(join(dir, name)))
  } else {
    app.log.info({ dir: config.CONSOLE_DIR }, 'the console is not built (npm run build); its page answers 503')
  }
  for (const prefix of ADMIN_PREFIXES) {
    await app.register(events, { prefix, config })
    await app.register(page, { prefix, config, now, files, dir: dir ?? String(config.CONSOLE_DIR) })
  }
}, { name: 'console', dependencies: ['operations', 'recordings'] })
