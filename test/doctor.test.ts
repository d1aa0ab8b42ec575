import { createServer, type Server } from 'node:net'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startApp } from './fixtures/app.js'
import { SrsSimulator, type SimOptions } from './fixtures/srs-sim.js'
import { json, StubServer } from './fixtures/stub-server.js'
import { doctor } from '../src/cli/doctor.js'
import { illegalDirectives, parseSrsConf, SRS_ALLOWED } from '../src/operations/srs-conf.js'
import { HOOK_ACTIONS } from '../src/srs/hooks.js'

const example = fileURLToPath(new URL('../srs.conf.example', import.meta.url))

async function rtmpPort (t: Test): Promise<number> {
  const server: Server = createServer((s) => s.destroy())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return (server.address() as { port: number }).port
}

interface Parts { hooks?: string, dvr?: string, httpApi?: string, extra?: string }

function conf (apiPort: number, rtmp: number, hookBase: string, p: Parts = {}): string {
  const hook = (h: string) => `        ${h} ${hookBase}/${h};\n`
  return `# test conf
listen ${rtmp};
daemon off;
${p.httpApi ?? `http_api { enabled on; listen ${apiPort}; }`}
${p.extra ?? ''}
vhost __defaultVhost__ {
    http_hooks {
${p.hooks ?? '        enabled on;\n' + ['on_publish', 'on_unpublish', 'on_close', 'on_dvr'].map(hook).join('')}    }
    ${p.dvr ?? 'dvr { enabled on; dvr_apply all; dvr_plan session; dvr_path ./objs/[app]/[stream].[timestamp].flv; }'}
}
`
}

async function world (t: Test, simOpts: SimOptions = {}, env: Record<string, string> = {}) {
  const sim = await SrsSimulator.start({ version: '6', ...simOpts })
  t.teardown(() => sim.close())
  const h = await startApp(t, { SRS_API_URL: sim.apiUrl, DATA_DIR: join(t.testdir(), 'data'), ...env })
  const rtmp = await rtmpPort(t)
  const apiPort = Number(new URL(sim.apiUrl).port)
  const dir = t.testdir()
  const run = async (parts: Parts | string | null, extraArgs: string[] = [], runEnv: Record<string, string> = {}) => {
    const args = [...extraArgs]
    if (parts !== null) {
      const file = join(dir, `srs-${Math.random().toString(36).slice(2)}.conf`)
      await writeFile(file, typeof parts === 'string' ? parts : conf(apiPort, rtmp, h.hookBase, parts))
      args.unshift('--srs-conf', file)
    }
    const out: string[] = []
    const err: string[] = []
    const code = await doctor(args, { out: (l) => out.push(l), err: (l) => err.push(l), env: { SRS_API_URL: sim.apiUrl, SRS_API_TIMEOUT_MS: '500', ...runEnv } })
    return { code, out: out.join('\n'), err: err.join('\n') }
  }
  return { sim, ...h, rtmp, apiPort, run }
}

t.test('doctor against the simulator and a running srs-hooks: every check OK, exit 0, progress as it goes', async (t) => {
  const { run, sim, rtmp } = await world(t)
  const r = await run({})
  t.equal(r.code, 0, r.out)
  t.match(r.out, /^\.\.\. {3}reading .*\.conf/)
  t.match(r.out, /OK {4}.*parses, with only directives SRS accepts/)
  t.match(r.out, /OK {4}http_api is enabled/)
  t.match(r.out, /OK {4}vhost __defaultVhost__ calls on_publish/)
  t.match(r.out, /OK {4}vhost __defaultVhost__ calls on_unpublish/)
  t.match(r.out, /OK {4}vhost __defaultVhost__ records and reports each file with on_dvr/)
  t.match(r.out, new RegExp(`OK {4}SRS's API answers at ${sim.apiUrl}: SRS 6\\.0\\.184 \\(server ${sim.serverId}\\)`))
  t.match(r.out, new RegExp(`OK {4}SRS 6\\.0\\.184 at ${sim.apiUrl}: takeovers happen inside on_publish \\(TAKEOVER_AT=auto\\)`))
  t.match(r.out, new RegExp(`OK {4}SRS's RTMP port 127\\.0\\.0\\.1:${rtmp} is open`))
  t.match(r.out, /OK {4}srs-hooks answers at .*callback\/on_publish: a test on_publish got code 0/)
  t.match(r.out, /\n9 OK, 0 warnings, 0 failed$/)
  t.notMatch(r.out, /FAIL/)
})

