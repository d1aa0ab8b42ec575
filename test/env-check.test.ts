import t from 'tap'
import { ConfigSchema } from '../src/config.js'
import { distance, lookalikeLine, lookalikes } from '../src/env-check.js'

const known = Object.keys(ConfigSchema.properties)

t.test('a misspelt setting is named with the one it resembles', async (t) => {
  const env = { SRS_API_ULR: 'http://srs:1985', ADMIN_TOKN: 'x'.repeat(20), FAIL_MOD: 'closed', fail_mode: 'closed', LOGLEVEL: 'debug', SRS_API_TIMEOUT: '500', SRS_HOOKS_PORT: '7000', TAKEOVER_TIMOUT_MS: '5000' }
  t.same(lookalikes(env, known), [
    { name: 'SRS_API_ULR', like: 'SRS_API_URL' },
    { name: 'ADMIN_TOKN', like: 'ADMIN_TOKEN' },
    { name: 'FAIL_MOD', like: 'FAIL_MODE' },
    { name: 'fail_mode', like: 'FAIL_MODE' },
    { name: 'LOGLEVEL', like: 'LOG_LEVEL' },
    { name: 'SRS_API_TIMEOUT', like: 'SRS_API_TIMEOUT_MS' },
    { name: 'SRS_HOOKS_PORT', like: 'PORT' },
    { name: 'TAKEOVER_TIMOUT_MS', like: 'TAKEOVER_TIMEOUT_MS' }
  ])
  t.equal(lookalikeLine({ name: 'FAIL_MOD', like: 'FAIL_MODE' }),
    'environment variable FAIL_MOD is not a setting of srs-hooks and is ignored: did you mean FAIL_MODE? (SRS_HOOKS_ENV_IGNORE=FAIL_MOD silences this)')
})

t.test('the settings themselves, and the usual variables of a shell, a container, npm, Node and Kubernetes, are never warned about', async (t) => {
  const env: Record<string, string> = Object.fromEntries(known.map((k) => [k, 'x']))
  for (const name of [
    'PATH', 'HOME', 'HOSTNAME', 'USER', 'LOGNAME', 'SHELL', 'PWD', 'OLDPWD', 'TERM', 'LANG', 'LANGUAGE', 'TZ', 'SHLVL', 'MAIL', '_',
    'TMPDIR', 'EDITOR', 'PAGER', 'COLUMNS', 'LINES', 'DISPLAY', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'no_proxy',
    'NODE_ENV', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'NODE_VERSION', 'YARN_VERSION', 'npm_config_cache', 'npm_lifecycle_event', 'npm_package_version', 'INIT_CWD', 'COLOR', 'EDITOR',
    'LC_ALL', 'XDG_DATA_DIRS', 'XDG_RUNTIME_DIR', 'SSH_AUTH_SOCK', 'GIT_DIR', 'DOCKER_HOST', 'CI', 'DEBUG', 'PGPASSWORD', 'PGHOST', 'PGPORT',
    'REDIS_PASSWORD', 'REDIS_HOST', 'DATABASE_USER', 'DATABASE_HOST', 'DATABASE_PORT', 'POSTGRES_PASSWORD', 'HOST_IP', 'POD_IP', 'POD_NAME',
    'KUBERNETES_SERVICE_HOST', 'KUBERNETES_PORT_443_TCP_ADDR', 'SRS_SERVICE_HOST', 'SRS_SERVICE_PORT', 'SRS_SERVICE_PORT_API', 'SRS_PORT_1985_TCP', 'SRS_PORT_1985_TCP_PROTO',
    'REDIS_SERVICE_HOST', 'REDIS_PORT_6379_TCP_PORT', 'INVOCATION_ID', 'JOURNAL_STREAM', 'SYSTEMD_EXEC_PID', 'MANAGERPID', 'LISTEN_FDS', 'NOTIFY_SOCKET', 'BENCH_DURATION_S', 'TAP_CHILD_ID'
  ]) env[name] = 'x'
  // A service called srs-hooks or redis: its link variable holds tcp://, whatever its name.
  env.SRS_HOOKS_PORT = 'tcp://10.0.0.7:6000'
  env.REDIS_PORT = 'tcp://10.0.0.8:6379'
  t.same(lookalikes(env, known), [])
  t.same(lookalikes(process.env, known).filter((l) => !known.includes(l.name)), [], 'nor anything in this test\'s own environment')
})

t.test('a name as close to two settings as to one is not guessed at', async (t) => {
  t.same(lookalikes({ POST: '1' }, known), [], 'POST: PORT or HOST')
  t.same(lookalikes({ FAIL_MOD: undefined }, known), [], 'a variable without a value is not set')
})

t.test('SRS_HOOKS_ENV_IGNORE names variables not to warn about, or * for none', async (t) => {
  const env = { FAIL_MOD: 'closed', ADMIN_TOKN: 'x' }
  t.same(lookalikes({ ...env, SRS_HOOKS_ENV_IGNORE: 'FAIL_MOD' }, known), [{ name: 'ADMIN_TOKN', like: 'ADMIN_TOKEN' }])
  t.same(lookalikes({ ...env, SRS_HOOKS_ENV_IGNORE: ' FAIL_MOD , ADMIN_TOKN ' }, known), [])
  t.same(lookalikes({ ...env, SRS_HOOKS_ENV_IGNORE: '*' }, known), [])
  t.same(lookalikes({ SRS_HOOKS_ENV_IGNOR: 'x' }, []), [{ name: 'SRS_HOOKS_ENV_IGNORE'.slice(0, -1), like: 'SRS_HOOKS_ENV_IGNORE' }], 'the opt-out is itself a setting')
})

t.test('the distance counts an insertion, a deletion, a change and a swap of neighbours as one each', async (t) => {
  t.equal(distance('FAIL_MODE', 'FAIL_MODE'), 0)
  t.equal(distance('FAIL_MOD', 'FAIL_MODE'), 1)
  t.equal(distance('FAIL_MODEX', 'FAIL_MODE'), 1)
  t.equal(distance('FAIL_NODE', 'FAIL_MODE'), 1)
  t.equal(distance('SRS_API_ULR', 'SRS_API_URL'), 1)
  t.equal(distance('', 'PORT'), 4)
  t.equal(distance('PATH', 'PORT'), 3)
})
