/**
 * The SRS simulator in a process of its own (issue #11, item 3), so that the CPU it spends
 * answering the API and sending hooks is not the bench's. Forked by SimProcess.start() (sim.ts)
 * with the simulator's options as JSON in argv; it sends `{ url }` once listening, then answers
 * each call `{ id, method, args }` with `{ id, result }` or `{ id, error }`. It closes and exits
 * when the bench disconnects.
 */
import { SrsSimulator, type SimOptions } from '../../test/fixtures/srs-sim.js'

const opts = JSON.parse(process.argv[2]!) as SimOptions
const sim = await SrsSimulator.start(opts)

/** What the bench may ask: the simulator's own methods, and a few reads of its state. */
const methods: Record<string, (...args: never[]) => unknown> = {
  publish: async (o: Parameters<SrsSimulator['publish']>[0]) => await sim.publish(o),
  play: async (o: Parameters<SrsSimulator['play']>[0]) => await sim.play(o),
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
