/**
 * The platform's callback for the forwarding scenario (forward.ts), in a process of its own so
 * that the CPU it spends answering is neither the bench's (the load generator's timing) nor the
 * server's under test. Forked by PlatformProcess.start() (platform.ts) with its answer delay (ms)
 * in argv: node:http, each request's body read whole, then `{"code":0}` after the delay, as a
 * platform's handler that takes that long. It records, per request, its own time (from the request
 * to its reply), and for the bench's backlog (an Idempotency-Key starting with `backlog-`) when
 * each was answered (wall clock, ms). Over IPC it sends `{ url }` once
 * listening, then answers `clear` and `summary` calls; it exits when the bench disconnects.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

const delayMs = Number(process.argv[2])

/** What the platform saw since the last `clear`. */
export interface PlatformSummary {
  /** Requests answered. */
  requests: number
  /** Requests of the backlog: how many, and when the first and the last were answered (wall clock, ms). */
  backlog: number
  firstBacklogAt: number
  lastBacklogAt: number
  /** Notifications (requests with an Idempotency-Key) that were not the backlog's. */
  notices: number
  /** The platform's own time per request, ms: median and 99th percentile (absent when it answered nothing). */
  ownP50: number
  ownP99: number
}

let own: number[] = []
let notices = 0
let backlog: number[] = []

const wall = (): number => performance.timeOrigin + performance.now()

const server = http.createServer((req, res) => {
  const started = performance.now()
  const key = req.headers['idempotency-key']
  req.resume()
  req.on('end', () => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 10 })
      res.end('{"code":0}')
      own.push(performance.now() - started)
      if (typeof key === 'string' && key.startsWith('backlog-')) backlog.push(wall())
      else if (key !== undefined) notices++
    }, delayMs)
  })
})
server.keepAliveTimeout = 10_000

/** The nearest-rank percentile; undefined (absent from the summary, NaN in the table) when it answered nothing. */
function percentile (sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p / 100 * sorted.length) - 1)]!
}

const methods: Record<string, () => unknown> = {
  clear: () => {
    own = []
    notices = 0
    backlog = []
  },
  summary: (): PlatformSummary => {
    const sorted = own.toSorted((a, b) => a - b)
    return {
      requests: own.length,
      backlog: backlog.length,
      firstBacklogAt: backlog[0] ?? 0,
      lastBacklogAt: backlog.at(-1) ?? 0,
      notices,
      ownP50: percentile(sorted, 50),
      ownP99: percentile(sorted, 99)
    }
  }
}

await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
process.on('message', (call: { id: number, method: string }) => {
  process.send!({ id: call.id, result: methods[call.method]!() })
})
process.once('disconnect', () => {
  server.closeAllConnections()
  server.close()
})
process.send!({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
