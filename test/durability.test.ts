import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { waitFor } from './fixtures/app.js'
import { startPostgres } from './fixtures/postgres.js'

/**
 * The durability claim, tested on the real entry point: every on_dvr that got its reply is in the
 * index after the process is killed with SIGKILL in the middle of a burst and started again. On
 * SQLite; on PostgreSQL; and on PostgreSQL stopped in the middle of the burst, so that the process
 * dies with acknowledged recordings in its spool, drained when it starts again.
 */

const cluster = await startPostgres(t)

// Six server processes (three kills and restarts), each compiled by the test runner's loader.
t.setTimeout(300_000)

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

interface Proc { child: ChildProcess, out: string[], exited: Promise<number | null>, spooled: number }

function serve (dataDir: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', RECONCILE_INTERVAL_MS: '0', DATA_DIR: dataDir, SRS_API_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const out: string[] = []
  let partial = ''
  const proc: Proc = { child, out, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))), spooled: 0 }
  child.stdout!.on('data', (c: Buffer) => {
    const lines = (partial + c.toString()).split('\n')
    partial = lines.pop()!
    // The start-up lines, and a count of the on_dvr acknowledged from the spool; not every hook line.
    for (const l of lines) {
      if (l.includes('"outcome":"spooled"')) proc.spooled++
      else if (out.length < 50 && l.includes('Server listening')) out.push(l)
    }
  })
  return proc
}

async function listening (p: Proc): Promise<string> {
  // Generous: under the test runner's loader a start compiles the whole server, slowly on a busy machine.
  const line = await waitFor(() => p.out.find((l) => l.includes('Server listening at http://127.0.0.1')), 60_000, 'the server to listen')
  return JSON.parse(line).msg.replace('Server listening at ', '')
}

/** `midBurst` runs once, after a third of the acknowledgements, while the burst goes on. */
async function killMidBurst (t: Test, env: Record<string, string>, midBurst?: () => Promise<void>): Promise<{ spooled: number }> {
  const dataDir = join(t.testdir(), 'data')
  const first = serve(dataDir, env)
  t.teardown(() => { first.child.kill('SIGKILL') })
  const url = await listening(first)

  const acked: string[] = []
  let inFlight = 0
  let inFlightAtKill = -1
  let failed = 0
  let seq = 0
  let killed = false
  const WORKERS = 16
  const KILL_AFTER = 300
  let middle: Promise<void> | undefined
  const worker = async (w: number): Promise<void> => {
    while (!killed) {
      const file = `/srv/srs/dvr/live/cam${w}.${1_700_000_000_000 + seq++}.flv`
      inFlight++
      try {
        const res = await fetch(`${url}/admin-api/video/camera/callback/on_dvr`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ action: 'on_dvr', client_id: `c${w}`, server_id: 'vid-dur', vhost: '__defaultVhost__', app: 'live', stream: `cam${w}`, cwd: '/srv/srs', file })
        })
        const reply = await res.json() as { code: number }
        if (res.status === 200 && reply.code === 0) acked.push(file)
      } catch {
        failed++ // the process died before answering: not acknowledged
        if (killed) return
      } finally {
        inFlight--
      }
      if (acked.length >= KILL_AFTER / 3 && midBurst !== undefined && middle === undefined) middle = midBurst()
      if (acked.length >= KILL_AFTER && !killed) {
        inFlightAtKill = inFlight
        killed = true
        first.child.kill('SIGKILL')
      }
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => await worker(w)))
  await middle
  t.equal(await first.exited, null, 'killed by the signal, not exited')
  t.ok(inFlightAtKill > 0, `killed mid-burst, with ${inFlightAtKill} on_dvr in flight`)
  // What the killed process left in its spool (the spool's file, as the next process finds it).
  const spooled = first.spooled

  if (env.DATABASE_URL !== undefined && !cluster.running) await cluster.start()
  const second = serve(dataDir, env)
  t.teardown(() => { second.child.kill('SIGKILL') })
  const url2 = await listening(second)
  if (env.DATABASE_URL !== undefined) {
    await waitFor(async () => {
      const res = await fetch(`${url2}/readyz`)
      return ((await res.json()) as { spool: { depth: number } }).spool.depth === 0
    }, 20_000, 'the spool to drain')
  }
  const listed = new Set<string>()
  let cursor: string | null = null
  do {
    const res = await fetch(`${url2}/admin-api/video/camera/recordings?limit=500${cursor === null ? '' : `&cursor=${cursor}`}`)
    const body = await res.json() as { items: Array<{ file: string }>, next_cursor: string | null }
    for (const i of body.items) listed.add(i.file)
    cursor = body.next_cursor
  } while (cursor !== null)
  const lost = acked.filter((f) => !listed.has(f))
  t.comment(`acknowledged ${acked.length}, listed after restart ${listed.size}, in flight at the kill ${inFlightAtKill}, unanswered ${failed}`)
  t.ok(acked.length >= KILL_AFTER)
  t.same(lost, [], 'no acknowledged recording is missing')
  t.ok(listed.size <= seq, 'nothing listed that was never sent')
  second.child.kill('SIGTERM')
  t.equal(await second.exited, 0)
  return { spooled }
}

t.test('SIGKILL in the middle of an on_dvr burst: every acknowledged recording is listed after a restart (SQLite)', async (t) => {
  await killMidBurst(t, {})
})

t.test('the same on PostgreSQL', async (t) => {
  await killMidBurst(t, { DATABASE_URL: await cluster.database() })
})

t.test('PostgreSQL stopped mid-burst, then SIGKILL: what the spool held is drained by the next process, nothing lost', async (t) => {
  const url = await cluster.database()
  const { spooled } = await killMidBurst(t, { DATABASE_URL: url, SPOOL_RETRY_MS: '50' }, async () => { await cluster.stop('fast') })
  t.ok(spooled > 0, `the killed process left ${spooled} recordings in its spool`)
})
