/**
 * What every scenario shares: the server under test in its own process (Target), a fresh stage of
 * simulator and server per scenario (withStage), the load generator (load), and the rows of the
 * results table with their targets (row, checks).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { Pool } from 'undici'
import { CALLBACK_PREFIXES } from '../../src/app.js'
import type { SimOptions } from '../../test/fixtures/srs-sim.js'
import { onServerCpu, type CoreLayout } from './cores.js'
import type { BenchOptions } from './options.js'
import { SimProcess } from './sim.js'
import type { Memory, Reconciled, RecordingsState } from './target.js'

const STARTUP_TIMEOUT_MS = 60_000

export type TargetKind = 'bare' | 'floor' | 'app'

/** The server_id of the bench's hooks: the simulator is started with it. */
export const BENCH_SERVER_ID = 'vid-bench01'

/** How servers under test are started: on which CPU, and whether they write a CPU profile. */
const launch: { layout: CoreLayout, profileDir: string | undefined, started: number } = {
  layout: { pinned: false, cpus: [], server: '', others: '', text: 'not pinned' },
  profileDir: undefined,
  started: 0
}

/**
 * Set once by runBench: servers start on `layout.server`; with `profileDir`, each writes a V8 CPU
 * profile there when it exits (`--cpu-prof`: NODE_OPTIONS refuses it, so it is passed here).
 */
export function configureLaunch (layout: CoreLayout, profileDir: string | undefined): void {
  launch.layout = layout
  launch.profileDir = profileDir
}

export function coreLayout (): CoreLayout {
  return launch.layout
}

/**
 * Node's arguments for a server under test: this process's (tap's loader in the smoke test), and
 * the CPU profile when asked for, named after `name` and the order of starts.
 */
