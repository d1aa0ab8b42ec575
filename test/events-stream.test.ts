import { request, type IncomingMessage } from 'node:http'
import { connect as connectNet } from 'node:net'
import t, { type Test } from 'tap'
import { Codes } from '../src/errors.js'
import { LiveEvents } from '../src/operations/live-events.js'
import { startWorld, waitFor } from './fixtures/app.js'
import { RedisServer } from './fixtures/redis.js'

/**
 * GET events/stream without a browser: the wire format, resuming with Last-Event-ID, the bound on
 * a slow reader and on the number of readers, heartbeats, and the end of the streams at shutdown.
 */

const ADMIN = '/admin-api/video/camera'
const TOKEN = 'a-long-random-operator-token-0123456789'

interface SseEvent { id?: string, event?: string, data?: string }

/** A reader of an events stream: what it received, parsed, as it arrives. */
class Reader {
  readonly res: IncomingMessage
  text = ''
  ended = false
  readonly #wakes = new Set<() => void>()

  constructor (res: IncomingMessage) {
    this.res = res
    res.setEncoding('utf8')
    res.on('data', (c: string) => { this.text += c; this.#wake() })
    res.on('end', () => { this.ended = true; this.#wake() })
    res.on('close', () => { this.ended = true; this.#wake() })
  }

  #wake (): void {
    for (const w of this.#wakes) w()
  }

  readonly #parsed: SseEvent[] = []
  #consumed = 0

  /** The complete events so far (blocks ended by a blank line), comments left out. */
  get events (): SseEvent[] {
    for (let end = this.text.indexOf('\n\n', this.#consumed); end !== -1; end = this.text.indexOf('\n\n', this.#consumed)) {
      const block = this.text.slice(this.#consumed, end)
      this.#consumed = end + 2
      const e: SseEvent = {}
      for (const line of block.split('\n')) {
        const m = /^(id|event|data): (.*)$/.exec(line)
        if (m !== null) e[m[1] as keyof SseEvent] = m[2]!
      }
      if (e.event !== undefined || e.data !== undefined) this.#parsed.push(e)
    }
    return [...this.#parsed]
  }

  async until<T> (probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
    return await waitFor(probe, timeoutMs, what, (wake) => {
      this.#wakes.add(wake)
      return () => this.#wakes.delete(wake)
    })
  }

  close (): void {
    this.res.destroy()
  }
}

async function open (url: string, path = `${ADMIN}/events/stream`, headers: Record<string, string> = {}): Promise<{ status: number, reader: Reader }> {
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers }, (res) => { resolve({ status: res.statusCode!, reader: new Reader(res) }) })
    req.on('error', reject)
    req.end()
  })
}

async function world (t: Test, env: Record<string, string> = {}) {
  const w = await startWorld(t, { TAKEOVER_POLICY_BY_APP: 'strict=reject', ...env })
  const streams: Reader[] = []
  t.teardown(() => { for (const r of streams) r.close() })
  const connect = async (path?: string, headers?: Record<string, string>) => {
    const { status, reader } = await open(w.url, path, headers)
    streams.push(reader)
    return { status, reader }
  }
  return { ...w, connect }
}

t.test('LiveEvents: ids of this run count up; a resume is exact, and one it cannot serve is a gap', async (t) => {
  const live = new LiveEvents(3, 'abcd')
  t.same(live.after('abcd-0'), { events: [], gap: false }, 'nothing yet, nothing missed')
  for (let i = 1; i <= 5; i++) live.publish({ type: 'x', at: i })
  t.same(live.kept().map((e) => e.id), ['abcd-3', 'abcd-4', 'abcd-5'], 'the newest max kept, oldest first')
  t.same(live.after('abcd-3'), { events: live.kept().slice(1), gap: false })
  t.same(live.after('abcd-5').events, [], 'up to date')
  t.same(live.after('abcd-2'), { events: live.kept(), gap: false }, 'the next one is the oldest kept: nothing lost')
  t.same(live.after('abcd-1'), { events: live.kept(), gap: true }, 'abcd-2 is gone')
  t.equal(live.after('ffff-4').gap, true, 'another run\'s id')
  t.equal(live.after('abcd-9').gap, true, 'an id this run never gave out')
  t.equal(live.after('<script>').gap, true)
  t.same(live.newest(2).map((e) => e.seq), [4, 5])
  t.same(live.newest(0), [])
  t.equal(live.last, 5)
  t.match(new LiveEvents(1).run, /^[0-9a-f]{8}$/, 'a random run id by default')
})

t.test('a takeover, a refusal and an operator\'s eviction arrive as events with an id, a type and JSON data', async (t) => {
  const { sim, url, app, connect } = await world(t)
  const { status, reader } = await connect()
  t.equal(status, 200)
  t.equal(reader.res.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(reader.res.headers['cache-control'], 'no-store')
  await reader.until(() => reader.text.startsWith(`retry: 1000\n: srs-hooks events, run ${app.liveEvents.run}\n\n`), 'the preamble')

  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.9' })
  t.ok(a.ok && b.ok)
  const takeover = await reader.until(() => reader.events.find((e) => e.event === 'takeover'), 'the takeover')
  t.match(takeover.id, new RegExp(`^${app.liveEvents.run}-\\d+$`))
  t.match(JSON.parse(takeover.data!), { type: 'takeover', stream: '/live/cam1', incumbent: a.clientId, newcomer: b.clientId, ip: '10.0.0.9', policy: 'takeover', path: 'publish', server: sim.serverId })
  t.type(JSON.parse(takeover.data!).waitMs, 'number')
  // On another vhost, TAKEOVER_POLICY_BY_APP names the app with its vhost.
  await sim.publish({ vhost: 'cams.example', app: 'strict', stream: 'cam3', stalled: true })
  await sim.publish({ vhost: 'cams.example', app: 'strict', stream: 'cam3' })
  const other = await reader.until(() => reader.events.filter((e) => e.event === 'takeover')[1], 'the takeover on the vhost')
  t.match(JSON.parse(other.data!), { stream: 'cams.example/strict/cam3', policy: 'takeover' })

  // The reject policy refuses a second publisher: a refusal with its reason.
  t.ok((await sim.publish({ app: 'strict', stream: 'cam2' })).ok)
  t.notOk((await sim.publish({ app: 'strict', stream: 'cam2' })).ok)
  const refusal = await reader.until(() => reader.events.find((e) => e.event === 'refusal'), 'the refusal')
  t.match(JSON.parse(refusal.data!), { type: 'refusal', stream: '/strict/cam2', reason: 'policy-reject' })

  const kick = await fetch(`${url}${ADMIN}/streams/live/cam1/publisher`, { method: 'DELETE' })
  t.equal(kick.status, 200)
  const eviction = await reader.until(() => reader.events.find((e) => e.event === 'eviction'), 'the eviction')
  t.match(JSON.parse(eviction.data!), { type: 'eviction', clientId: b.clientId, stream: '/live/cam1' })
  const seqs = reader.events.map((e) => Number(e.id!.split('-')[1]))
  t.same(seqs, [...seqs].sort((x, y) => x - y), 'ids count up')
  t.equal(new Set(seqs).size, seqs.length)
})

t.test('SRS\'s API going down and coming back are events', async (t) => {
  const { sim, url, connect } = await world(t)
  const { reader } = await connect()
  // Its first answer names the server.
  t.equal((await fetch(`${url}${ADMIN}/streams`)).status, 200)
  sim.setFault('down')
  // The operator API's call finds SRS down (as a hook or reconciliation would).
  await fetch(`${url}${ADMIN}/streams`)
  const down = await reader.until(() => reader.events.find((e) => e.event === 'server-down'), 'server-down')
  t.match(JSON.parse(down.data!), { type: 'server-down', kind: 'srs', server: sim.serverId, api: sim.apiUrl })
  sim.setFault('none')
  await fetch(`${url}${ADMIN}/streams`)
  await reader.until(() => reader.events.find((e) => e.event === 'server-up'), 'server-up')
})

t.test('Redis going down and coming back are events', async (t) => {
  const redis = await RedisServer.start(t)
  const { connect } = await world(t, { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix() })
  const { reader } = await connect()
  await reader.until(() => reader.events.find((e) => e.event === 'redis-up'), 'connected to Redis')
  await redis.stop()
  const down = await reader.until(() => reader.events.find((e) => e.event === 'redis-down'), 'redis-down', 10_000)
  t.match(JSON.parse(down.data!).msg, /Redis at redis:\/\/127\.0\.0\.1:\d+\/? is unusable/)
  await redis.restart()
  await reader.until(() => reader.events.filter((e) => e.event === 'redis-up').length === 2, 'Redis back', 10_000)
})

t.test('a reader that reconnects with Last-Event-ID gets exactly what it missed, or a gap first when it cannot', async (t) => {
  const { app, url, connect } = await world(t, { EVENTS_MAX: '4' })
  const live = app.liveEvents
  const first = await connect()
  live.publish({ type: 'refusal', at: 1, n: 1 })
  live.publish({ type: 'refusal', at: 2, n: 2 })
  const seen = await first.reader.until(() => first.reader.events.length === 2 && first.reader.events, 'two events')
  first.reader.close()
  await waitFor(() => live.readers === 0, 5000, 'the server to see the reader go')
  live.publish({ type: 'takeover', at: 3, n: 3 })
  live.publish({ type: 'eviction', at: 4, n: 4 })

  const again = await connect(undefined, { 'last-event-id': seen[1]!.id! })
  const missed = await again.reader.until(() => again.reader.events.length === 2 && again.reader.events, 'the missed events')
  t.same(missed.map((e) => JSON.parse(e.data!).n), [3, 4], 'the two it missed, in order, and nothing before')
  t.same(missed.map((e) => e.event), ['takeover', 'eviction'])
  live.publish({ type: 'refusal', at: 5, n: 5 })
  await again.reader.until(() => again.reader.events.length === 3, 'a live one after the replay')

  // EVENTS_MAX is 4: the first event is gone.
  const late = await connect(undefined, { 'last-event-id': `${live.run}-0` })
  const gapped = await late.reader.until(() => late.reader.events.length === 5 && late.reader.events, 'the gap and the kept events')
  t.equal(gapped[0]!.event, 'gap')
  t.same(JSON.parse(gapped[0]!.data!), { last_event_id: `${live.run}-0`, kept: 4 })
  t.equal(gapped[0]!.id, undefined, 'the gap has no id (a reader keeps its last one)')
  t.same(gapped.slice(1).map((e) => JSON.parse(e.data!).n), [2, 3, 4, 5])

  const stranger = await connect(undefined, { 'last-event-id': 'deadbeef-2' })
  const all = await stranger.reader.until(() => stranger.reader.events.length === 5 && stranger.reader.events, 'another run\'s id')
  t.equal(all[0]!.event, 'gap', 'an id of an earlier run of the server: a gap')

  const fresh = await connect(`${ADMIN}/events/stream?last=2`)
  const newest = await fresh.reader.until(() => fresh.reader.events.length === 2 && fresh.reader.events, '?last=2')
  t.same(newest.map((e) => JSON.parse(e.data!).n), [4, 5])
  const plain = await connect()
  await plain.reader.until(() => plain.reader.text.includes('run '), 'the preamble')
  t.same(plain.reader.events, [], 'a new reader without Last-Event-ID or ?last starts from now')
  const bad = await fetch(`${url}${ADMIN}/events/stream?last=-1`)
  t.equal(bad.status, 400)
})

t.test('a reader that does not read is cut off at EVENTS_STREAM_QUEUE_BYTES; the others keep up', async (t) => {
  const { app, url, connect, logs } = await world(t, { EVENTS_STREAM_QUEUE_BYTES: '262144' })
  const live = app.liveEvents
  // A reader that sends its request and never reads its socket.
  const slow = connectNet(Number(new URL(url).port), '127.0.0.1')
  t.teardown(() => slow.destroy())
  slow.write(`GET ${ADMIN}/events/stream HTTP/1.1\r\nhost: x\r\n\r\n`)
  const fast = await connect()
  await fast.reader.until(() => fast.reader.text.includes('run '), 'the preamble')
  await waitFor(() => live.readers === 2, 5000, 'both readers')
  const pad = 'x'.repeat(16_384)
  let n = 0
  // A few events at a time (the fast reader reads between them), until the slow reader's socket
  // buffers are full and its stream's own queue passes the bound.
  await waitFor(() => {
    for (let i = 0; i < 4; i++) live.publish({ type: 'refusal', at: ++n, pad })
    return live.readers === 1
  }, 20_000, 'the slow reader to be cut off')
  const line = await logs.wait((l) => l.msg?.includes('does not keep up') === true)
  t.ok(line.queued > 262_144, `cut off with ${line.queued} bytes queued`)
  await fast.reader.until(() => fast.reader.events.length === n, 'every event to the fast reader', 20_000)
  t.pass(`the fast reader got all ${n} events`)
})

t.test('at most EVENTS_STREAM_CLIENTS streams are open at once', async (t) => {
  const { app, connect } = await world(t, { EVENTS_STREAM_CLIENTS: '2' })
  const a = await connect()
  await connect()
  const third = await connect()
  t.equal(third.status, 503)
  t.equal(third.reader.res.headers['retry-after'], '5')
  const body = await third.reader.until(() => third.reader.ended && JSON.parse(third.reader.text), 'the refusal')
  t.equal(body.code, Codes.EVENTS_STREAM_FULL)
  t.match(body.msg, /2 event streams are open already/)
  a.reader.close()
  await waitFor(() => app.liveEvents.readers === 1, 5000, 'a stream closed')
  t.equal((await connect()).status, 200, 'room again')
})

t.test('an idle stream sends a comment every EVENTS_STREAM_HEARTBEAT_MS', async (t) => {
  const { connect } = await world(t, { EVENTS_STREAM_HEARTBEAT_MS: '20' })
  const { reader } = await connect()
  await reader.until(() => reader.text.split(': keep-alive\n\n').length > 3, 'three heartbeats')
  t.same(reader.events, [], 'comments are not events')
})

t.test('the streams end when the server closes, without holding the shutdown', async (t) => {
  const { app, connect } = await world(t)
  const a = await connect()
  const b = await connect('/video/camera/events/stream')
  t.equal(b.status, 200, 'also under the prefix a gateway leaves')
  await a.reader.until(() => a.reader.text.includes('run '), 'the preamble')
  await b.reader.until(() => b.reader.text.includes('run '), 'the preamble')
  await app.close()
  await a.reader.until(() => a.reader.ended && b.reader.ended, 'both streams ended')
  t.match(a.reader.text, /: the server is shutting down\n\n$/)
})

t.test('the stream has the operator API\'s access rule', async (t) => {
  const { connect } = await world(t, { ADMIN_TOKEN: TOKEN })
  const none = await connect()
  t.equal(none.status, 401)
  const wrong = await connect(undefined, { authorization: 'Bearer nope' })
  t.equal(wrong.status, 401)
  t.equal(JSON.parse(await wrong.reader.until(() => wrong.reader.ended && wrong.reader.text, 'the body')).code, Codes.ADMIN_UNAUTHORIZED)
  t.equal((await connect(undefined, { authorization: `Bearer ${TOKEN}` })).status, 200)
})
