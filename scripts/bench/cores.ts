/**
 * Where the bench's processes run (issue #11, item 2). With two CPUs or more and `taskset`, the
 * server under test gets the first CPU the bench may use, alone; the bench's own process (the load
 * generators, the gateway) and everything it starts besides a server (the SRS simulator, Redis,
 * PostgreSQL) the others. Without `taskset`, or with BENCH_PIN=0, nothing is pinned and the
 * layout says so: the ratios then also measure the contention between them.
 */
import { execFileSync } from 'node:child_process'

export interface CoreLayout {
  /** Whether the processes are pinned. */
  pinned: boolean
  /** The CPUs this bench may use. */
  cpus: number[]
  /** The server under test's CPU list (taskset -c), when pinned. */
  server: string
  /** Everything else's, when pinned. */
  others: string
  /** In words, for the results table and the progress output. */
  text: string
}

/** The CPUs a process may run on, from `taskset -c -p`; undefined when `taskset` cannot be run. */
export function affinity (pid: number, taskset = 'taskset'): number[] | undefined {
  try {
    const out = execFileSync(taskset, ['-c', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    return expand(out.slice(out.lastIndexOf(':') + 1).trim())
  } catch {
    return undefined
  }
}

/** "0-2,5" -> [0, 1, 2, 5] */
export function expand (list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to = from] = part.split('-').map(Number) as [number, number?]
    return Array.from({ length: to! - from + 1 }, (_, i) => from + i)
  })
}

/**
 * The layout for the CPUs this process may use (undefined: taskset cannot be run) and `pin`
 * (BENCH_PIN): the server on the first, everything else on the others.
 */
export function decideLayout (cpus: number[] | undefined, pin: boolean): CoreLayout {
  if (cpus === undefined) return unpinned([], 'not pinned: taskset not found (the server, the load generator and the simulator share the CPUs)')
  if (!pin) return unpinned(cpus, `not pinned (BENCH_PIN=0): everything shares CPUs ${cpus.join(',')}`)
  if (cpus.length < 2) return unpinned(cpus, `not pinned: one CPU (${cpus.join(',')}) for everything`)
  const server = String(cpus[0])
  const others = cpus.slice(1).join(',')
  return {
    pinned: true,
    cpus,
    server,
    others,
    text: `taskset: server under test on CPU ${server}; bench, load generator, simulator, Redis, PostgreSQL on CPU ${others}`
  }
}

/** Decides the layout and, when pinned, moves this process (all its threads) to the non-server CPUs. */
export function layOutCores (pin: boolean): CoreLayout {
  const layout = decideLayout(affinity(process.pid), pin)
  if (layout.pinned) execFileSync('taskset', ['-a', '-c', '-p', layout.others, String(process.pid)], { stdio: 'ignore' })
  return layout
}

function unpinned (cpus: number[], text: string): CoreLayout {
  return { pinned: false, cpus, server: '', others: '', text }
}

/**
 * The command and arguments that start `execPath args` on the server's CPU (as it is, unpinned).
 */
export function onServerCpu (layout: CoreLayout, execPath: string, args: string[]): { command: string, args: string[] } {
  return layout.pinned ? { command: 'taskset', args: ['-c', layout.server, execPath, ...args] } : { command: execPath, args }
}
