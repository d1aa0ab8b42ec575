import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { ADMIN_PREFIXES } from '../src/http/operators.js'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { RedisServer } from './fixtures/redis.js'

/**
 * deploy/: what can be checked without pulling an image. The compose file is valid YAML with
 * the services, health checks, conditions, restart policies and volumes the stack needs; every
 * hook URL of deploy/srs.conf, and every operator route, reaches srs-hooks through the gateway's
 * locations (matched as nginx matches them) and is a route of the app; the gateway's config
 * passes `nginx -t` (Debian's nginx, which scripts/test-deps.sh installs); the image's user owns
 * the folders the volumes mount.
 */

const root = fileURLToPath(new URL('..', import.meta.url))
const deploy = (f: string): string => join(root, 'deploy', f)
const OPERATOR = ADMIN_PREFIXES[0]

async function appOf (t: Test, env: Record<string, string> = {}): Promise<App> {
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-deploy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const app = await buildApp(loadConfig({ SRS_API_URL: 'none', LOG_LEVEL: 'silent', DATA_DIR: dir, ...env }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** compose.yaml as Docker Compose reads it: YAML with merge keys (<<), which its x-srs-hooks anchor uses. */
async function composeFile (): Promise<any> {
  return parse(await readFile(deploy('compose.yaml'), 'utf8'), { merge: true })
}

// --- nginx's location matching, for the gateway's config -----------------------------------

interface Location { modifier: '' | '=' | '~' | '~*' | '^~', pattern: string, upstream: string | null }

/** The server's locations in order: modifier, pattern and the upstream it proxies to (null: answers itself). */
function locationsOf (conf: string): Location[] {
  const text = conf.replace(/#[^\n]*/g, '')
  const out: Location[] = []
  for (const m of text.matchAll(/location\s+(?:(=|~\*|~|\^~)\s+)?(\S+)\s*\{([^}]*)\}/g)) {
    const upstream = /proxy_pass\s+http:\/\/([\w-]+)/.exec(m[3]!)?.[1] ?? null
    out.push({ modifier: (m[1] ?? '') as Location['modifier'], pattern: m[2]!, upstream })
  }
  return out
}

/** The location nginx picks for a path: exact, then the longest prefix (final with ^~), then the first regex, then that prefix. */
function locate (locations: Location[], path: string): Location | undefined {
  const exact = locations.find((l) => l.modifier === '=' && l.pattern === path)
  if (exact !== undefined) return exact
  const prefix = locations.filter((l) => (l.modifier === '' || l.modifier === '^~') && path.startsWith(l.pattern))
    .sort((a, b) => b.pattern.length - a.pattern.length)[0]
  if (prefix?.modifier === '^~') return prefix
  const regex = locations.find((l) => (l.modifier === '~' || l.modifier === '~*') && new RegExp(l.pattern, l.modifier === '~*' ? 'i' : '').test(path))
  return regex ?? prefix
}

t.test('the location matcher follows nginx\'s order', async (t) => {
  const ls = locationsOf(`
    location / { proxy_pass http://a; }
    location /x/ { proxy_pass http://b; }
    location ^~ /y/ { proxy_pass http://c; }
    location ~ ^/(x|y)/z$ { proxy_pass http://d; } # regex after prefixes
    location = /x/z/exact { return 200; }`)
  t.equal(locate(ls, '/x/z')?.upstream, 'd', 'a regex wins over a plain prefix')
  t.equal(locate(ls, '/y/z')?.upstream, 'c', 'a ^~ prefix wins over a regex')
  t.equal(locate(ls, '/x/w')?.upstream, 'b', 'the longest prefix')
  t.equal(locate(ls, '/x/z/exact')?.upstream, null, 'an exact location answers itself')
  t.equal(locate(ls, '/q')?.upstream, 'a')
})

// --- compose.yaml ---------------------------------------------------------------------------

t.test('compose.yaml: the services, their health checks, conditions, restart policies and volumes', async (t) => {
  const compose = await composeFile()
  const services = compose.services as Record<string, any>
  t.same(Object.keys(services).sort(), ['gateway', 'platform', 'postgres', 'redis', 'srs', 'srs-hooks', 'srs-hooks-2'])
  t.equal(services.srs.image, 'ossrs/srs:6')
  t.same(services.srs.volumes.filter((v: string) => v.startsWith('./srs.conf:')), ['./srs.conf:/usr/local/srs/conf/srs-hooks.conf:ro'])
  t.match(services.srs.command.join(' '), /-c conf\/srs-hooks\.conf$/, 'SRS runs the mounted srs.conf')
  for (const name of ['srs-hooks', 'srs-hooks-2']) {
    t.same(services[name].build, { context: '..', dockerfile: 'Dockerfile' }, `${name} is built from the repository`)
    t.equal(services[name].environment.SRS_API_URL, 'http://srs:1985')
    t.equal(services[name].depends_on.srs.condition, 'service_healthy')
    const forward = /^\$\{FORWARD_URL-(.+)\}$/.exec(services[name].environment.FORWARD_URL)?.[1]
    t.match(new URL(forward!.replace('{action}', 'on_publish')), { hostname: 'platform', port: '8080', pathname: '/admin-api/video/camera/callback/on_publish' }, `${name} forwards every hook straight to the platform's own callback, not back through the gateway`)
    t.equal(services[name].depends_on.platform?.condition, 'service_healthy', `${name} starts after the platform it forwards to`)
  }
  t.ok(services.gateway.ports.includes('48080:48080'))
  t.same(services.gateway.volumes, ['./gateway.conf:/etc/nginx/conf.d/default.conf:ro'])
  t.equal(services.gateway.depends_on['srs-hooks'].condition, 'service_healthy')
  for (const [name, s] of Object.entries(services)) {
    t.ok(s.healthcheck?.test?.length > 0, `${name} has a health check`)
    t.equal(s.restart, 'unless-stopped', `${name} restarts`)
    for (const [dep, d] of Object.entries(s.depends_on ?? {}) as Array<[string, any]>) {
      t.ok(services[dep] !== undefined, `${name} depends on a service of the file (${dep})`)
      t.equal(d.condition, 'service_healthy', `${name} waits for ${dep} to be healthy`)
    }
    for (const v of s.volumes ?? []) {
      const source = (v as string).split(':')[0]!
      if (!source.startsWith('.')) t.ok(source in compose.volumes, `${name}'s volume ${source} is declared`)
    }
  }
  t.match(services['srs-hooks'].healthcheck.test.join(' '), /path:'\/readyz'/, 'srs-hooks is healthy when ready')

  // The replicated profile: Redis, PostgreSQL and the second replica, under the name the gateway uses.
  for (const name of ['redis', 'postgres', 'srs-hooks-2']) t.same(services[name].profiles, ['replicated'], `${name} is in the replicated profile`)
  for (const name of ['srs', 'srs-hooks', 'gateway', 'platform']) t.equal(services[name].profiles, undefined, `${name} runs in every profile`)
  t.same(services['srs-hooks-2'].networks.default.aliases, ['srs-hooks'])
  for (const dep of ['redis', 'postgres']) {
    t.equal(services['srs-hooks'].depends_on[dep].required, false, `the first replica waits for ${dep} only when its profile runs`)
    t.equal(services['srs-hooks-2'].depends_on[dep].required, undefined, `the second replica needs ${dep}`)
  }
  t.not(services['srs-hooks'].volumes[0], services['srs-hooks-2'].volumes[0], 'each replica has its own data volume')

  // replicated.env turns the profile on and points both replicas at Redis and PostgreSQL.
  const env = Object.fromEntries((await readFile(deploy('replicated.env'), 'utf8')).split('\n')
    .filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  t.equal(env.COMPOSE_PROFILES, 'replicated')
  const config = loadConfig({ REDIS_URL: env.REDIS_URL!, DATABASE_URL: env.DATABASE_URL! })
  t.equal(config.REDIS_URL, 'redis://redis:6379')
  const pg = new URL(env.DATABASE_URL!)
  t.equal(pg.hostname, 'postgres')
  t.equal(pg.username, services.postgres.environment.POSTGRES_USER)
  t.equal(pg.pathname, '/' + String(services.postgres.environment.POSTGRES_DB))
  t.equal(services.postgres.environment.POSTGRES_PASSWORD, `\${POSTGRES_PASSWORD:-${pg.password}}`, 'the password PostgreSQL is given')
})

t.test('the image\'s user owns and can write the folders srs-hooks\' volumes mount', async (t) => {
  const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8')
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
  const user = /\nUSER (\S+)/.exec(runtime)?.[1]
  t.equal(user, 'node', 'the runtime runs as node (uid 1000 in the node images)')
  const dataDir = /\nENV [^\n]*\bDATA_DIR=(\S+)/.exec(runtime)?.[1]
  t.equal(dataDir, '/data')
  const compose = await composeFile()
  for (const name of ['srs-hooks', 'srs-hooks-2']) {
    const s = compose.services[name]
    t.equal(s.environment.DATA_DIR, undefined, `${name} keeps the image's DATA_DIR`)
    const writable = (s.volumes as string[]).map((v) => v.split(':')).filter((p) => p[2] !== 'ro')
    t.same(writable.map((p) => p[1]), [dataDir], `${name} writes only DATA_DIR`)
    for (const [, target] of writable) {
      t.match(runtime, new RegExp(`mkdir -p ${target} && chown ${user}:${user} ${target}\\n`), `the image creates ${target} owned by ${user}: a new named volume takes its owner`)
      t.match(runtime, new RegExp(`VOLUME \\["${target}"\\]`))
    }
  }
})

// --- srs.conf through the gateway to srs-hooks ---------------------------------------------

t.test('every hook URL of deploy/srs.conf reaches a srs-hooks route through the gateway, with the token compose gives srs-hooks', async (t) => {
  const srsConf = await readFile(deploy('srs.conf'), 'utf8')
  const compose = await composeFile()
  const hooks = [...srsConf.replace(/#[^\n]*/g, '').matchAll(/\b(on_\w+)\s+(\S+);/g)].map((m) => ({ action: m[1]!, url: new URL(m[2]!) }))
  t.same(hooks.map((h) => h.action).sort(), ['on_close', 'on_connect', 'on_dvr', 'on_hls', 'on_play', 'on_publish', 'on_stop', 'on_unpublish'])
  const token = /^\$\{HOOK_TOKEN:-(.+)\}$/.exec(compose.services['srs-hooks'].environment.HOOK_TOKEN)?.[1]
  t.ok(token !== undefined && token.length >= 8, 'compose gives srs-hooks a HOOK_TOKEN')
  const gateway = locationsOf(await readFile(deploy('gateway.conf'), 'utf8'))
  const app = await appOf(t, { HOOK_TOKEN: token! })
  for (const { action, url } of hooks) {
    t.equal(url.host, 'gateway:48080', `${action} goes to the gateway`)
    t.equal(url.searchParams.get('token'), token, `${action} carries HOOK_TOKEN`)
    t.equal(locate(gateway, url.pathname)?.upstream, 'srs_hooks', `the gateway sends ${action} to srs-hooks`)
    t.ok(app.hasRoute({ method: 'POST', url: url.pathname }), `srs-hooks has POST ${url.pathname}`)
  }
  // A hook as SRS 6 sends it, at the URL srs.conf names, is allowed by srs-hooks.
  const play = hooks.find((h) => h.action === 'on_play')!.url
  const hook = async (url: string) => await app.inject({
    method: 'POST',
    url,
    payload: { server_id: 'vid-1', service_id: 'svc-1', action: 'on_play', client_id: 'c1', ip: '10.0.0.9', vhost: '__defaultVhost__', app: 'live', tcUrl: 'rtmp://srs/live', stream: 'cam1', param: '', pageUrl: '', stream_url: '/live/cam1', stream_id: 'vid-2' }
  })
  const allowed = await hook(play.pathname + play.search)
  t.equal(allowed.statusCode, 200)
  t.equal(allowed.json().code, 0)
  const refused = await hook(play.pathname)
  t.not(refused.json().code, 0, 'without the token the hook is refused: the token is what srs-hooks checks')
})

t.test('the gateway sends the operator API to srs-hooks and the platform\'s paths to the platform', async (t) => {
  const gateway = locationsOf(await readFile(deploy('gateway.conf'), 'utf8'))
  const app = await appOf(t)
  const doc = (await app.inject({ method: 'GET', url: `${OPERATOR}/openapi.json` })).json()
  const paths = Object.keys(doc.paths).map((p) => p.replace(/\{(\w+)\}/g, 'x-$1'))
  t.ok(paths.length >= 8)
  for (const path of [...paths, `${OPERATOR}/openapi.json`, `${OPERATOR}/console/`, `${OPERATOR}/console/console.js`, `${OPERATOR}/console`]) {
    t.equal(locate(gateway, path)?.upstream, 'srs_hooks', `${path} goes to srs-hooks`)
  }
  for (const path of ['/', '/admin-api/system/user/list', `${OPERATOR}/list`, `${OPERATOR}/streamsx`, `${OPERATOR}/page`]) {
    t.equal(locate(gateway, path)?.upstream, 'platform', `${path} goes to the platform`)
  }
  t.equal(locate(gateway, '/gateway/healthz')?.upstream, null, 'the gateway answers its own health check')
})

// --- nginx -t -----------------------------------------------------------------------------

/** Debian's nginx (scripts/test-deps.sh installs it): on PATH, or in /usr/sbin for a user whose PATH lacks it. */
function nginxBin (): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin']) {
    try {
      accessSync(join(dir, 'nginx'), constants.X_OK)
      return join(dir, 'nginx')
    } catch {}
  }
  throw new Error('nginx is not installed: run scripts/test-deps.sh (or apt-get install nginx-light)')
}

t.test('nginx -t accepts the gateway\'s and the platform placeholder\'s configs, upstream names resolved to loopback', async (t) => {
  const nginx = nginxBin()
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-nginx-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const compose = await composeFile()
  const names = Object.keys(compose.services as object).sort((a, b) => b.length - a.length)
  for (const file of ['gateway.conf', 'platform.conf']) {
    const conf = await readFile(deploy(file), 'utf8')
    // The services' names as Docker's DNS would resolve them, here to loopback.
    const local = conf.replace(new RegExp(`\\bserver\\s+(${names.join('|')}):`, 'g'), 'server 127.0.0.1:')
    if (file === 'gateway.conf') t.not(local, conf, 'the upstreams\' names replaced')
    await writeFile(join(dir, file), local)
    await writeFile(join(dir, 'nginx.conf'), [
      `pid ${join(dir, 'nginx.pid')};`,
      'error_log stderr;',
      'events {}',
      'http {',
      `  access_log ${join(dir, 'access.log')};`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${join(dir, k)};`),
      `  include ${join(dir, file)};`,
      '}'
    ].join('\n'))
    const { stderr } = await promisify(execFile)(nginx, ['-t', '-q', '-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf')])
    t.equal(stderr, '', `nginx -t accepts ${file}`)
  }
  // And refuses a name it cannot resolve (why the names are replaced): the check can fail.
  await writeFile(join(dir, 'platform.conf'), 'server { listen 48080; location / { proxy_pass http://nowhere.invalid; } }')
  await t.rejects(promisify(execFile)(nginx, ['-t', '-q', '-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf')]))
})

// --- alert rules and dashboard against /metrics ---------------------------------------------

/** The srs_hooks_* series a PromQL expression reads. */
function metricsIn (expr: string): string[] {
  return [...new Set(expr.match(/\bsrs_hooks_[a-z0-9_]+/g) ?? [])]
}

t.test('every metric the alert rules and the dashboard use is in /metrics (with Redis and PostgreSQL configured)', async (t) => {
  const redis = await RedisServer.start(t)
  // PostgreSQL out of reach: the spool takes the writes, and its metrics are there.
  const app = await appOf(t, { REDIS_URL: `redis://127.0.0.1:${redis.port}`, DATABASE_URL: 'postgres://u:p@127.0.0.1:1/none', HOOK_TOKEN: 'a-hook-token-0123456789' })
  for (const url of ['/admin-api/video/camera/callback/on_play?token=a-hook-token-0123456789', '/admin-api/video/camera/callback/on_play']) {
    await app.inject({ method: 'POST', url, payload: { action: 'on_play', client_id: 'c1', ip: '10.0.0.9', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', param: '' } })
  }
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const exported = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(m[1]!)
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m[1]! + s)
  }
  t.ok(exported.has('srs_hooks_redis_up') && exported.has('srs_hooks_recordings_spool_depth'), 'Redis\'s and the spool\'s metrics are exported')
  t.match(text, /srs_hooks_hooks_total\{action="on_play",outcome="[a-z-]+"\} 1/, 'the hooks were counted')

  const rules = parse(await readFile(deploy('prometheus-rules.yaml'), 'utf8'))
  const alerts = (rules.groups as Array<{ rules: Array<{ alert: string, expr: string }> }>).flatMap((g) => g.rules)
  t.same(alerts.map((a) => a.alert), ['SrsHooksSrsApiDown', 'SrsHooksTakeoversFailing', 'SrsHooksHookErrors', 'SrsHooksRedisDegraded', 'SrsHooksRecordingsSpoolGrowing'])
  const dashboard = JSON.parse(await readFile(deploy('grafana-dashboard.json'), 'utf8'))
  const targets = (dashboard.panels as Array<{ title: string, targets: Array<{ expr: string }> }>).flatMap((p) => p.targets.map((x) => ({ name: p.title, expr: x.expr })))
  t.ok(targets.length >= 8)
  for (const { name, expr } of [...alerts.map((a) => ({ name: a.alert, expr: a.expr })), ...targets]) {
    const used = metricsIn(expr)
    t.ok(used.length > 0, `${name} reads srs-hooks' metrics`)
    t.same(used.filter((m) => !exported.has(m)), [], `${name}: ${used.join(', ')} exported`)
  }
  t.same(metricsIn('rate(srs_hooks_no_such_metric_total[5m])').filter((m) => !exported.has(m)), ['srs_hooks_no_such_metric_total'], 'a misspelt name would be caught')
})

// --- the systemd unit ---------------------------------------------------------------------

/** systemd-analyze, where systemd is installed. */
function systemdAnalyze (): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/bin']) {
    try {
      accessSync(join(dir, 'systemd-analyze'), constants.X_OK)
      return join(dir, 'systemd-analyze')
    } catch {}
  }
  return undefined
}

const analyze = systemdAnalyze()
t.test('the systemd unit: a dedicated user, an environment file, restarts on failure, hardened; systemd-analyze verify accepts it', {
  skip: analyze === undefined ? 'systemd-analyze is not installed (no systemd on this machine)' : false
}, async (t) => {
  const unit = await readFile(deploy('srs-hooks.service'), 'utf8')
  const service = Object.fromEntries(unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]')).split('\n')
    .filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  t.equal(service.User, 'srs-hooks')
  t.equal(service.EnvironmentFile, '/etc/srs-hooks/srs-hooks.env')
  t.equal(service.Restart, 'on-failure')
  t.equal(service.StateDirectory, 'srs-hooks', 'DATA_DIR is created for the user')
  t.match(service.Environment, /\bDATA_DIR=\/var\/lib\/srs-hooks\b/)
  for (const k of ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'CapabilityBoundingSet']) t.ok(k in service, `${k} set`)
  t.match(service.ExecStart, /^\/usr\/bin\/node \/opt\/srs-hooks\/dist\/src\/cli\.js serve$/)

  // Verified with this machine's node in place of /usr/bin/node (verify checks that the program exists).
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-unit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const verify = async (text: string): Promise<string> => {
    await writeFile(join(dir, 'srs-hooks.service'), text.replace('/usr/bin/node ', process.execPath + ' '))
    const r = await promisify(execFile)(analyze!, ['verify', join(dir, 'srs-hooks.service')]).catch((err: { stderr: string }) => ({ stderr: err.stderr || 'failed' }))
    return r.stderr.split('\n').filter((l) => l.includes('srs-hooks.service')).join('\n')
  }
  t.equal(await verify(unit), '', 'systemd-analyze verify: no warning about the unit')
  t.match(await verify(unit.replace('ProtectHome=', 'ProtectHom=')), /Unknown key/, 'a misspelt key would be caught')
})
