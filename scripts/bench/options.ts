import { resolve } from 'node:path'

/**
 * The bench's parameters, from BENCH_* environment variables. The defaults are the issues' (#5, #8, #10, #20, #21);
 * the smoke test in test/bench.test.ts runs every scenario once with tiny ones.
 */
export interface BenchOptions {
  /** Seconds of each measured load run (hook throughput, on_publish at a fixed rate, mixed maximum). */
  durationS: number
  /** Seconds of the sustained mixed load at half the maximum rate. */
  loadS: number
  /** Concurrent connections of the load generator for the maximum-rate runs. */
  connections: number
  /** Requests per second of the on_publish run. */
  publishRate: number
  /** Distinct streams the on_publish and mixed runs spread over. */
  streams: number
  /** Takeovers measured one after another, for each release delay. */
  takeovers: number
  /** The simulator's release delays R, in ms. */
  releaseDelaysMs: number[]
  /** Live streams listed by the simulator for the scale run. */
  scaleStreams: number
  /** Streams taken over at the same moment. */
  concurrent: number
  /** Rows in each recordings index for the listing run (issue #10: a million). */
  recordings: number
  /** on_dvr per second of the latency run on both stores, and on_publish + on_unpublish per second beside the bursts. */
  dvrRate: number
  /** on_dvr sent at once in each burst (issue #8, item 8: 200). */
  dvrBurst: number
  /** Starts of each server for the restart gap (scenario 14). */
  restarts: number
  /** Notification hooks per second with and without forwarding, and during the backlog's drain (scenario 15, issue #20: 1,000). */
  forwardRate: number
  /** Notifications waiting in the outbox when the forwarding server starts (scenario 15, issue #20: 100,000). */
  forwardBacklog: number
  /** Decision hooks (on_publish, on_play) per second with and without forwarding (scenario 15). */
  forwardDecisionRate: number
  /** Newcomers of the reconnect storm, onto as many streams held by stale publishers, all arriving within one second (scenario 16, issue #21: 1,000). */
  storm: number
  /** Which scenarios to run, by number (1 to 16). */
  scenarios: number[]
  /** Pin the server under test to a CPU of its own (BENCH_PIN, default 1; 0: no pinning). */
  pin: boolean
  /** Where each server under test writes a V8 CPU profile when it exits (BENCH_CPU_PROF, made absolute); none by default. */
  profileDir: string | undefined
}

type Lists = 'releaseDelaysMs' | 'scenarios'
type Strings = 'pin' | 'profileDir'

/** Seconds may have a fraction (the smoke test runs for half a second); counts are whole. */
const SECONDS = new Set(['durationS', 'loadS'])

const NUMBERS: Record<Exclude<keyof BenchOptions, Lists | Strings>, [name: string, def: number]> = {
  durationS: ['BENCH_DURATION_S', 10],
  loadS: ['BENCH_LOAD_S', 60],
  connections: ['BENCH_CONNECTIONS', 20],
  publishRate: ['BENCH_PUBLISH_RATE', 1000],
  streams: ['BENCH_STREAMS', 1000],
  takeovers: ['BENCH_TAKEOVERS', 50],
  scaleStreams: ['BENCH_SCALE_STREAMS', 100_000],
  concurrent: ['BENCH_CONCURRENT', 200],
  recordings: ['BENCH_RECORDINGS', 1_000_000],
  dvrRate: ['BENCH_DVR_RATE', 200],
  dvrBurst: ['BENCH_DVR_BURST', 200],
  restarts: ['BENCH_RESTARTS', 5],
  forwardRate: ['BENCH_FORWARD_RATE', 1000],
  forwardBacklog: ['BENCH_FORWARD_BACKLOG', 100_000],
  forwardDecisionRate: ['BENCH_FORWARD_DECISION_RATE', 200],
  storm: ['BENCH_STORM', 1000]
}
const LISTS: Record<Lists, [name: string, def: string]> = {
  releaseDelaysMs: ['BENCH_RELEASE_DELAYS_MS', '5,50,500'],
  scenarios: ['BENCH_SCENARIOS', '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16']
}

/** Reads the options; throws naming the variable when one is not a positive number (integer for counts). */
export function optionsFrom (env: Record<string, string | undefined>): BenchOptions {
  const numbers = Object.entries(NUMBERS).map(([key, [name, def]]) =>
    [key, positive(name, env[name] ?? String(def), !SECONDS.has(key))])
  const lists = Object.entries(LISTS).map(([key, [name, def]]) =>
    [key, (env[name] ?? def).split(',').map((v) => positive(name, v, true))])
  const pin = env.BENCH_PIN ?? '1'
  if (pin !== '0' && pin !== '1') throw new Error(`BENCH_PIN=${JSON.stringify(pin)}: expected 0 or 1`)
  const profileDir = env.BENCH_CPU_PROF === undefined || env.BENCH_CPU_PROF === '' ? undefined : resolve(env.BENCH_CPU_PROF)
  return { ...Object.fromEntries([...numbers, ...lists]), pin: pin === '1', profileDir } as BenchOptions
}

function positive (name: string, raw: string, whole: boolean): number {
  const n = Number(raw.trim())
  if (!(n > 0) || (whole && !Number.isInteger(n))) {
    throw new Error(`${name}=${JSON.stringify(raw)}: expected a positive ${whole ? 'integer' : 'number'}`)
  }
  return n
}

/**
 * Takeovers per release delay in the SRS scenarios besides scenario 3 (at-connect, replicas): at
 * most 50, so that BENCH_TAKEOVERS=200 for scenario 3's p99 (issue #11) does not add ten minutes
 * of takeovers at R = 500 ms to them.
 */
export function takeoversOf (opts: BenchOptions): number {
  return Math.min(opts.takeovers, 50)
}
