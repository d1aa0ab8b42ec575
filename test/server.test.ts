import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ConfigSchema } from '../src/config.js'
import { bindFailure } from '../src/server.js'
import { postHook, waitFor } from './fixtures/app.js'
import { json, StubServer } from './fixtures/stub-server.js'

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

// A dozen server and CLI processes, each compiled by the test runner's loader: 47 s and 54 s in
// two full runs, and past the default 60 s in a third.
t.setTimeout(180_000)

interface Proc { child: ChildProcess, out: string[], err: string[], exited: Promise<number | null> }

/** Runs the entry point as its own process, with the loaders tap runs this test with. */
function run (env: Record<string, string>, args: string[] = []): Proc {
  const child = spawn(process.execPath, [...process.execArgv, entry, ...args], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', RECONCILE_INTERVAL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const out: string[] = []
  const err: string[] = []
  child.stdout!.on('data', (c: Buffer) => out.push(...c.toString().split('\n').filter(Boolean)))
  child.stderr!.on('data', (c: Buffer) => err.push(c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, out, err, exited }
}

async function listening (p: Proc): Promise<string> {
  const line = await waitFor(() => p.out.find((l) => l.includes('Server listening at http://127.0.0.1')), 20_000, 'the server to listen')
  return JSON.parse(line).msg.replace('Server listening at ', '')
}

t.test('the entry point serves hooks and exits 0 on SIGTERM', async (t) => {
  const p = run({ SRS_API_URL: 'http://127.0.0.1:9' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  const r = await postHook(`${url}/admin-api/video/camera/callback`, 'on_play', { action: 'on_play', client_id: 'c1', vhost: '__defaultVhost__', app: 'live', stream: 's' })
  t.same(r.reply, { code: 0, msg: null })
  await waitFor(() => p.out.some((l) => l.includes('"action":"on_play"')), 5000, 'the hook\'s log line')
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
  t.ok(p.out.some((l) => l.includes('"signal":"SIGTERM"')))
})

t.test('SIGTERM during a takeover: the waiting on_publish is answered, then a clean exit', async (t) => {
  const env = { code: 0, server: 'vid-s', service: 'x', pid: '1' }
  const srs = await StubServer.start((req, res) => {
    if (req.method === 'DELETE') return json(res, env) // kicked, but never released
    if (req.url?.startsWith('/api/v1/streams/') === true) return json(res, { ...env, stream: { id: 'vid-1', name: 'cam1', app: 'live', url: '/live/cam1', publish: { active: true, cid: 'A' } } })
    json(res, { ...env, client: { id: 'B', stream: 'vid-1', type: 'fmle-publish', publish: true } })
  })
  t.teardown(() => srs.close())
  const p = run({ SRS_API_URL: srs.url, TAKEOVER_TIMEOUT_MS: '1500' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  const pending = postHook(`${url}/admin-api/video/camera/callback`, 'on_publish', {
    action: 'on_publish', client_id: 'B', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1', stream_id: 'vid-1'
  })
  await waitFor(() => srs.requests.some((r) => r.method === 'DELETE'), 10_000, 'the kick')
  p.child.kill('SIGTERM')
  const r = await pending
  t.same(r.reply, { code: 0, msg: null }, 'answered, not dropped')
  t.equal(await p.exited, 0, p.out.slice(-5).join('\n') + p.err.join(''))
})

t.test('a bad setting stops the process at start with a message naming it', async (t) => {
  const p = run({ PORT: 'sixthousand' })
  t.equal(await p.exited, 1)
  t.match(p.err.join(''), /PORT="sixthousand"/)
  const q = run({ PUBLISH_AUTH: 'signed' }) // a mode without the secret it needs
  t.equal(await q.exited, 1)
  t.match(q.err.join(''), /PUBLISH_SECRET/)
})

t.test('a busy PORT or a HOST the machine lacks: one line naming the setting and why, exit 1', async (t) => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => busy.close())
  const port = (busy.address() as AddressInfo).port
  const p = run({ PORT: String(port) })
  t.equal(await p.exited, 1)
  t.match(p.err.join('').split('\n')[0], `srs-hooks: cannot listen on 127.0.0.1:${port}: PORT=${port} is in use by another process (EADDRINUSE); stop it or set another PORT`)
  t.notMatch(p.out.join('\n'), /closing/, 'no shutdown warning')
  const q = run({ HOST: '192.0.2.1' }) // TEST-NET-1: no host has it
  t.equal(await q.exited, 1)
  t.match(q.err.join('').split('\n')[0], /^srs-hooks: cannot listen on 192\.0\.2\.1:0: HOST=192\.0\.2\.1 is not an address of this host \(EADDRNOTAVAIL\)/)
})

t.test('the reasons a bind fails, each naming the setting to change', async (t) => {
  const e = (code: string) => Object.assign(new Error(`listen ${code}`), { code })
  t.match(bindFailure(e('EACCES'), '0.0.0.0', 80), /^PORT=80 needs privileges/)
  t.match(bindFailure(e('ENOTFOUND'), 'nohost.invalid', 6000), /^HOST=nohost\.invalid does not resolve \(ENOTFOUND\)/)
  t.equal(bindFailure(e('EOTHER'), '0.0.0.0', 6000), 'listen EOTHER')
})

t.test('the CLI lists its commands, explains one, and rejects an unknown one', async (t) => {
  const help = run({}, ['help'])
  t.equal(await help.exited, 0)
  t.match(help.out.join('\n'), /serve\s+serve SRS hooks/)
  t.match(help.out.join('\n'), /srs-hooks --version/)
  const usage = run({}, ['serve', '--help'])
  t.equal(await usage.exited, 0)
  const serveHelp = usage.out.join('\n')
  t.match(serveHelp, /usage: srs-hooks \[serve\]/)
  // Every variable, with the values an enum takes and its default.
  for (const name of Object.keys(ConfigSchema.properties)) t.match(serveHelp, new RegExp(`^  ${name} `, 'm'), name)
  t.match(serveHelp, /^ {2}FAIL_MODE +one of open, closed; default open$/m)
  t.match(serveHelp, /^ {2}PORT +default 6000$/m)
  t.match(serveHelp, /^ {2}REDIS_URL +unset by default$/m)
  t.match(serveHelp, /exit codes:\n {2}0 {2}stopped by SIGTERM.*\n {2}1 {2}could not start/)
  const version = run({}, ['--version'])
  t.equal(await version.exited, 0)
  t.same(version.out, [`srs-hooks ${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string}`])
  const unknown = run({}, ['frobnicate'])
  t.equal(await unknown.exited, 2)
  t.match(unknown.err.join(''), /unknown command "frobnicate"/)
})
