import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { postHook, waitFor } from './fixtures/app.js'
import { PlatformServer } from './fixtures/platform.js'

/**
 * The outbox's claim on the real entry point: every notification that got its reply reaches the
 * platform after an outage during which srs-hooks is killed with SIGKILL and started again, in
 * order per stream, with the same Idempotency-Key on every attempt before and after the kill.
 */

// Two server processes, each compiled by the test runner's loader.
t.setTimeout(240_000)

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

interface Proc { child: ChildProcess, out: string[] }

function serve (dataDir: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', RECONCILE_INTERVAL_MS: '0', DATA_DIR: dataDir, SRS_API_URL: 'none', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const out: string[] = []
  let partial = ''
  child.stdout!.on('data', (c: Buffer) => {
    const lines = (partial + c.toString()).split('\n')
    partial = lines.pop()!
    for (const l of lines) if (out.length < 50 && l.includes('Server listening')) out.push(l)
  })
  return { child, out }
}

async function listening (p: Proc): Promise<string> {
  // Generous: under the test runner's loader a start compiles the whole server, slowly on a busy machine.
  const line = await waitFor(() => p.out.find((l) => l.includes('Server listening at http://127.0.0.1')), 60_000, 'the server to listen')
  return JSON.parse(line).msg.replace('Server listening at ', '')
}

const stop = (client: string, stream: string) => ({ action: 'on_stop', client_id: client, vhost: '__defaultVhost__', app: 'live', stream, stream_url: `/live/${stream}` })

t.test('platform down, srs-hooks killed with SIGKILL and started again: every acknowledged notification arrives, in order per stream, with stable keys', async (t) => {
  const platform = await PlatformServer.start()
  t.teardown(() => platform.close())
  const dataDir = await mkdtemp(join(tmpdir(), 'srs-hooks-forward-kill-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env = { FORWARD_URL: platform.url, FORWARD_RETRY_MAX_MS: '100' }
  // The platform fails every delivery: notifications are acknowledged and wait in the outbox.
  platform.mode = { kind: 'status', status: 503 }
  const first = serve(dataDir, env)
  t.teardown(() => { first.child.kill('SIGKILL') })
  const base = `${await listening(first)}/admin-api/video/camera/callback`
  const want = new Map<string, string[]>([['cam1', []], ['cam2', []]])
  for (let i = 0; i < 20; i++) {
    const stream = i % 2 === 0 ? 'cam1' : 'cam2'
    const r = await postHook(base, 'on_stop', stop(`c${i}`, stream))
    t.equal(r.status, 200, `c${i} acknowledged`)
    want.get(stream)!.push(`c${i}`)
  }
  // Both streams tried at least once before the kill.
  await platform.waitFor((r) => new Set(r.map((x) => x.body.stream)).size === 2, 20_000, 'attempts on both streams')
  const exited = new Promise((resolve) => first.child.once('exit', resolve))
  first.child.kill('SIGKILL')
  await exited
  const before = platform.received.length
  const keyOf = new Map<string, string>()
  for (const r of platform.received) {
    const key = String(r.headers['idempotency-key'])
    const had = keyOf.get(String(r.body.client_id))
    if (had !== undefined) t.equal(key, had, `${String(r.body.client_id)}: one key on every attempt`)
    keyOf.set(String(r.body.client_id), key)
  }

  platform.mode = { kind: 'ok' }
  const second = serve(dataDir, env)
  t.teardown(() => { second.child.kill('SIGKILL') })
  await listening(second)
  await platform.waitFor((r) => {
    const got = new Set(r.slice(before).map((x) => x.body.client_id))
    return got.size === 20
  }, 60_000, 'every notification after the restart')
  const after = platform.received.slice(before)
  for (const [stream, clients] of want) {
    t.same(after.filter((r) => r.body.stream === stream).map((r) => r.body.client_id), clients, `${stream}: each once after the restart, in SRS's order`)
  }
  for (const r of after) {
    const had = keyOf.get(String(r.body.client_id))
    if (had !== undefined) t.equal(r.headers['idempotency-key'], had, `${String(r.body.client_id)}: the key from before the kill`)
  }
  const keys = after.map((r) => r.headers['idempotency-key'])
  t.equal(new Set(keys).size, 20, 'a different key per hook')
})
