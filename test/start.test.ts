import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { backgroundStart } from '../src/http/start.js'
import { waitFor } from './fixtures/app.js'

/** A Fastify app with backgroundStart and one route; `ran` records which work ran, in order. */
async function app (t: Test, graceMs: number) {
  const f = Fastify()
  backgroundStart(f, graceMs)
  let answered = 0
  f.get('/', async () => { answered++; return { answered } })
  t.teardown(() => f.close())
  const ran: string[] = []
  return { f, ran, answeredCount: () => answered }
}

t.test('background work waits for the first request to be answered, then runs in the order given; later work runs at once', async (t) => {
  const { f, ran } = await app(t, 60_000)
  f.afterStart(() => ran.push('probe'))
  f.afterStart(() => ran.push('reconcile'))
  const url = await f.listen({ host: '127.0.0.1', port: 0 })
  t.same(ran, [], 'nothing before a request, however long (the grace here is a minute)')
  const res = await fetch(url)
  t.same(await res.json(), { answered: 1 })
  await waitFor(() => ran.length === 2, 5000, 'the background work')
  t.same(ran, ['probe', 'reconcile'])
  f.afterStart(() => ran.push('late'))
  t.same(ran, ['probe', 'reconcile', 'late'], 'work asked for once started runs at once')
})

t.test('without a request, background work starts once the grace after listening has passed', async (t) => {
  const { f, ran } = await app(t, 20)
  f.afterStart(() => ran.push('probe'))
  const started = performance.now()
  const url = await f.listen({ host: '127.0.0.1', port: 0 })
  await waitFor(() => ran.length === 1, 5000, 'the background work')
  t.ok(performance.now() - started >= 19, 'not before the grace')
  // The first request, answered after the start, does not start it again.
  t.same(await (await fetch(url)).json(), { answered: 1 })
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(ran, ['probe'], 'run once')
})

/** Runs `during` with the timers of `ms` that it sets caught: each one's callback, to run by hand. */
async function catchingTimers (ms: number, during: () => Promise<unknown>): Promise<Array<() => void>> {
  const caught: Array<() => void> = []
  const real = globalThis.setTimeout
  globalThis.setTimeout = ((fn: () => void, delay?: number) => {
    if (delay === ms) caught.push(fn)
    return real(fn, delay)
  }) as typeof setTimeout
  try {
    await during()
  } finally {
    globalThis.setTimeout = real
  }
  return caught
}

t.test('an app that closes before its start never starts its background work, nor work asked for later, even once its grace has passed', async (t) => {
  const grace = 123_456
  const { f, ran } = await app(t, grace)
  f.afterStart(() => ran.push('probe'))
  const graceTimers = await catchingTimers(grace, async () => await f.listen({ host: '127.0.0.1', port: 0 }))
  t.equal(graceTimers.length, 1, 'listening set the grace\'s timer')
  await f.close()
  f.afterStart(() => ran.push('late'))
  // The grace passes after the close (its timer run by hand: a closed app has nothing left to wait for).
  graceTimers[0]!()
  t.same(ran, [])
})

t.test('an app never listening (inject) never starts its background work', async (t) => {
  const { f, ran, answeredCount } = await app(t, 1)
  f.afterStart(() => ran.push('probe'))
  const r = await f.inject({ method: 'GET', url: '/' })
  t.equal(r.statusCode, 200)
  t.equal(answeredCount(), 1)
  await f.close()
  t.same(ran, [])
})

t.test('closing after the start changes nothing that ran', async (t) => {
  const { f, ran } = await app(t, 1)
  f.afterStart(() => ran.push('probe'))
  await f.listen({ host: '127.0.0.1', port: 0 })
  await waitFor(() => ran.length === 1, 5000, 'the background work')
  await f.close()
  t.same(ran, ['probe'])
})
