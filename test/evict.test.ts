import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startApp } from './fixtures/app.js'
import { SrsSimulator, type SimOptions } from './fixtures/srs-sim.js'
import { evict } from '../src/cli/evict.js'

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

async function world (t: Test, simOpts: SimOptions = {}) {
  const sim = await SrsSimulator.start({ version: '6', ...simOpts })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, DATA_DIR: join(t.testdir(), 'data') })
  sim.setHookBase(h.hookBase)
  const run = async (args: string[], env: Record<string, string> = {}) => {
    const out: string[] = []
    const err: string[] = []
    const code = await evict(args, { out: (l) => out.push(l), err: (l) => err.push(l), env: { SRS_API_URL: sim.apiUrl, SRS_API_RETRIES: '0', ...env } })
    return { code, out: out.join('\n'), err: err.join('\n') }
  }
  return { sim, ...h, run }
}

t.test('evict clears a stalled publisher: found in SRS, kicked, released, exit 0, and the pusher then publishes', async (t) => {
  const { sim, run } = await world(t, { releaseDelayMs: 1300 })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true, ip: '10.0.0.5' })
  const r = await run(['live/cam1'])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^looking for the publisher of \/live\/cam1 in SRS at http/)
  t.match(r.out, new RegExp(`found publisher ${a.clientId} \\(SRS stream vid-\\w+\\); kicking it and waiting up to 3000 ms`))
  t.match(r.out, /still waiting for SRS to release \/live\/cam1 \(1\.\d s\)/, 'says it is still waiting')
  t.match(r.out, new RegExp(`evicted ${a.clientId}: SRS released /live/cam1 after \\d+ ms \\(seen via (hook|api)\\); the stream is free`))
  t.same(sim.kicks, [a.clientId])
  t.equal(sim.activePublisher('live', 'cam1'), undefined, 'released before exit 0')
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  t.ok(b.ok, 'the pusher publishes at once')
})

t.test('evict reports clearly when there is nothing to evict, when SRS\'s API is down, and when the release never comes', async (t) => {
  const { sim, run } = await world(t, { releaseDelayMs: 10_000 })
  const nothing = await run(['live/nobody'])
  t.equal(nothing.code, 3)
  t.match(nothing.err, /^nothing to evict: SRS lists no active publisher of \/live\/nobody$/)
  t.same(sim.kicks, [])
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const slow = await run(['__defaultVhost__/live/cam1'], { TAKEOVER_TIMEOUT_MS: '300' })
  t.equal(slow.code, 1)
  t.match(slow.err, /kicked \w+ but SRS did not release \/live\/cam1 within 300 ms/)
  sim.setFault('down')
  const down = await run(['live/cam1'])
  t.equal(down.code, 1)
  t.match(down.err, /cannot evict the publisher of \/live\/cam1: SRS's API failed \(unreachable\)/)
  sim.setFault('none')
  await sim.publish({ app: 'live', stream: 'cam3', stalled: true })
  const errs: string[] = []
  const cut = await evict(['live/cam3'], {
    out: (l) => { if (l.startsWith('found')) sim.setFault('down') }, // SRS goes away between the lookup and the kick
    err: (l) => errs.push(l),
    env: { SRS_API_URL: sim.apiUrl, SRS_API_RETRIES: '0' }
  })
  t.equal(cut, 1)
  t.match(errs.join(''), /SRS's API failed \(unreachable\)/)
})

t.test('evict on SRS 4 (no stream urls), on another vhost, and a publisher that leaves before the kick', async (t) => {
  const { sim, run } = await world(t, { version: '4' })
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const r = await run(['/live/cam1'])
  t.equal(r.code, 0, r.err)
  t.same(sim.kicks, [a.clientId])
  const v = await run(['other.example/live/cam1'])
  t.equal(v.code, 3, 'SRS 4 lists no vhost names: only the default vhost matches')

  const sim6 = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim6.close())
  const p = await sim6.publish({ app: 'live', stream: 'cam2', vhost: 'other.example' })
  const err: string[] = []
  const gone = await evict(['other.example/live/cam2'], {
    // The publisher leaves by itself between the lookup and the kick.
    out: (l) => { if (l.startsWith('found')) void sim6.stop(p.clientId) },
    err: (l) => err.push(l),
    env: { SRS_API_URL: sim6.apiUrl }
  })
  t.equal(gone, 3)
  t.match(err.join(''), /nothing to evict: the publisher of other\.example\/live\/cam2 left before the kick/)
  t.same(sim6.kicks, [])
})

t.test('evict: bad usage and bad configuration exit 2 with the reason', async (t) => {
  const io = () => { const err: string[] = []; return { err, io: { out: () => {}, err: (l: string) => err.push(l), env: {} } } }
  for (const args of [[], ['cam1'], ['a/b/c/d'], ['live/'], ['live/cam1', 'extra']]) {
    const { err, io: i } = io()
    t.equal(await evict(args, i), 2, JSON.stringify(args))
    t.match(err.join('\n'), /name one stream as app\/stream or vhost\/app\/stream\nusage: srs-hooks evict/)
  }
  const { err, io: i } = io()
  i.env = { TAKEOVER_TIMEOUT_MS: 'soon' }
  t.equal(await evict(['live/cam1'], i), 2)
  t.match(err.join(''), /TAKEOVER_TIMEOUT_MS/)
  const none = io()
  none.io.env = { SRS_API_URL: 'none' }
  t.equal(await evict(['live/cam1'], none.io), 2, 'no server configured: a configuration error, not "nothing to evict"')
  t.match(none.err.join(''), /^srs-hooks evict: no server to evict from: SRS_API_URL is none and ZLM_API_URL is unset/)
})

t.test('the srs-hooks bin lists doctor and evict and runs evict as a process', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const run = async (args: string[]) => await new Promise<{ code: number | null, out: string, err: string }>((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, entry, ...args], { env: { ...process.env, SRS_API_URL: sim.apiUrl }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { err += c.toString() })
    child.on('exit', (code) => resolve({ code, out, err }))
  })
  const help = await run(['help'])
  t.match(help.out, /doctor\s+diagnose why publishing fails/)
  t.match(help.out, /evict\s+kick the publisher of a stream/)
  t.match((await run(['evict', '--help'])).out, /usage: srs-hooks evict \[--server <id or API URL>\] \[vhost\/\]app\/stream/)
  const r = await run(['evict', 'live/none'])
  t.equal(r.code, 3)
  t.match(r.err, /nothing to evict/)
})
