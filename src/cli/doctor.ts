import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { randomBytes } from 'node:crypto'
import type { Command, Io } from './command.js'
import { ConfigSchema, loadConfig, type Config } from '../config.js'
import { ENV_IGNORE, lookalikeLine, lookalikes } from '../env-check.js'
import type { SrsApiError } from '../errors.js'
import { find, illegalDirectives, isOn, parseSrsConf, type Directive } from '../operations/srs-conf.js'
import { request } from 'undici'
import { checkForward } from '../forward/doctor.js'
import { checkDatabase } from '../recordings/doctor.js'
import { SrsApi } from '../srs/api.js'
import { HOOK_ACTIONS } from '../srs/hooks.js'
import { takesToken } from '../srs/servers.js'
import { checkZlm } from '../zlm/doctor.js'

/**
 * `srs-hooks doctor [--srs-conf FILE] [--hook-url URL]`: what an operator runs when publishing
 * fails. Each check prints OK, or FAIL with the fix; WARN does not fail. Exit code 1 when a check
 * failed, 2 on bad usage. With DATABASE_URL, the recordings database too.
 */

export const usage = 'srs-hooks doctor [--srs-conf FILE] [--hook-url URL]   (SRS_API_URL, ZLM_API_URL, ZLM_SECRET, PORT, TAKEOVER_AT... from the environment)'

const PROBE_TIMEOUT_MS = 10_000
const TCP_TIMEOUT_MS = 2000

interface Report { ok: number, warn: number, fail: number }

