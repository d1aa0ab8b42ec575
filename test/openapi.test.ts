import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ADMIN_PREFIXES } from '../src/http/operators.js'
import { isOperatorRoute } from '../routes/openapi.js'
import { buildApp, CALLBACK_PREFIXES } from '../src/app.js'
import { version } from '../src/cli/version.js'
import { loadConfig } from '../src/config.js'

/**
 * GET <prefix>/openapi.json: the operator API in OpenAPI 3, from the routes' schemas. Every
 * operator route is in it with its method, and nothing else: no hook, no health or metrics, no
 * console page, no second prefix.
 */

const OPERATOR = ADMIN_PREFIXES[0]
const TOKEN = 'an-operator-token-0123456789'

/** The app's routes as `METHOD path` (HEAD left out), read from Fastify's route tree (printRoutes). */
function routesOf (tree: string): string[] {
  const out: string[] = []
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (m === null) continue
    const depth = m[1]!.length / 4
    stack.length = depth
    stack.push(m[2]!)
    for (const method of (m[3] ?? '').split(', ').filter((x) => x !== '' && x !== 'HEAD')) out.push(`${method} ${stack.join('')}`)
  }
  return out
}

t.test('the description lists every operator route with its method, and nothing else', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-openapi-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const app = await buildApp(loadConfig({ SRS_API_URL: 'none', LOG_LEVEL: 'silent', DATA_DIR: dir, ADMIN_TOKEN: TOKEN }))
  t.teardown(() => app.close())
  await app.ready()

  const routes = routesOf(app.printRoutes({ commonPrefix: false }))
  t.ok(routes.includes(`POST ${CALLBACK_PREFIXES[0]}/on_publish`) && routes.includes('GET /metrics'), `read ${routes.length} routes`)
  // The operator's routes: under the first prefix, neither hooks nor the console's page and files.
  const page = ['console', 'console/', 'console/console.js', 'console/console.css', 'openapi.json'].map((p) => `GET ${OPERATOR}/${p}`)
  const expected = routes.filter((r) => r.split(' ')[1]!.startsWith(OPERATOR + '/') && !r.split(' ')[1]!.startsWith(CALLBACK_PREFIXES[0] + '/') && !page.includes(r))
  t.ok(expected.includes(`DELETE ${OPERATOR}/streams/:app/:stream/publisher`) && expected.includes(`GET ${OPERATOR}/console/status`), 'the operator\'s routes include eviction and the console\'s status')

  // Open to every caller: with ADMIN_TOKEN set, no token is asked for it.
  const res = await app.inject({ method: 'GET', url: `${OPERATOR}/openapi.json` })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.0.3')
  t.equal(doc.info.version, version())
  t.same(doc.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } })
  const described = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`))
  t.same(described.sort(), expected.sort(), 'every operator route, and no other')
  t.same(Object.keys(doc.paths).filter((p) => !p.startsWith(OPERATOR + '/')), [], 'the first prefix only')
  t.notMatch(res.body, /callback|on_publish|healthz|readyz|\/metrics/, 'no hook, health or metrics leaks')

  // The routes' own schemas: the eviction's path parameters and reply, the streams' query.
  const evict = doc.paths[`${OPERATOR}/streams/{app}/{stream}/publisher`].delete
  t.same(evict.parameters.filter((p: any) => p.in === 'path').map((p: any) => p.name).sort(), ['app', 'stream'])
  t.ok(evict.responses['200'].content['application/json'].schema.properties.outcome, 'the eviction\'s reply says its outcome')
  t.ok(doc.paths[`${OPERATOR}/recordings`].get.parameters.some((p: any) => p.in === 'query'), 'the recordings\' query parameters')

  // The second prefix serves the same description.
  const alias = await app.inject({ method: 'GET', url: `${ADMIN_PREFIXES[1]}/openapi.json` })
  t.same(alias.json(), doc)

  t.notOk(isOperatorRoute(`${OPERATOR}/callback/on_publish`))
  t.notOk(isOperatorRoute(`${ADMIN_PREFIXES[1]}/streams`))
  t.ok(isOperatorRoute(`${OPERATOR}/streams`))
})
