/**
 * The restart gap (issue #11, item 4): from starting the process to the first hook answered,
 * srs-hooks as `npm start` runs it (the production bundle, build.mjs) against a bare node:http
 * server started the same way (plain `node FILE`, the same environment, the same CPU), in turns. srs-hooks
 * restarts beside `scaleStreams` live streams and an empty DATA_DIR, so its first reconciliation,
 * SQLite's migrations and the SRS version probe all run at start: the first hook must not wait
 * for them.
 */
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { BARE_SOURCE } from './bare.js'
import { onServerCpu } from './cores.js'
import { BENCH_SERVER_ID, checks, coreLayout, percentile, row, type Row, type Scenario } from './harness.js'
import { hookRequest } from './hooks.js'
import { SimProcess } from './sim.js'

/**
 * Plain node for both servers: under the bench's smoke test, tap adds its loader and coverage to
 * every child's environment; `env` takes them off again before it execs node.
 */
const PLAIN = ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE']

/** The project's root: the nearest folder up from here with a package.json (scripts/ or dist-bench/scripts/). */
function projectRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('dist-bench')) dir = dirname(dir)
  return dir
}

/** `npm run build`'s bundle, made now from the source into dist-bench/prod (node_modules resolves from there). */
async function buildProduction (root: string): Promise<string> {
  const out = join(root, 'dist-bench', 'prod', 'src')
  await promisify(execFile)('env', [...PLAIN, process.execPath, 'build.mjs', out], { cwd: root })
  return join(out, 'cli.js')
}

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise((resolve) => s.close(resolve))
  return port
}

const HOOK = hookRequest('on_play', { id: 'vid-0000001', app: 'live', name: 'cam1' }, 'c0000001')

/** One request on a fresh connection; the status and body, or status 0 while nothing listens. */
function send (port: number, method: string, path: string, body?: string): Promise<{ status: number, text: string }> {
  return new Promise((resolve) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json' }
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => resolve({ status: res.statusCode!, text }))
    })
    req.on('error', () => resolve({ status: 0, text: '' }))
    req.end(body)
  })
}

interface Start { ms: number, publishers: number }

/**
 * Starts `file` with `env`, sends the hook every millisecond until it is answered 200; the time
 * from spawn() to that answer. For srs-hooks, then, the publisher table's size from /metrics (how
 * far its first reconciliation had come when the hook was answered).
 */
async function firstHook (file: string, env: Record<string, string>, metrics: boolean): Promise<Start> {
  const port = await freePort()
  const started = performance.now()
  // On the server's CPU when the bench pins (cores.ts), both servers alike.
  const { command, args } = onServerCpu(coreLayout(), process.execPath, [file])
  const child = spawn('env', [...PLAIN, command, ...args], { env: { ...process.env, ...env, HOST: '127.0.0.1', PORT: String(port) }, stdio: 'ignore' })
  try {
    while ((await send(port, 'POST', HOOK.path, HOOK.body)).status !== 200) {
      // A build that cannot start: the bench (and its smoke test) fails instead of waiting forever.
      /* c8 ignore next */
      if (child.exitCode !== null) throw new Error(`${file} exited with ${child.exitCode} before answering`)
      await sleep(1)
    }
    const ms = performance.now() - started
    const publishers = metrics ? Number(/^srs_hooks_publishers (\d+)$/m.exec((await send(port, 'GET', '/metrics')).text)![1]) : 0
    return { ms, publishers }
  } finally {
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** 14. Process start to first hook answered, srs-hooks against bare node:http, `restarts` turns each. */
export const restartGap: Scenario = {
  title: 'restart gap: process start to the first hook answered vs bare node:http',
  run: async (_shared, opts) => {
    const root = projectRoot()
    const entry = await buildProduction(root)
    const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-'))
    const bareFile = join(dir, 'bare.mjs')
    await writeFile(bareFile, BARE_SOURCE)
    const sim = await SimProcess.start({ serverId: BENCH_SERVER_ID })
    try {
      await sim.seedLive(opts.scaleStreams)
      const bare: number[] = []
      const ours: Start[] = []
      // A restart, not a first start: every start shares one compile cache (Node 22.1+), which a
      // start before the measured ones fills, as the previous process would have.
      const env = (data: string): Record<string, string> => ({ SRS_API_URL: sim.apiUrl, DATA_DIR: join(dir, data), LOG_LEVEL: 'info', NODE_COMPILE_CACHE: join(dir, 'compile-cache') })
      await firstHook(entry, env('data-first'), true)
      for (let i = 0; i < opts.restarts; i++) {
        bare.push((await firstHook(bareFile, {}, false)).ms)
        ours.push(await firstHook(entry, env(`data-${i}`), true))
      }
      const before = ours.filter((s) => s.publishers < opts.scaleStreams).length
      return [
        row(`restart gap: process start to first hook answered, median of ${opts.restarts} (ref: bare node:http started the same way)`, 'ms', percentile(ours.map((s) => s.ms), 50), percentile(bare, 50), checks.ratioAtMost(3)),
        row('restart gap: slowest start (ref: bare\'s slowest)', 'ms', Math.max(...ours.map((s) => s.ms)), Math.max(...bare)),
        row(`restarts answering a hook before reconciling ${opts.scaleStreams} live streams (ref: restarts)`, 'restarts', before, opts.restarts, checks.equalsReference()),
        row('publishers in the table at the first hook, median (ref: live streams)', 'streams', percentile(ours.map((s) => s.publishers), 50), opts.scaleStreams)
      ] satisfies Row[]
    } finally {
      await sim.close()
      await rm(dir, { recursive: true })
    }
  }
}
