import swagger, { type SwaggerOptions } from '@fastify/swagger'
import type { FastifyPluginAsync } from 'fastify'
import { version } from '../src/cli/version.js'
import { ADMIN_PREFIXES } from '../src/http/operators.js'

/**
 * The operator API described in OpenAPI 3, from the routes' own TypeBox schemas: GET
 * <prefix>/openapi.json. Only the operator routes under the first prefix are described (the
 * second is the same API again); the hooks SRS and ZLMediaKit call, health, metrics and the
 * console's page stay out, as does the description itself. Open to every caller, as /metrics is: it
 * says what the API takes and answers, nothing about streams; the routes it describes still
 * want the bearer token.
 */

const OPERATOR = ADMIN_PREFIXES[0]
const HOOKS = `${OPERATOR}/callback/`
/** The console's page and its files (routes/console.ts): a browser's, not an API; its status endpoint is described. */
const PAGE = new Set(['console', 'console/', 'console/console.js', 'console/console.css', 'openapi.json'].map((p) => `${OPERATOR}/${p}`))

/** True for a route the description shows: the operator API's, under its first prefix. */
export function isOperatorRoute (url: string): boolean {
  return url.startsWith(OPERATOR + '/') && !url.startsWith(HOOKS) && !PAGE.has(url)
}

/** @fastify/swagger's options; registered before the routes, whose schemas it collects. */
export function swaggerOptions (): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'srs-hooks operator API',
        version: version(),
        description: 'Streams, publishers, recordings, events and ZLMediaKit RTP servers. Send ADMIN_TOKEN as "Authorization: Bearer <token>" (without ADMIN_TOKEN, loopback callers only).'
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }]
    },
    transform: ({ schema, url }) => ({ schema: { ...schema, hide: !isOperatorRoute(url) }, url })
  }
}

export { swagger }

const openapi: FastifyPluginAsync = async (app) => {
  app.get('/openapi.json', async () => app.swagger())
}

export default openapi
