/**
 * The SRS simulator in a process of its own (issue #11, item 3), so that the CPU it spends
 * answering the API and sending hooks is not the bench's. Forked by SimProcess.start() (sim.ts)
 * with the simulator's options as JSON in argv; it sends `{ url }` once listening, then answers
 * each call `{ id, method, args }` with `{ id, result }` or `{ id, error }`. It closes and exits
 * when the bench disconnects.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { SrsSimulator, type PublishResult, type SimOptions } from '../../test/fixtures/srs-sim.js'
import type { Spread } from './sim.js'

const opts = JSON.parse(process.argv[2]!) as SimOptions
const sim = await SrsSimulator.start(opts)

/**
 * `n` publishers of `prefix` + index, the k-th arriving k × overMs / n after the first (as the
 * bench's paced load generator spaces requests); each tries once.
 */
async function publishSpread (n: number, prefix: string, overMs: number): Promise<Spread> {
  const attempts: Array<Promise<PublishResult & { ms: number }>> = []
  const started = performance.now()
  let ended = started
  const attempt = async (stream: string): Promise<PublishResult & { ms: number }> => {
    const arrived = performance.now()
    const r = await sim.publish({ app: 'live', stream })
    ended = performance.now()
    return { ...r, ms: ended - arrived }
  }
  while (attempts.length < n) {
    const due = Math.min(n, Math.floor((performance.now() - started) * n / overMs) + 1)
    while (attempts.length < due) attempts.push(attempt(prefix + attempts.length))
    await sleep(1)
  }
  const results = await Promise.all(attempts)
  const refused = results.filter((r) => !r.ok)
  return { ms: ended - started, attemptsMs: results.map((r) => r.ms), refused: refused.length, codes: [...new Set(refused.map((r) => r.code))] }
}

/** What the bench may ask: the simulator's own methods, and a few reads of its state. */
const methods: Record<string, (...args: never[]) => unknown> = {
  publish: async (o: Parameters<SrsSimulator['publish']>[0]) => await sim.publish(o),
  play: async (o: Parameters<SrsSimulator['play']>[0]) => await sim.play(o),
  publishSpread,
  seedLive: (n: number, o: Parameters<SrsSimulator['seedLive']>[1]) => { sim.seedLive(n, o) },
  setReleaseDelay: (ms: number) => { sim.setReleaseDelay(ms) },
  setHookBase: (base: string) => { sim.setHookBase(base) },
  clientIds: () => sim.clientIds(),
  apiRequests: () => sim.apiRequests,
  /** The time of the last `hook` about `clientId`, from sending to the reply (HookCall.ms). */
  hookMs: (hook: string, clientId: string) => sim.hookCalls.findLast((c) => c.hook === hook && c.clientId === clientId)?.ms
}

interface Call { id: number, method: string, args: unknown[] }

process.on('message', (call: Call) => {
  void (async () => await (methods[call.method] as (...a: unknown[]) => unknown)(...call.args))().then(
    (result) => process.send!({ id: call.id, result }),
    (err: Error) => process.send!({ id: call.id, error: err.message })
  )
})
process.once('disconnect', () => { void sim.close() })
process.send!({ url: sim.apiUrl })