export async function doctor (args: string[], io: Io): Promise<number> {
  let confFile: string | undefined
  let hookUrl: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if ((a === '--srs-conf' || a === '--hook-url') && args[i + 1] !== undefined) {
      if (a === '--srs-conf') confFile = args[++i]
      else hookUrl = args[++i]
    } else {
      io.err(`srs-hooks doctor: unexpected argument ${JSON.stringify(a)}\nusage: ${usage}`)
      return 2
    }
  }
  const report: Report = { ok: 0, warn: 0, fail: 0 }
  const ok = (what: string): void => { report.ok++; io.out(`OK    ${what}`) }
  const warn = (what: string, fix: string): void => { report.warn++; io.out(`WARN  ${what}\n      fix: ${fix}`) }
  const fail = (what: string, fix: string): void => { report.fail++; io.out(`FAIL  ${what}\n      fix: ${fix}`) }
  const step = (what: string): void => { io.out(`...   ${what}`) }

  // 0. Settings misspelt, which the server would ignore: said even when the configuration is bad.
  for (const l of lookalikes(io.env, Object.keys(ConfigSchema.properties))) {
    warn(lookalikeLine(l), `rename ${l.name} to ${l.like}, or add ${l.name} to ${ENV_IGNORE} if it belongs to something else`)
  }
  let config: Config
  try {
    config = loadConfig(io.env)
  } catch (e) {
    io.err(`srs-hooks doctor: ${(e as Error).message}`)
    return 2
  }

  // 1. The conf SRS runs with.
  let rtmpPort = 1935
  if (confFile !== undefined) {
    step(`reading ${confFile}`)
    const conf = await checkConf(confFile, { ok, warn, fail }, config)
    if (conf !== undefined) {
      rtmpPort = conf.rtmpPort
      hookUrl ??= conf.onPublish
    }
  }

  // 2. Each SRS's HTTP API, its version, and where takeovers happen with it; 3. its RTMP port.
  for (const { url, auth } of config.srsApis) {
    const api = new SrsApi({ url, auth, timeoutMs: config.SRS_API_TIMEOUT_MS, retries: 0, pageSize: config.SRS_API_PAGE_SIZE })
    step(`calling SRS's HTTP API at ${url}`)
    try {
      const v = await api.versions()
      const token = takesToken(v)
      ok(`SRS's API answers at ${url}: SRS ${v.version} (server ${String(api.status.server)})`)
      const at = config.TAKEOVER_AT === 'auto' ? (token ? 'connect' : 'publish') : config.TAKEOVER_AT
      const how = at === 'connect'
        ? 'takeovers happen inside on_connect, where SRS takes its publish token; first-attempt takeover needs publish credentials (PUBLISH_AUTH=keys|signed), else the encoder\'s retry gets in'
        : 'takeovers happen inside on_publish'
      if (config.TAKEOVER_AT !== 'auto' && (at === 'connect') !== token) {
        warn(`SRS ${v.version} at ${url}: TAKEOVER_AT=${config.TAKEOVER_AT} but this SRS ${token ? 'takes a publish token before on_publish (>= 7.0.62)' : 'has no publish token (< 7.0.62)'}; ${how}`, 'unset TAKEOVER_AT (auto) to follow the version')
      } else {
        ok(`SRS ${v.version} at ${url}: ${how}${config.TAKEOVER_AT === 'auto' ? ' (TAKEOVER_AT=auto)' : ''}`)
      }
    } catch (err) {
      const e = err as SrsApiError
      fail(`SRS's API at ${url}: ${e.message}`, apiFix(e.kind))
    } finally {
      await api.close()
    }
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '')
    step(`connecting to SRS's RTMP port ${host}:${rtmpPort}`)
    const tcp = await tcpOpen(host, rtmpPort)
    if (tcp === null) ok(`SRS's RTMP port ${host}:${rtmpPort} is open`)
    else fail(`SRS's RTMP port ${host}:${rtmpPort}: ${tcp}`, `start SRS, or check the conf's \`listen\` (rtmp.listen in SRS 7) and that the port is published (docker -p ${rtmpPort}:${rtmpPort})`)
  }

  // 4. This server, at the URL SRS will call (when there is an SRS).
  if (config.srsApis.length > 0 || hookUrl !== undefined) {
    const url = hookUrl ?? `http://127.0.0.1:${config.PORT}/admin-api/video/camera/callback/on_publish`
    step(`sending a test on_publish to ${redactUrl(url)}${hookUrl === undefined ? ' (no --srs-conf or --hook-url: the local default)' : ''}`)
    await probeHook(url, { ok, warn, fail })
  }

  // 5. Each ZLMediaKit: its API, its [hook] section, this server at its hook URL.
  await checkZlm(config, { ok, warn, fail, step })

  // 6. The recordings database, when there is one.
  if (config.DATABASE_URL !== undefined) await checkDatabase(config, { ok, warn, fail, step })

  // 7. The platform's callback, when hooks are forwarded to it.
  await checkForward(config, { ok, warn, fail, step })

  io.out(`\n${report.ok} OK, ${report.warn} warnings, ${report.fail} failed`)
  return report.fail > 0 ? 1 : 0
}

type Say = Pick<{ ok: (w: string) => void, warn: (w: string, f: string) => void, fail: (w: string, f: string) => void }, 'ok' | 'warn' | 'fail'>