t.test('doctor warns about a misspelt setting, naming the one it resembles, even with a bad configuration', async (t) => {
  const { run } = await world(t)
  const r = await run({}, [], { ADMIN_TOKN: 'x'.repeat(20) })
  t.equal(r.code, 0, 'a warning is not a failure')
  t.match(r.out, /^WARN {2}environment variable ADMIN_TOKN is not a setting of srs-hooks and is ignored: did you mean ADMIN_TOKEN\? .*\n {6}fix: rename ADMIN_TOKN to ADMIN_TOKEN, or add ADMIN_TOKN to SRS_HOOKS_ENV_IGNORE if it belongs to something else/)
  t.match(r.out, /\n9 OK, 1 warnings, 0 failed$/)
  const bad = await run(null, [], { FAIL_MOD: 'closed', LOG_LEVEL: 'verbose' })
  t.equal(bad.code, 2)
  t.match(bad.out, /^WARN {2}environment variable FAIL_MOD .* did you mean FAIL_MODE\?/)
  t.equal(bad.err, 'srs-hooks doctor: invalid configuration: LOG_LEVEL="verbose": must be one of fatal, error, warn, info, debug, trace, silent')
  // A rule that combines settings: doctor refuses what serve refuses.
  const signed = await run(null, [], { PUBLISH_AUTH: 'signed' })
  t.equal(signed.code, 2)
  t.equal(signed.err, 'srs-hooks doctor: invalid configuration: PUBLISH_SECRET must be set when PUBLISH_AUTH=signed')
})

t.test('doctor with SRS\'s API down: that check fails with a fix, exit 1', async (t) => {
  const { run, sim } = await world(t)
  sim.setFault('down')
  const r = await run({})
  t.equal(r.code, 1)
  t.match(r.out, /FAIL {2}SRS's API at .*unreachable.*\n {6}fix: start SRS, enable `http_api/)
})

t.test('doctor with a conf that has no on_publish: that check fails with a fix, exit 1', async (t) => {
  const { run, hookBase } = await world(t)
  const r = await run({ hooks: `        enabled on;\n        on_unpublish ${hookBase}/on_unpublish;\n        on_dvr ${hookBase}/on_dvr;\n` })
  t.equal(r.code, 1)
  t.match(r.out, /FAIL {2}vhost __defaultVhost__ has no on_publish hook\n {6}fix: add `on_publish http:\/\/<srs-hooks>:6000\/admin-api\/video\/camera\/callback\/on_publish;`/)
  t.match(r.out, /default\)/, 'without an on_publish URL it probes the local default')
})

