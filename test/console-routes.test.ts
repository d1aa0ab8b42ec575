import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { join } from 'node:path'
import t from 'tap'
import { Codes } from '../src/errors.js'
import { CONTENT_SECURITY_POLICY, consoleDir } from '../routes/console.js'
import { startWorld, waitFor } from './fixtures/app.js'
import { startPostgres } from './fixtures/postgres.js'
import { RedisServer } from './fixtures/redis.js'

/** The console's routes without a browser: where its files come from, headers, access, status. */

const ADMIN = '/admin-api/video/camera'
const TOKEN = 'a-long-random-operator-token-0123456789'

function built (dir: string): string {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>c</title>')
  writeFileSync(join(dir, 'console.js'), 'void 0')
  return dir
}

t.test('the console\'s build script, run as npm run build runs it, writes the page, its script and its style', async (t) => {
  const dir = join(t.testdir(), 'console')
  await promisify(execFile)(process.execPath, ['scripts/build-console.mjs', dir], { cwd: process.cwd() })
  t.match(readFileSync(join(dir, 'index.html'), 'utf8'), /<script[^>]* src="console\.js"/)
  t.ok(readFileSync(join(dir, 'console.js'), 'utf8').length > 1000, 'the bundled script')
  t.ok(readFileSync(join(dir, 'console.css'), 'utf8').length > 0, 'the style')
})

t.test('the page, its script and style are served with a CSP that allows only the page\'s own files', async (t) => {
  const dir = built(t.testdir())
  const { url } = await startWorld(t, { CONSOLE_DIR: dir })
  const page = await fetch(`${url}${ADMIN}/console/`)
  t.equal(page.status, 200)
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
  t.equal(page.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY)
  t.equal(page.headers.get('x-content-type-options'), 'nosniff')
  t.equal(await page.text(), '<!doctype html><title>c</title>')
  t.equal((await fetch(`${url}/video/camera/console/console.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8')
  const bare = await fetch(`${url}${ADMIN}/console`, { redirect: 'manual' })
  t.same([bare.status, bare.headers.get('location')], [301, 'console/'], 'relative, so it works behind a gateway that strips the prefix')
  const css = await fetch(`${url}${ADMIN}/console/console.css`)
  t.equal(css.status, 503, 'a file the build did not leave')
  t.equal(((await css.json()) as { code: number }).code, Codes.CONSOLE_NOT_BUILT)
})

t.test('not built: 503 naming the fix', async (t) => {
  const { url, logs } = await startWorld(t, { CONSOLE_DIR: join(t.testdir(), 'none') })
  const r = await fetch(`${url}${ADMIN}/console/`)
  t.equal(r.status, 503)
  t.match(await r.json(), { code: Codes.CONSOLE_NOT_BUILT, msg: /run npm run build/ })
  t.ok(logs.find((l) => l.msg?.includes('the console is not built') === true))
  t.equal(consoleDir(join(t.testdir(), 'none')), undefined)
  t.type(consoleDir(undefined) ?? '', 'string', 'dist/console when a build left one')
})

t.test('from another machine without ADMIN_TOKEN: refused; with it, the page loads and the data needs the token', async (t) => {
  const dir = built(t.testdir())
  const open = await startWorld(t, { CONSOLE_DIR: dir })
  const far = await open.app.inject({ method: 'GET', url: `${ADMIN}/console/`, remoteAddress: '192.0.2.7' })
  t.equal(far.statusCode, 403)
  t.equal(far.json().code, Codes.ADMIN_FORBIDDEN)
  const guarded = await startWorld(t, { CONSOLE_DIR: dir, ADMIN_TOKEN: TOKEN })
  t.equal((await guarded.app.inject({ method: 'GET', url: `${ADMIN}/console/`, remoteAddress: '192.0.2.7' })).statusCode, 200)
  t.equal((await fetch(`${guarded.url}${ADMIN}/console/status`)).status, 401)
  const st = await fetch(`${guarded.url}${ADMIN}/console/status`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(st.status, 200)
  t.match(await st.json(), { code: 0, redis: null, database: { kind: 'sqlite', ok: true, msg: null, spooled: null }, events: { run: guarded.app.liveEvents.run, last: 0, readers: 0 } })
})

t.test('console/status names PostgreSQL and its spool when DATABASE_URL is set, and Redis when REDIS_URL is', async (t) => {
  const cluster = await startPostgres(t)
  const redis = await RedisServer.start(t)
  const { url } = await startWorld(t, { DATABASE_URL: await cluster.database(), REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix() })
  const st = await waitFor(async () => {
    const body = await (await fetch(`${url}${ADMIN}/console/status`)).json() as any
    return body.redis.ok === true && body
  }, 10_000, 'Redis connected')
  t.match(st, { code: 0, redis: { ok: true, msg: /^Redis at / }, database: { kind: 'postgresql', ok: true, spooled: 0 } })
})
