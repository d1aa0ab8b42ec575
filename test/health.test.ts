import { join } from 'node:path'
import t from 'tap'
import { postHook, startApp } from './fixtures/app.js'
import { SrsSimulator } from './fixtures/srs-sim.js'
import { SqliteRecordingStore } from '../src/recordings/sqlite.js'
import type { RecordingStore } from '../src/recordings/store.js'

t.test('/healthz answers while the process is up, whatever SRS does', async (t) => {
  const { url } = await startApp(t, { SRS_API_URL: 'http://127.0.0.1:9', DATA_DIR: join(t.testdir(), 'data') })
  const res = await fetch(`${url}/healthz`)
  t.equal(res.status, 200)
  t.same(await res.json(), { code: 0, status: 'up' })
})

t.test('/readyz turns not-ready when SRS\'s API is down or the store cannot write, says which, and comes back', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const real = await SqliteRecordingStore.open({ dir: join(t.testdir(), 'data') })
  let unwritable = false
  const store: RecordingStore = Object.assign(Object.create(real) as RecordingStore, {
    readiness: async (n: number) => unwritable ? { ok: false, msg: 'the recordings index is not writable: SQLITE_READONLY: attempt to write a readonly database' } : await real.readiness(n),
    close: async () => { await real.close() }
  })
  const { url } = await startApp(t, { SRS_API_URL: sim.apiUrl, READY_TIMEOUT_MS: '300', SRS_API_RETRIES: '0' }, { recordings: store })
  const ready = async () => {
    const res = await fetch(`${url}/readyz`)
    return { status: res.status, body: await res.json() as any }
  }
  t.match(await ready(), { status: 200, body: { code: 0, ready: true, failed: [], checks: { srs: { ok: true, msg: `SRS 6.0.184 at ${sim.apiUrl}` }, store: { ok: true, msg: null } }, spool: null } })
  sim.setFault('down')
  t.match(await ready(), { status: 503, body: { code: 1102, ready: false, failed: ['srs'], checks: { srs: { ok: false, msg: /unreachable/ }, store: { ok: true } } } })
  sim.setFault('slow', { slowMs: 5000 })
  const slow = await ready()
  t.match(slow, { status: 503, body: { failed: ['srs'], checks: { srs: { msg: /within/ } } } }, 'a hung SRS is bounded by READY_TIMEOUT_MS')
  sim.setFault('none')
  unwritable = true
  t.match(await ready(), { status: 503, body: { failed: ['store'], checks: { store: { ok: false, msg: /not writable: SQLITE_READONLY/ } } } })
  unwritable = false
  t.match(await ready(), { status: 200, body: { ready: true } }, 'ready again')
})

/** Prometheus text format 0.0.4: `# HELP`, `# TYPE`, and `name{label="v",...} value` lines. */
function parseProm (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line)
    if (m === null) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`)
    samples.set(m[1]! + (m[2] ?? ''), Number(m[3]))
  }
  return samples
}

t.test('/metrics is Prometheus text and counts the hooks, takeovers, refusals, API errors and recordings of this test', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const { url, hookBase, app } = await startApp(t, { SRS_API_URL: sim.apiUrl, DATA_DIR: join(t.testdir(), 'data'), SRS_API_RETRIES: '0' })
  sim.setHookBase(hookBase)
  await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  await sim.dvr(b.clientId)
  await postHook(hookBase, 'on_play', { action: 'on_stop', client_id: 'x', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' })
  const forged = await postHook(hookBase, 'on_publish', { action: 'on_publish', client_id: 'forged01', vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' })
  t.equal(forged.reply.code, 1001)
  sim.setFault('down')
  await postHook(hookBase, 'on_publish', { action: 'on_publish', client_id: 'c2', vhost: '__defaultVhost__', app: 'live', stream: 'cam2', stream_id: 'vid-x' })
  sim.setFault('none')
  sim.seedLive(1, { prefix: 'old-' })
  await app.reconciler.run()
  await fetch(`${url}/healthz`)

  const res = await fetch(`${url}/metrics`)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const m = parseProm(await res.text())
  const v = (k: string) => m.get(k) ?? 0
  t.equal(v('srs_hooks_hooks_total{action="on_publish",outcome="allowed"}'), 1)
  t.equal(v('srs_hooks_hooks_total{action="on_publish",outcome="took-over"}'), 1)
  t.equal(v('srs_hooks_hooks_total{action="on_publish",outcome="refused-unverified"}'), 1)
  t.equal(v('srs_hooks_hooks_total{action="on_publish",outcome="api-failed-open"}'), 1)
  t.equal(v('srs_hooks_hooks_total{action="on_dvr",outcome="stored"}'), 1)
  t.equal(v('srs_hooks_hooks_total{action="on_play",outcome="bad-request"}'), 1)
  t.ok(v('srs_hooks_hook_duration_seconds_count{action="on_publish"}') >= 4)
  t.equal(v(`srs_hooks_takeovers_total{outcome="released",path="publish",server="${sim.serverId}"}`), 1)
  t.equal(v('srs_hooks_takeover_wait_seconds_count{via="hook"}') + v('srs_hooks_takeover_wait_seconds_count{via="api"}'), 1)
  t.equal(v('srs_hooks_publish_refusals_total{code="1001"}'), 1)
  t.equal(v(`srs_hooks_srs_api_errors_total{kind="unreachable",server="${sim.serverId}"}`), 1)
  t.equal(v(`srs_hooks_reconcile_corrections_total{kind="added",server="${sim.serverId}"}`), 1)
  t.equal(v('srs_hooks_bound_exhausted_total'), 0)
  t.equal(v('srs_hooks_unknown_server_hooks_total'), 0)
  t.equal(v('srs_hooks_reconcile_failures_total'), 0)
  t.equal(v('srs_hooks_publishers'), 2, 'the table holds cam1 and old-0')
  t.equal(v('srs_hooks_recordings'), 1)
  t.equal(v('srs_hooks_recordings_indexed_total{result="stored"}'), 1)
  t.ok(m.has('srs_hooks_process_resident_memory_bytes'), 'process metrics, prefixed')
  t.notOk([...m.keys()].some((k) => !k.startsWith('srs_hooks_')), 'every name is prefixed srs_hooks_')
  t.notOk([...m.keys()].some((k) => k.includes('healthz')), 'health probes are not hooks')
})

t.test('each app counts in its own registry', async (t) => {
  const a = await startApp(t, { DATA_DIR: join(t.testdir(), 'a') })
  const b = await startApp(t, { DATA_DIR: join(t.testdir(), 'b') })
  await postHook(a.hookBase, 'on_play', { action: 'on_play', client_id: 'x', vhost: '__defaultVhost__', app: 'live', stream: 'cam1' })
  const count = async (url: string) => parseProm(await (await fetch(`${url}/metrics`)).text()).get('srs_hooks_hooks_total{action="on_play",outcome="allowed"}') ?? 0
  t.equal(await count(a.url), 1)
  t.equal(await count(b.url), 0)
  t.not(a.app.metrics.registry, b.app.metrics.registry)
})