t.test('doctor with hooks disabled: that check fails with a fix, exit 1', async (t) => {
  const { run } = await world(t)
  const r = await run({ hooks: '        enabled off;\n' })
  t.equal(r.code, 1)
  t.match(r.out, /FAIL {2}http_hooks is not enabled in vhost __defaultVhost__: SRS calls no hook\n {6}fix: inside `vhost __defaultVhost__ \{ \}` add `http_hooks \{ enabled on;/)
})

t.test('doctor finds what else is wrong in a conf', async (t) => {
  const { run, hookBase, apiPort } = await world(t)
  const noDvrHook = await run({ hooks: `        enabled on;\n        on_publish ${hookBase}/on_publish;\n        on_unpublish ${hookBase}/on_unpublish;\n` })
  t.match(noDvrHook.out, /FAIL {2}vhost __defaultVhost__ records \(dvr enabled\) but has no on_dvr hook/)
  const noDvr = await run({ dvr: '' })
  t.equal(noDvr.code, 0, 'a warning is not a failure')
  t.match(noDvr.out, /WARN {2}vhost __defaultVhost__ has an on_dvr hook but dvr is not enabled/)
  const quiet = await run({ dvr: '', hooks: `        enabled on;\n        on_publish ${hookBase}/on_publish;\n        on_unpublish ${hookBase}/on_unpublish;\n` })
  t.match(quiet.out, /OK {4}vhost __defaultVhost__ does not record/)
  const wrong = await run({ hooks: `        enabled on;\n        on_publish ${hookBase}/on_play;\n        on_unpublish http://<gateway>:48080/x/on_unpublish;\n        on_dvr ${hookBase}/on_dvr;\n` })
  t.match(wrong.out, /FAIL {2}on_publish points at .*on_play, not at srs-hooks's on_publish callback/)
  t.match(wrong.out, /FAIL {2}on_unpublish URL http:\/\/<gateway>.* is not a valid URL\n {6}fix: replace placeholders/)
  t.match(wrong.out, /FAIL {2}a test on_publish to .*on_play got HTTP 400, code 4002/)
  const illegal = await run({ extra: 'rtmp_relay on;\nhttp_api_typo { }', httpApi: `http_api { enabled on; listen ${apiPort}; tls on; }` })
  t.match(illegal.out, /FAIL {2}.*directives SRS refuses: http_api\.tls \(line 4\), rtmp_relay \(line 5\), http_api_typo \(line 6\)/)
  const noApi = await run({ httpApi: '' })
  t.match(noApi.out, /FAIL {2}http_api is not enabled/)
  const otherPort = await run({ httpApi: 'http_api { enabled on; listen 0.0.0.0:1986; }' })
  t.match(otherPort.out, /WARN {2}http_api listens on 0\.0\.0\.0:1986 but SRS_API_URL is/)
  const broken = await run('vhost x {\n  http_hooks { enabled on;\n')
  t.match(broken.out, /FAIL {2}.*line 3: unexpected end of file, expecting "}"/)
  const noUnpublish = await run({ hooks: `        enabled on;\n        on_publish ${hookBase}/on_publish;\n` })
  t.match(noUnpublish.out, /FAIL {2}vhost __defaultVhost__ has no on_unpublish hook\n {6}fix: add `on_unpublish .*it tells srs-hooks the moment SRS released a publisher/)
  const srs7 = await run('rtmp { listen 1; }\nhttp_api { enabled on; }\nvhost cams.example { dvr { enabled off; } }\n', [], { SRS_API_URL: 'http://127.0.0.1' })
  t.match(srs7.out, /WARN {2}http_api listens on 1985 but SRS_API_URL is http:\/\/127\.0\.0\.1\n/, 'default ports on both sides')
  t.match(srs7.out, /SRS's RTMP port 127\.0\.0\.1:1: .*ECONNREFUSED/, 'SRS 7\'s rtmp { listen }')
  t.match(srs7.out, /FAIL {2}http_hooks is not enabled in vhost cams\.example/, 'the only vhost, without http_hooks')
  const bare = await run('daemon off;\n')
  t.match(bare.out, /FAIL {2}http_hooks is not enabled in vhost __defaultVhost__/, 'no vhost at all')
  t.match(bare.out, /SRS's RTMP port 127\.0\.0\.1:1935/, 'the default RTMP port')
  const missing = await run(null, ['--srs-conf', '/nonexistent/srs.conf'])
  t.match(missing.out, /FAIL {2}\/nonexistent\/srs\.conf: ENOENT/)
})

t.test('doctor reports an srs-hooks it cannot reach, one that refuses, and SRS\'s API answering wrongly', async (t) => {
  const { run, sim, hookBase } = await world(t, {}, { FAIL_MODE: 'closed', SRS_API_RETRIES: '0' })
  const unreachable = await run(null, ['--hook-url', 'http://127.0.0.1:1/admin-api/video/camera/callback/on_publish?token=s3cret'])
  t.match(unreachable.out, /FAIL {2}cannot reach http:\/\/127\.0\.0\.1:1\/.*\?token=\*\*\* from here/)
  t.notMatch(unreachable.out, /s3cret/, 'the token is not printed')
  const notOurs = await run(null, ['--hook-url', hookBase.replace('/callback', '/nothing') + '/on_publish'])
  t.match(notOurs.out, /got HTTP 404.*\n {6}fix: the path is not an srs-hooks callback/)
  sim.setFault('garbage')
  const refused = await run(null, ['--hook-url', `${hookBase}/on_publish`])
  t.match(refused.out, /FAIL {2}a test on_publish .* got HTTP 200, code 1002: .*\n {6}fix: read msg above/)
  t.match(refused.out, /FAIL {2}SRS's API at .*unexpected answer.*\n {6}fix: SRS_API_URL must be SRS's http_api/)
  const deny = await StubServer.start((_req, res) => json(res, { code: 4101, msg: 'no token' }, 401))
  t.teardown(() => deny.close())
  const denied = await run(null, ['--hook-url', `${deny.url}/cb/on_publish`])
  t.match(denied.out, /got HTTP 401.*\n {6}fix: the hook URL needs the right \?token=/)
  deny.handler = (_req, res) => { res.writeHead(502); res.end('Bad Gateway from the gateway') }
  const gateway = await run(null, ['--hook-url', `${deny.url}/cb/on_publish`])
  t.match(gateway.out, /got HTTP 502, code undefined: Bad Gateway from the gateway/, 'a body that is not JSON is shown as text')
})

t.test('doctor: SRS\'s API with auth, the RTMP port closed, and bad usage', async (t) => {
  const { run } = await world(t, { auth: { username: 'admin', password: 'pw' } })
  const r = await run(null, [], { SRS_API_USERNAME: 'admin', SRS_API_PASSWORD: 'wrong' })
  t.match(r.out, /FAIL {2}SRS's API .*401.*\n {6}fix: set SRS_API_USERNAME\/SRS_API_PASSWORD/)
  t.match(r.out, /FAIL {2}SRS's RTMP port 127\.0\.0\.1:1935: connect ECONNREFUSED/)
  t.equal(r.code, 1)
  const bad = await run(null, ['--frobnicate'])
  t.same([bad.code, bad.out], [2, ''])
  t.match(bad.err, /unexpected argument "--frobnicate"\nusage: srs-hooks doctor/)
  const env = await run(null, [], { SRS_API_URL: 'ftp://x' })
  t.equal(env.code, 2)
  t.match(env.err, /SRS_API_URL/)
})

t.test('srs.conf parsing follows SRS\'s own reader', async (t) => {
  t.match(parseSrsConf('a "quoted word" \'single\'; # comment\nb { c d#e; }\n'), [
    { name: 'a', args: ['quoted word', 'single'], line: 1, children: [] },
    { name: 'b', args: [], line: 2, children: [{ name: 'c', args: ['d#e'], line: 2 }] }
  ])
  for (const [text, error] of [
    ['a "open;', /line 1: unterminated quoted word/],
    ['a "x"y;', /unexpected "y" after a quoted word/],
    ['}', /line 1: unexpected "}"/],
    ['a }', /unexpected "}"/],
    [';', /unexpected ";"/],
    ['a b', /unexpected end of file, expecting ";" or "}"/]
  ] as const) {
    t.throws(() => parseSrsConf(text), error, text)
  }
  t.same(illegalDirectives(parseSrsConf('vhost v { rtc { anything; } }')), [], 'blocks outside our lists are not checked')
})

t.test('srs.conf.example parses as SRS reads it, uses only directives SRS accepts, and its hooks map to our routes', async (t) => {
  const text = await readFile(example, 'utf8')
  const root = parseSrsConf(text)
  t.same(illegalDirectives(root), [], `every directive is in SRS's allowed lists (${Object.keys(SRS_ALLOWED).join(', ')})`)
  const { app } = await startApp(t, { DATA_DIR: join(t.testdir(), 'data') })
  const vhost = root.find((d) => d.name === 'vhost')!
  const hooks = vhost.children.find((d) => d.name === 'http_hooks')!
  t.same(hooks.children.find((d) => d.name === 'enabled')?.args, ['on'])
  const urls = hooks.children.filter((d) => d.name !== 'enabled')
  t.same(urls.map((d) => d.name).sort(), [...HOOK_ACTIONS].sort(), 'every hook srs-hooks answers is configured')
  for (const d of urls) {
    t.equal(d.args.length, 1)
    const url = new URL(d.args[0]!.replace('<gateway>', '192.0.2.1'))
    t.equal(url.port, '48080', `${d.name}: through the gateway`)
    t.equal(url.pathname, `/admin-api/video/camera/callback/${d.name}`, `${d.name}: its own callback`)
    t.ok(url.searchParams.has('token'), `${d.name}: the ?token= form`)
    t.ok(app.hasRoute({ method: 'POST', url: url.pathname }), `${d.name}: a route of ours`)
    t.ok(app.hasRoute({ method: 'POST', url: url.pathname.replace('/admin-api', '') }), `${d.name}: also after the gateway strips /admin-api`)
  }
  const dvr = vhost.children.find((d) => d.name === 'dvr')!
  t.same(dvr.children.find((d) => d.name === 'enabled')?.args, ['on'], 'the DVR block records, so on_dvr fires')
  t.match(dvr.children.find((d) => d.name === 'dvr_path')?.args[0], /\[timestamp\]/, 'file names carry the start time')
  t.match(text, /\n\s+# on_publish\s+http:\/\/127\.0\.0\.1:6000\/admin-api\/video\/camera\/callback\/on_publish/, 'the direct form, commented')
  t.match(text, /\n\s+# auth \{ enabled on; username \S+; password \S+; \}/, 'the API auth block, commented')
  for (const block of root.filter((d) => d.children.length > 0).concat(vhost.children.filter((d) => d.children.length > 0))) {
    const lines = text.split('\n')
    t.match(lines[block.line - 2], /^\s*#/, `${block.name} has a one-line comment above it`)
  }
})
