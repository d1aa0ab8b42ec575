import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { waitFor } from './fixtures/app.js'
import { json, StubServer } from './fixtures/stub-server.js'

/**
 * What the entry point says as it starts: misspelt settings first, then, once listening,
 * "srs-hooks ready" or which SRS is not reachable yet. Apart from server.test.ts, whose processes
 * already fill its time bound.
 */

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

interface Proc { child: ChildProcess, out: string[], err: string[], exited: Promise<number | null> }

function run (env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
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

async function listening (p: Proc): Promise<void> {
  await waitFor(() => p.out.find((l) => l.includes('Server listening at http://127.0.0.1')), 20_000, 'the server to listen')
}

t.test('a misspelt setting is warned about at start, one line each, naming the setting it resembles, even when the start fails', async (t) => {
  const p = run({ FAIL_MOD: 'closed', SRS_API_ULR: 'http://srs:1985', PORT: 'sixthousand' })
  t.equal(await p.exited, 1)
  const lines = p.err.join('').split('\n').filter(Boolean)
  t.same(lines.slice(0, 2).sort(), [
    'srs-hooks: warning: environment variable FAIL_MOD is not a setting of srs-hooks and is ignored: did you mean FAIL_MODE? (SRS_HOOKS_ENV_IGNORE=FAIL_MOD silences this)',
    'srs-hooks: warning: environment variable SRS_API_ULR is not a setting of srs-hooks and is ignored: did you mean SRS_API_URL? (SRS_HOOKS_ENV_IGNORE=SRS_API_ULR silences this)'
  ])
  t.match(lines[2], /^srs-hooks: invalid configuration: PORT="sixthousand"/)
})

t.test('with SRS answering, the start ends with "srs-hooks ready"', async (t) => {
  const srs = await StubServer.start((_req, res) => { json(res, { code: 0, server: 'vid-s', service: 'x', pid: '1', data: { major: 6, minor: 0, revision: 184, version: '6.0.184' } }) })
  t.teardown(() => srs.close())
  const p = run({ SRS_API_URL: srs.url })
  t.teardown(() => { p.child.kill('SIGKILL') })
  await listening(p)
  const ready = JSON.parse(await waitFor(() => p.out.find((l) => l.includes('srs-hooks ready')), 10_000, 'the ready line'))
  t.match(ready, { level: 30, srsApi: [srs.url], failMode: 'open' })
  t.notOk(p.out.some((l) => l.includes('not reachable')))
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('with SRS out of reach, the start ends with a warning naming it and doctor, not "ready"', async (t) => {
  const p = run({ SRS_API_URL: 'http://127.0.0.1:9' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  await listening(p)
  const started = JSON.parse(await waitFor(() => p.out.find((l) => l.includes('serving hooks')), 10_000, 'the start\'s last line'))
  t.match(started, { level: 40, msg: 'serving hooks; SRS at http://127.0.0.1:9 not reachable yet; run `npx srs-hooks doctor` to see why', unreachable: [{ api: 'http://127.0.0.1:9', reason: /./ }] })
  t.notOk(p.out.some((l) => l.includes('srs-hooks ready')))
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})
