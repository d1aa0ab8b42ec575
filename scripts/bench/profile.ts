/**
 * Where a server's time went: `node dist-bench/scripts/bench/profile.js FILE.cpuprofile [top]`
 * sums a V8 CPU profile (`--cpu-prof`, BENCH_CPU_PROF) by where the code lives (a package of
 * node_modules, Node's own modules, this project's files, V8's garbage collector, idle) and
 * prints the shares in percent of the profile's time, then the `top` functions by self time.
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

/** The part of the code a frame belongs to. */
export function areaOf (url: string, fn: string): string {
  if (url === '') return fn === '(idle)' ? 'idle' : fn === '(garbage collector)' ? 'garbage collector' : fn === '(program)' ? 'V8/native (program)' : `native: ${fn || '(anonymous)'}`
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1]!
  if (url.startsWith('node:')) return `node: ${url.slice(5).replace(/^internal\//, '').split('/')[0]!.replace(/\.js$/, '')}`
  const ours = /\/(src|routes|scripts)\/(.*?)\.[jt]s$/.exec(url)
  if (ours !== null) return `${ours[1]}/${ours[2]}`
  return url
}

/** Self time per area and per function, ms, and the total. */
export function summarize (profile: Profile): { total: number, areas: Map<string, number>, functions: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000)
  }
  const areas = new Map<string, number>()
  const functions = new Map<string, number>()
  let total = 0
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const area = areaOf(url, functionName)
    areas.set(area, (areas.get(area) ?? 0) + ms)
    const fn = `${functionName || '(anonymous)'} ${url === '' ? '' : `${url.replace(/^.*\/(node_modules|src|routes|scripts)\//, '$1/')}:${lineNumber + 1}`}`
    functions.set(fn, (functions.get(fn) ?? 0) + ms)
    total += ms
  }
  return { total, areas, functions }
}

function table (m: Map<string, number>, total: number, top: number): string {
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, ms]) => `${(100 * ms / total).toFixed(1).padStart(5)} %  ${ms.toFixed(0).padStart(6)} ms  ${k}`).join('\n')
}

if (process.argv[1]?.endsWith('profile.js') === true || process.argv[1]?.endsWith('profile.ts') === true) {
  const file = process.argv[2]!
  const top = Number(process.argv[3] ?? 25)
  const { total, areas, functions } = summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile)
  process.stdout.write(`${file}: ${total.toFixed(0)} ms sampled\n\nby area (self time):\n${table(areas, total, top)}\n\nby function (self time):\n${table(functions, total, top)}\n`)
}