export function serverExecArgv (name: string): string[] {
  const file = `${String(++launch.started).padStart(2, '0')}-${name}.cpuprofile`
  if (launch.profileDir === undefined) return [...process.execArgv]
  process.stderr.write(`  profile: ${launch.profileDir}/${file}\n`)
  return [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${launch.profileDir}`, `--cpu-prof-name=${file}`]
}

/** fork() on the server's CPU: through taskset when pinned (the child runs `node` itself). */
function forkServer (entry: URL, args: string[], name: string, env: NodeJS.ProcessEnv): ChildProcess {
  const execArgv = [...serverExecArgv(name), '--expose-gc']
  const pinned = onServerCpu(launch.layout, process.execPath, execArgv)
  return fork(entry, args, {
    env,
    execPath: pinned.command,
    execArgv: pinned.args,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
}

/** A server under test running in its own process (target.ts). */
export class Target {
  /** Where hooks are POSTed (the bare server answers any path). */
  readonly hookBase: string

  private constructor (private readonly child: ChildProcess, readonly url: string) {
    this.hookBase = url + CALLBACK_PREFIXES[0]
  }

  /** Forks target.ts (or .js, whichever this module is) with `env` added to this process's environment. */
  static async start (kind: TargetKind, env: Record<string, string> = {}): Promise<Target> {
    const entry = new URL('./target' + extname(import.meta.url), import.meta.url)
    const child = forkServer(entry, [kind], kind, { ...process.env, ...env })
    const [ready] = await once(child, 'message', { signal: AbortSignal.timeout(STARTUP_TIMEOUT_MS) }) as [{ url: string }]
    return new Target(child, ready.url)
  }

  async memory (): Promise<Memory> {
    return await this.command('memory') as Memory
  }

  /** CPU time the server's process used so far (user + system), µs. */
  async cpu (): Promise<number> {
    return await this.command('cpu') as number
  }

  /** One reconciliation with SRS, as the periodic one runs. */
  async reconcile (): Promise<Reconciled> {
    return await this.command('reconcile') as Reconciled
  }

  /** Commands the app sent to Redis so far (REDIS_URL set): a script is one. */
  async redisCommands (): Promise<number> {
    return await this.command('redisCommands') as number
  }

  /** The recordings service's counters, spool and group commits. */
  async recordings (): Promise<RecordingsState> {
    return await this.command('recordings') as RecordingsState
  }

  async close (): Promise<void> {
    const exited = once(this.child, 'exit')
    this.child.disconnect()
    await exited
  }

  private async command (name: string): Promise<unknown> {
    const reply = once(this.child, 'message')
    this.child.send(name)
    return (await reply)[0]
  }
}

/** A fresh SRS simulator (in its own process) and srs-hooks wired to each other: the simulator's hooks go to the app. */
export interface Stage {
  sim: SimProcess
  app: Target
}

/**
 * Its recordings index (on_dvr) goes to a temporary DATA_DIR, removed afterwards. `env` configures
 * the app beyond SRS_API_URL and DATA_DIR (DATABASE_URL...); `sim` the simulator; `prepare` fills
 * the DATA_DIR before the server starts.
 */
export async function withStage<T> (run: (stage: Stage) => Promise<T>, opts: { env?: Record<string, string>, sim?: SimOptions, prepare?: (dataDir: string) => Promise<void> } = {}): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-'))
  await opts.prepare?.(dataDir)
  // The id the bench's hook bodies carry, so the server knows which SRS sent them.
  const sim = await SimProcess.start({ serverId: BENCH_SERVER_ID, ...opts.sim })
  const app = await Target.start('app', { SRS_API_URL: sim.apiUrl, DATA_DIR: dataDir, ...opts.env })
  await sim.setHookBase(app.hookBase)
  try {
    return await run({ sim, app })
  } finally {
    await app.close()
    await sim.close()
    await rm(dataDir, { recursive: true })
  }
}

/** A server under test of `kind`, started with `env` added (the floor with HOOK_TOKEN checks ?token=), for the time of `run`. */
export async function withTarget<T> (kind: TargetKind, run: (target: Target) => Promise<T>, env: Record<string, string> = {}): Promise<T> {
  const target = await Target.start(kind, env)
  try {
    return await run(target)
  } finally {
    await target.close()
  }
}

// ------------------------------------------------------------------------------ load generator

/** `headers` are sent besides content-type (X-Forwarded-For, as a gateway adds it). */
export interface HttpRequest { method: 'GET' | 'POST', path: string, body?: string, headers?: Record<string, string> }

export interface LoadOptions {
  url: string
  /** One request is built once and repeated; a list is dealt out in turn across all connections. */
  requests: HttpRequest[]
  /** Builds each request instead (every on_dvr a new file); `requests` is then ignored. */
  next?: () => HttpRequest
  connections: number
}

export interface LoadResult {
  /** Completed requests per second. */
  rps: number
  /** Latency percentiles, ms. */
  p50: number
  p99: number
  completed: number
  /** Connection errors and timeouts, non-2xx replies, and replies whose code is not 0. */
  failures: number
}

/** A reply that allows: `{"code":0}` or `{"code":0,...}` (srs-hooks, the bare server, SRS's API). */
const ALLOWED = /^\{"code":0[,}]/

/**
 * As many requests as the target answers for `durationS` seconds (closed loop, autocannon).
 * autocannon records latencies in whole milliseconds.
 */
export async function saturate (o: LoadOptions & { durationS: number }): Promise<LoadResult> {
  const deal = o.next ?? dealer(o.requests)
  const dealt = (req: autocannon.Request): autocannon.Request => {
    const next = deal()
    return { ...req, ...next, headers: { ...req.headers, ...next.headers } }
  }
  const requests = o.next === undefined && o.requests.length === 1 ? o.requests : [{ setupRequest: dealt }]
  const result = await autocannon({
    url: o.url,
    connections: o.connections,
    duration: o.durationS,
    headers: { 'content-type': 'application/json' },
    requests,
    verifyBody: (body) => ALLOWED.test(String(body))
  })
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    completed: result.requests.total,
    failures: result.errors + result.non2xx + result.mismatches
  }
}

/**
 * `rate` requests per second, evenly spaced, for `durationS` seconds (open loop). autocannon's
 * rate limit sends each second's quota in a burst at the start of the second, which measures
 * queueing, not the latency at that rate. Latency counts from the moment a request was due, so a
 * late send (a busy bench process) is not hidden. Resolves when every request has its reply.
 */
export async function pace (o: LoadOptions & { durationS: number, rate: number }): Promise<LoadResult> {
  const pool = new Pool(o.url, { connections: o.connections })
  const next = o.next ?? dealer(o.requests)
  const total = Math.max(1, Math.round(o.rate * o.durationS))
  const sent: Array<Promise<Sample>> = []
  const started = performance.now()
  while (sent.length < total) {
    const due = Math.min(total, Math.floor((performance.now() - started) * o.rate / 1000) + 1)
    while (sent.length < due) sent.push(send(pool, next(), started + sent.length * 1000 / o.rate))
    await sleep(1)
  }
  const settled = await Promise.allSettled(sent)
  const elapsedS = (performance.now() - started) / 1000
  await pool.close()
  const samples = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value)
  const ms = samples.map((s) => s.ms)
  return {
    rps: samples.length / elapsedS,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    completed: samples.length,
    failures: settled.length - samples.filter((s) => s.ok).length
  }
}

interface Sample { ms: number, ok: boolean }

async function send (pool: Pool, req: HttpRequest, dueAt: number): Promise<Sample> {
  const res = await pool.request({ ...req, headers: { 'content-type': 'application/json', ...req.headers } })
  const text = await res.body.text()
  return { ms: performance.now() - dueAt, ok: res.statusCode === 200 && ALLOWED.test(text) }
}

/** Hands out `list` in turn to whichever connection asks next, so connections never replay it in step. */
function dealer (list: HttpRequest[]): () => HttpRequest {
  let i = 0
  return () => list[i++ % list.length]!
}

/** 500 requests in a quarter of a second, so that both sides of a comparison are past their JIT warm-up. */
export async function warmUp (url: string, requests: HttpRequest[], opts: BenchOptions): Promise<void> {
  await pace({ url, requests, connections: opts.connections, durationS: 0.25, rate: 2000 })
}

/** The nearest-rank percentile of samples. */
export function percentile (samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(p / 100 * sorted.length) - 1)]!
}

export const MB = 1024 * 1024

// ------------------------------------------------------------------------------ results

export type Unit = 'req/s' | 'ms' | 'MB' | 'calls' | 'streams' | 'requests' | 'takeovers' | 'rows' | 'bursts' | 'cores' | 'µs' | 'restarts' | 'events' | 'events/s' | 'publishes'

/** A target on a figure: its wording, and whether the value (with its reference) meets it. */
export interface Check {
  text: string
  met: (value: number, reference: number) => boolean
}

export interface Row {
  figure: string
  value: number
  unit: Unit
  /** The same figure for the reference (the limit, or what it is compared with). */
  reference?: number
  /** value / reference */
  ratio?: number
  target?: string
  met?: boolean
}

export function row (figure: string, unit: Unit, value: number, reference?: number, check?: Check): Row {
  const r: Row = { figure, unit, value }
  if (reference !== undefined) Object.assign(r, { reference, ratio: value / reference })
  if (check !== undefined) Object.assign(r, { target: check.text, met: check.met(value, reference ?? 0) })
  return r
}

export const checks = {
  ratioAtLeast: (limit: number): Check => ({ text: `ratio ≥ ${limit}`, met: (v, ref) => v / ref >= limit }),
  ratioAtMost: (limit: number): Check => ({ text: `ratio ≤ ${limit}`, met: (v, ref) => v / ref <= limit }),
  atMost: (limit: number, unit: Unit): Check => ({ text: `≤ ${limit} ${unit}`, met: (v) => v <= limit }),
  atLeast: (limit: number, unit: Unit): Check => ({ text: `≥ ${limit} ${unit}`, met: (v) => v >= limit }),
  below: (limit: number, unit: Unit): Check => ({ text: `< ${limit} ${unit}`, met: (v) => v < limit }),
  /** value − reference below the limit */
  addedBelow: (limit: number, unit: Unit): Check => ({ text: `value − reference < ${limit} ${unit}`, met: (v, ref) => v - ref < limit }),
  /** value − reference at most the limit */
  addedAtMost: (limit: number, unit: Unit): Check => ({ text: `value − reference ≤ ${limit} ${unit}`, met: (v, ref) => v - ref <= limit }),
  equalsReference: (): Check => ({ text: '= reference', met: (v, ref) => v === ref })
}

/**
 * A measured part of the bench. `stage` is shared by the scenarios of a run (starting a server
 * costs seconds in the smoke test); one that needs a process of its own builds it with withStage.
 */
export interface Scenario {
  title: string
  run: (stage: Stage, opts: BenchOptions) => Promise<Row[]>
}
