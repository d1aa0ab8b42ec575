import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { run } from '../src/cli/sign.js'
import { startApp } from './fixtures/app.js'
import { SrsSimulator } from './fixtures/srs-sim.js'

const SECRET = 'publish-secret-0123456789abcdef'
const PLAY = 'play-secret-0123456789abcdef'

function io (env: Record<string, string> = { PUBLISH_SECRET: SECRET, PLAY_SECRET: PLAY }) {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), env } }
}

t.test('the CLI\'s signed URL is accepted by the server, for publish and for play', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, PUBLISH_AUTH: 'signed', PUBLISH_SECRET: SECRET, PLAY_AUTH: 'signed', PLAY_SECRET: PLAY })
  sim.setHookBase(h.hookBase)
  const p = io()
  t.equal(await run(['live/cam1', '--ttl', '3600', '--base', 'rtmp://media.example.com:1935/'], p.io), 0)
  t.equal(p.out.length, 2)
  t.match(p.out[0], /^\?expires=\d+&sign=[0-9a-f]{64}$/)
  t.equal(p.out[1], `rtmp://media.example.com:1935/live/cam1${p.out[0]!}`)
  t.ok((await sim.publish({ app: 'live', stream: 'cam1', param: p.out[0] })).ok, 'publishes')
  const play = io()
  t.equal(await run(['live/cam1', '--play'], play.io), 0)
  t.equal(play.out.length, 1, 'no URL without --base')
  t.ok((await sim.play({ app: 'live', stream: 'cam1', param: play.out[0] })).ok, 'plays')
  const rogue = await sim.publish({ app: 'live', stream: 'cam1', param: play.out[0] })
  t.equal(rogue.ok, false, 'a play URL does not publish')
})

t.test('the signature is the documented HMAC, so the openssl one-liner gives the same', async (t) => {
  const p = io()
  t.equal(await run(['live/cam1', '--expires', '1700003600'], p.io), 0)
  const hmac = createHmac('sha256', SECRET).update('live/cam1:1700003600').digest('hex')
  t.equal(p.out[0], `?expires=1700003600&sign=${hmac}`)
})

t.test('a stream of another vhost is signed with its vhost, and its URL names the vhost', async (t) => {
  const p = io()
  await run(['studio.example/live/cam1', '--expires', '1700003600', '--base', 'rtmp://srs:1935'], p.io)
  const hmac = createHmac('sha256', SECRET).update('studio.example/live/cam1:1700003600').digest('hex')
  t.same(p.out, [`?expires=1700003600&sign=${hmac}`, `rtmp://srs:1935/live/cam1?expires=1700003600&sign=${hmac}&vhost=studio.example`])
})

t.test('--ttl counts from now', async (t) => {
  const p = io()
  await run(['live/cam1', '--ttl', '60'], p.io, () => 1_700_000_000_500)
  t.match(p.out[0], /^\?expires=1700000060&/)
})

t.test('bad usage exits 2 with a reason and the usage, printing nothing to stdout', async (t) => {
  const cases: Array<[string[], Record<string, string> | undefined, RegExp]> = [
    [[], undefined, /expected one \[<vhost>\/\]<app>\/<stream>/],
    [['cam1'], undefined, /expected one/],
    [['live/cam1', 'extra'], undefined, /expected one/],
    [['live/cam1?x=1'], undefined, /expected one/],
    [['live/cam1', '--ttl', '0'], undefined, /--ttl takes a positive/],
    [['live/cam1', '--ttl', 'soon'], undefined, /--ttl/],
    [['live/cam1', '--expires', 'tomorrow'], undefined, /--expires takes unix seconds/],
    [['live/cam1', '--expires', '1700000000', '--ttl', '5'], undefined, /not with --ttl/],
    [['live/cam1', '--bogus'], undefined, /Unknown option/],
    [['live/cam1'], {}, /PUBLISH_SECRET must be set/],
    [['live/cam1', '--play'], { PUBLISH_SECRET: SECRET }, /PLAY_SECRET must be set/]
  ]
  for (const [args, env, msg] of cases) {
    const p = io(env)
    t.equal(await run(args, p.io), 2, args.join(' '))
    t.match(p.err.join('\n'), msg)
    t.match(p.err.join('\n'), /usage: srs-hooks sign/)
    t.same(p.out, [])
  }
})

t.test('an expiry already past is signed as asked, with a warning that the server refuses it', async (t) => {
  const now = () => 1_700_000_100_000
  const past = io()
  t.equal(await run(['live/cam1', '--expires', '1700000000'], past.io, now), 0)
  t.match(past.out, [/^\?expires=1700000000&sign=[0-9a-f]{64}$/])
  t.same(past.err, ['srs-hooks sign: warning: this URL expired 100 s ago (--expires 1700000000); the server refuses it'])
  const future = io()
  t.equal(await run(['live/cam1', '--expires', '1700000101'], future.io, now), 0)
  t.same(future.err, [], 'no warning for an expiry to come')
})

t.test('`srs-hooks sign` runs from the entry point', async (t) => {
  const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, entry, 'sign', 'live/cam1', '--expires', '1700003600'], {
    env: { ...process.env, PUBLISH_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 0)
  t.equal(out.trim(), `?expires=1700003600&sign=${createHmac('sha256', SECRET).update('live/cam1:1700003600').digest('hex')}`)
})
