import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { waitFor } from './fixtures/app.js'

/**
 * The durability claim, tested on the real entry point: every on_dvr that got its reply is in the
 * index after the process is killed with SIGKILL in the middle of a burst and started again.
 */

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

interface Proc { child: ChildProcess, out: string[], exited: Promise<number | null> }

function serve (dataDir: string): Proc {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', RECONCILE_INTERVAL_MS: '0', DATA_DIR: dataDir, SRS_API_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const out: string[] = []
  child.stdout!.on('data', (c: Buffer) => {
    // Only the start-up lines matter; do not keep thousands of hook lines.
    if (out.length < 50) out.push(...c.toString().split('\n').filter((l) => l.includes('Server listening')))
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, out, exited }
}

async function listening (p: Proc): Promise<string> {
  const line = await waitFor(() => p.out.find((l) => l.includes('Server listening at http://127.0.0.1')), 20_000, 'the server to listen')
  return JSON.parse(line).msg.replace('Server listening at ', '')
}

t.test('SIGKILL in the middle of an on_dvr burst: every acknowledged recording is listed after a restart', async (t) => {
  const dataDir = join(t.testdir(), 'data')
  const first = serve(dataDir)
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
      if (acked.length >= KILL_AFTER && !killed) {
        inFlightAtKill = inFlight
        killed = true
        first.child.kill('SIGKILL')
      }
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, async (_, w) => await worker(w)))
  t.equal(await first.exited, null, 'killed by the signal, not exited')
  t.ok(inFlightAtKill > 0, `killed mid-burst, with ${inFlightAtKill} on_dvr in flight`)

  const second = serve(dataDir)
  t.teardown(() => { second.child.kill('SIGKILL') })
  const url2 = await listening(second)
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
})