async function checkConf (file: string, say: Say, config: Config): Promise<{ rtmpPort: number, onPublish: string | undefined } | undefined> {
  let root: Directive[]
  try {
    root = parseSrsConf(await readFile(file, 'utf8'))
  } catch (err) {
    say.fail(`${file}: ${(err as Error).message}`, 'fix the file; `srs -t -c FILE` shows what SRS makes of it')
    return undefined
  }
  const illegal = illegalDirectives(root)
  if (illegal.length > 0) say.fail(`${file}: directives SRS refuses: ${illegal.join(', ')}`, 'remove or rename them (SrsConfig::check_normal_config lists the allowed names); srs.conf.example is a valid start')
  else say.ok(`${file} parses, with only directives SRS accepts`)

  const httpApi = find(root, 'http_api')
  if (isOn(find(httpApi?.children ?? [], 'enabled'))) {
    const listen = find(httpApi!.children, 'listen')?.args[0] ?? '1985'
    const port = listen.slice(listen.lastIndexOf(':') + 1)
    const ours = config.srsApis.map((a) => new URL(a.url).port || '80')
    if (!ours.includes(port)) say.warn(`http_api listens on ${listen} but SRS_API_URL is ${config.srsApis.map((a) => a.url).join(',')}`, `set SRS_API_URL to SRS's http_api address (port ${port})`)
    else say.ok(`http_api is enabled (listen ${listen})`)
  } else {
    say.fail('http_api is not enabled: srs-hooks cannot see or kick publishers', 'add `http_api { enabled on; listen 1985; }` at the top level')
  }

  const rtmp = find(root, 'listen') ?? find(find(root, 'rtmp')?.children ?? [], 'listen')
  const rtmpListen = rtmp?.args[0] ?? '1935'
  const rtmpPort = Number(rtmpListen.slice(rtmpListen.lastIndexOf(':') + 1))

  const vhosts = root.filter((d) => d.name === 'vhost')
  const vhost = vhosts.find((v) => v.args[0] === '__defaultVhost__') ?? vhosts[0]
  const name = vhost?.args[0] ?? '__defaultVhost__'
  const hooks = find(vhost?.children ?? [], 'http_hooks')
  if (!isOn(find(hooks?.children ?? [], 'enabled'))) {
    say.fail(`http_hooks is not enabled in vhost ${name}: SRS calls no hook`, `inside \`vhost ${name} { }\` add \`http_hooks { enabled on; on_publish ...; on_unpublish ...; }\` (see srs.conf.example)`)
    return { rtmpPort, onPublish: undefined }
  }
  const urls = (hook: string): string[] => find(hooks!.children, hook)?.args ?? []
  for (const hook of ['on_publish', 'on_unpublish'] as const) {
    if (urls(hook).length === 0) {
      say.fail(`vhost ${name} has no ${hook} hook`, hook === 'on_publish'
        ? 'add `on_publish http://<srs-hooks>:6000/admin-api/video/camera/callback/on_publish;` to http_hooks: without it nobody evicts a stale publisher'
        : 'add `on_unpublish http://<srs-hooks>:6000/admin-api/video/camera/callback/on_unpublish;` to http_hooks: it tells srs-hooks the moment SRS released a publisher')
    } else {
      say.ok(`vhost ${name} calls ${hook}`)
    }
  }
  for (const hook of HOOK_ACTIONS) {
    for (const u of urls(hook)) {
      let path: string
      try {
        path = new URL(u).pathname
      } catch {
        say.fail(`${hook} URL ${redactUrl(u)} is not a valid URL`, 'replace placeholders such as <gateway> with a real address SRS can reach')
        continue
      }
      if (!path.endsWith(`/callback/${hook}`)) {
        say.fail(`${hook} points at ${redactUrl(u)}, not at srs-hooks's ${hook} callback`, `use .../admin-api/video/camera/callback/${hook} (or /video/camera/callback/${hook} behind a gateway that strips /admin-api)`)
      }
    }
  }
  const dvr = find(vhost!.children, 'dvr')
  const dvrOn = isOn(find(dvr?.children ?? [], 'enabled'))
  const onDvr = urls('on_dvr').length > 0
  if (dvrOn && !onDvr) say.fail(`vhost ${name} records (dvr enabled) but has no on_dvr hook: recordings are not indexed`, 'add `on_dvr http://<srs-hooks>:6000/admin-api/video/camera/callback/on_dvr;` to http_hooks')
  else if (!dvrOn && onDvr) say.warn(`vhost ${name} has an on_dvr hook but dvr is not enabled: no recording will be reported`, 'add `dvr { enabled on; dvr_apply all; dvr_plan segment; dvr_duration 30; dvr_path ...; }` or drop on_dvr')
  else say.ok(dvrOn ? `vhost ${name} records and reports each file with on_dvr` : `vhost ${name} does not record (no dvr), and has no on_dvr`)
  return { rtmpPort, onPublish: urls('on_publish')[0] }
}

