/**
 * One server under test, in a process of its own so that its CPU time and resident memory are
 * its own (the load generator lives in the bench's process, the SRS simulator in its own). Forked
 * by Target.start() (harness.ts) with `--expose-gc`, on a CPU of its own when pinned, as
 * `target.js bare|app`; the app is configured by the environment as the real entry point is. Over
 * IPC it sends `{ url }` once listening, then answers each command (`memory`, `cpu`, and
 * `reconcile`, `recordings` for the app) with its result. It closes and exits when the bench
 * disconnects (writing its CPU profile then, with BENCH_CPU_PROF).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { bareHandler } from './bare.js'
import { floorHandler } from './floor.js'
import type { GroupStats } from '../../src/recordings/group-commit.js'
import type { RecordingCounters } from '../../src/recordings/service.js'
import type { SqliteRecordingStore } from '../../src/recordings/sqlite.js'
import type { SpoolStatus } from '../../src/recordings/store.js'

export interface Memory { rss: number, heapUsed: number }
/** The recordings service's counters, the spool's state (PostgreSQL), SQLite's group commits. */
export interface RecordingsState { counters: RecordingCounters, spool: SpoolStatus | null, groups: GroupStats | null }
export interface Reconciled { ms: number, size: number, failures: number }

interface Served {
  url: string
  commands: Record<string, () => Promise<unknown>>
  close: () => Promise<void>
}

/** The limit for this stack: node:http parsing the same JSON body and answering `{"code":0}` (bare.ts). */
async function serveBare (): Promise<Served> {
  return await serveWith(bareHandler)
}

/** node:http doing a hook's required work and no more (floor.ts); with HOOK_TOKEN, its check too. */
async function serveFloor (env: NodeJS.ProcessEnv): Promise<Served> {
  return await serveWith(floorHandler(env.HOOK_TOKEN))
}

async function serveWith (handler: http.RequestListener): Promise<Served> {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    commands: {},
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}

/** srs-hooks as `npm start` builds it; reconciliation runs only when the bench asks. */
async function serveApp (env: NodeJS.ProcessEnv): Promise<Served> {
  // Loaded here, so that the bare server's process holds none of it.
  const { buildApp } = await import('../../src/app.js')
  const { loadConfig } = await import('../../src/config.js')
  const app = await buildApp(loadConfig({ ...env, HOST: '127.0.0.1', PORT: '0', RECONCILE_INTERVAL_MS: '0' }))
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  // Where takeovers happen depends on SRS's version: know it before the first measured hook.
  await app.srsServers.discover()
  // Round trips to Redis (a script or a pipeline is one), when REDIS_URL is set.
  let redisCommands = 0
  const client = app.redis?.client as unknown as { sendCommand: (...args: unknown[]) => unknown } | undefined
  if (client !== undefined) {
    const send = client.sendCommand.bind(client)
    client.sendCommand = (...args: unknown[]) => { redisCommands++; return send(...args) }
  }
  return {
    url,
    commands: {
      reconcile: async (): Promise<Reconciled> => {
        const started = performance.now()
        await app.reconciler.run()
        const ms = performance.now() - started
        return { ms, size: await app.publishers.store.size(), failures: app.reconciler.failures }
      },
      redisCommands: async () => redisCommands,
      recordings: async (): Promise<RecordingsState> => {
        const store = app.recordings.store as Partial<SqliteRecordingStore>
        return { counters: app.recordings.counters, spool: app.recordings.spool(), groups: store.stats === undefined ? null : await store.stats() }
      }
    },
    close: async () => { await app.close() }
  }
}

/** CPU time this process has used so far (user + system), µs: the bench takes differences. */
async function cpu (): Promise<number> {
  const { user, system } = process.cpuUsage()
  return user + system
}

/** Resident memory after a full collection, so that garbage waiting for one is not counted. */
async function memory (): Promise<Memory> {
  globalThis.gc!()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heapUsed }
}

const kinds = { bare: serveBare, floor: serveFloor, app: serveApp }
const served = await kinds[process.argv[2] as keyof typeof kinds](process.env)
const commands: Record<string, () => Promise<unknown>> = { memory, cpu, ...served.commands }
process.on('message', (command: string) => {
  void commands[command]!().then((result) => process.send!(result))
})
process.once('disconnect', () => { void served.close() })
process.send!({ url: served.url })