/** Posts a harmless on_publish (a probe stream nobody publishes) and, if allowed, its on_unpublish. */
async function probeHook (url: string, say: Say): Promise<void> {
  const stream = `probe-${randomBytes(4).toString('hex')}`
  const body = (action: string) => JSON.stringify({
    action,
    client_id: 'doctor00',
    ip: '127.0.0.1',
    vhost: '__defaultVhost__',
    app: 'srs-hooks-doctor',
    tcUrl: 'rtmp://127.0.0.1:1935/srs-hooks-doctor',
    stream,
    param: '',
    stream_url: `/srs-hooks-doctor/${stream}`
  })
  // undici's request, not fetch: fetch refuses some ports (6000, our default, among them).
  const post = async (target: string, action: string): Promise<{ status: number, text: string }> => {
    const res = await request(target, {
      method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'srs-hooks doctor' }, body: body(action), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS)
    })
    return { status: res.statusCode, text: await res.body.text() }
  }
  let res: { status: number, text: string }
  try {
    res = await post(url, 'on_publish')
  } catch (err) {
    say.fail(`cannot reach ${redactUrl(url)} from here: ${(err as Error).message}`,
      'start srs-hooks (`srs-hooks serve`) and make sure SRS can reach this address: from inside a container 127.0.0.1 is the container itself, use the host\'s or the gateway\'s address')
    return
  }
  const text = res.text
  let reply: { code?: unknown, msg?: unknown } = {}
  try { reply = JSON.parse(text) } catch {}
  if (res.status === 200 && reply.code === 0) {
    say.ok(`srs-hooks answers at ${redactUrl(url)}: a test on_publish got code 0`)
    await post(url.replace(/on_publish(?=$|\?)/, 'on_unpublish'), 'on_unpublish').catch(() => {})
    return
  }
  const what = `a test on_publish to ${redactUrl(url)} got HTTP ${res.status}, code ${String(reply.code)}: ${typeof reply.msg === 'string' ? reply.msg : text.slice(0, 200)}`
  if (res.status === 404) say.fail(what, 'the path is not an srs-hooks callback: use .../admin-api/video/camera/callback/on_publish')
  else if (res.status === 401 || res.status === 403) say.fail(what, 'the hook URL needs the right ?token= (see docs/security.md)')
  else say.fail(what, 'read msg above; SRS refuses every publisher while on_publish does not answer code 0')
}

function apiFix (kind: string): string {
  switch (kind) {
    case 'unauthorized': return 'set SRS_API_USERNAME/SRS_API_PASSWORD to http_api.auth\'s username and password'
    case 'unreachable':
    case 'timeout': return 'start SRS, enable `http_api { enabled on; listen 1985; }`, and point SRS_API_URL at it (SRS_API_URL=none when you run only ZLMediaKit)'
    default: return 'SRS_API_URL must be SRS\'s http_api (e.g. http://127.0.0.1:1985), not another service'
  }
}

/** Resolves null when a TCP connection opens, else the reason. */
async function tcpOpen (host: string, port: number): Promise<string | null> {
  return await new Promise((resolve) => {
    const socket = connect({ host, port, timeout: TCP_TIMEOUT_MS })
    socket.once('connect', () => { socket.destroy(); resolve(null) })
    /* c8 ignore next */ // needs an address that drops SYNs; loopback refuses at once
    socket.once('timeout', () => { socket.destroy(); resolve(`no answer within ${TCP_TIMEOUT_MS} ms`) })
    socket.once('error', (err) => { resolve(err.message) })
  })
}

/** A hook URL with its token values masked. */
function redactUrl (url: string): string {
  return url.replace(/([?&][^=&]*(?:token|key|secret|sign|pass|auth)[^=&]*=)[^&]*/gi, '$1***')
}

export const command: Command = {
  summary: 'diagnose why publishing fails: SRS API and RTMP port, the hooks in srs.conf, ZLMediaKit\'s API and [hook] section, this server at the hook URL',
  usage,
  exits: [
    [0, 'every check passed (WARN lines do not fail)'],
    [1, 'a check failed: its FAIL line names the fix'],
    [2, 'bad usage or a bad setting']
  ],
  run: doctor
}
