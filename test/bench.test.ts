import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { resolve } from 'node:path'
import { affinity, decideLayout, expand, onServerCpu } from '../scripts/bench/cores.js'
import { configureLaunch, serverExecArgv } from '../scripts/bench/harness.js'
import { optionsFrom } from '../scripts/bench/options.js'
import { SimProcess } from '../scripts/bench/sim.js'

const entry = fileURLToPath(new URL('../scripts/bench.ts', import.meta.url))

/** Every scenario once, as small as it gets: a smoke test, so no timing is asserted. */
const TINY = {
  BENCH_DURATION_S: '0.5',
  BENCH_LOAD_S: '0.5',
  BENCH_CONNECTIONS: '4',
  BENCH_PUBLISH_RATE: '50',
  BENCH_STREAMS: '10',
  BENCH_TAKEOVERS: '2',
  BENCH_RELEASE_DELAYS_MS: '5,50',
  BENCH_SCALE_STREAMS: '100',
  BENCH_CONCURRENT: '5',
  BENCH_RECORDINGS: '1000',
  BENCH_DVR_RATE: '20',
  BENCH_DVR_BURST: '5',
  BENCH_RESTARTS: '2',
  BENCH_FORWARD_RATE: '50',
  BENCH_FORWARD_BACKLOG: '200',
  BENCH_FORWARD_DECISION_RATE: '20',
  BENCH_STORM: '20',
  // Print the page queries' plans too (scripts/bench/recordings.ts), as BENCHMARKS.md quotes them.
  BENCH_EXPLAIN: '1'
}

/** The figures of the results table, in order, as the tiny parameters name them. */
const FIGURES = [
  ...['on_play', 'on_connect', 'on_stop', 'on_close'].flatMap((a) => [
    ...['throughput', 'p50 latency, max rate', 'p99 latency, max rate'].map((f) => `${a} with HOOK_TOKEN and TRUST_PROXY: ${f} (ref: the floor checking the token)`),
    `${a} with HOOK_TOKEN and TRUST_PROXY: throughput (ref: bare)`,
    `${a} with HOOK_TOKEN and TRUST_PROXY: server CPU per request (ref: the floor's checking the token)`,
    `${a} throughput of the floor checking the token (ref: the floor without)`,
    `${a} with HOOK_TOKEN and TRUST_PROXY: requests failed, srs-hooks and the floor checking the token (ref: completed)`,
    ...['throughput', 'p50 latency, max rate', 'p99 latency, max rate'].map((f) => `${a} without a token: ${f} (ref: the floor)`),
    `${a} without a token: throughput (ref: bare)`, `${a} without a token: server CPU per request (ref: the floor's)`, `${a} without a token: requests failed (ref: completed)`,
    `${a} throughput of the floor: node:http with the body check, log line and metrics alone (ref: bare)`, `${a} floor's CPU per request (ref: bare's)`,
    `${a} floor's requests failed (ref: completed)`
  ]),
  'SRS API calls per on_publish', 'on_publish p50 at 50/s (ref: API alone)', 'on_publish p99 at 50/s (ref: API alone)', 'on_publish requests failed (ref: completed)',
  'takeover overhead p50, R=5 ms (ref: R)', 'takeover overhead p99, R=5 ms (ref: R)',
  'takeover overhead p50, R=50 ms (ref: R)', 'takeover overhead p99, R=50 ms (ref: R)', 'takeovers that failed',
  'reconciliation of 100 live streams (ref: the listing alone)', 'RSS after reconciling 100 (ref: idle RSS)', 'heap used after reconciling 100 (ref: idle)',
  'publishers in the table after reconciling', 'reconciliation failures',
  '5 takeovers at once: succeeded', '5 takeovers at once: total time (ref: one alone)', 'the takeover alone succeeded',
  'mixed hooks: maximum rate', 'mixed hooks for 0.5 s: rate (ref: half the maximum)', 'mixed hooks for 0.5 s: p99 latency',
  'mixed hooks for 0.5 s: requests failed', 'mixed hooks for 0.5 s: heap growth', 'mixed hooks for 0.5 s: RSS growth (ref: RSS before)',
  'on_dvr p50 at 20/s, PostgreSQL (ref: SQLite)', 'on_dvr p99 at 20/s, PostgreSQL (ref: SQLite)', 'on_dvr throughput, PostgreSQL (ref: SQLite)',
  'on_dvr p99 at the maximum rate, PostgreSQL (ref: SQLite)', 'on_dvr requests failed, both stores (ref: completed)', 'on_dvr spooled with PostgreSQL up',
  'GET recordings p50 at 1000 rows, PostgreSQL (ref: SQLite)', 'GET recordings p99 at 1000 rows, PostgreSQL (ref: SQLite)',
  'GET recordings p99 at 1000 rows, SQLite', 'GET recordings p99 at 1000 rows, PostgreSQL',
  'page query alone p50 at 1000 rows, PostgreSQL (ref: SQLite)', 'page query alone p99 at 1000 rows, PostgreSQL (ref: SQLite)',
  'page query alone p99 at 1000 rows, SQLite',
  'GET recordings p99 of the slowest filter combination, PostgreSQL (ref: SQLite)', 'GET recordings failed (ref: completed)',
  'on_publish + on_unpublish p50 during bursts of 5 on_dvr (ref: of 5 on_hls)', 'on_publish + on_unpublish p99 during bursts of 5 on_dvr (ref: of 5 on_hls)',
  'on_publish + on_unpublish p99 during bursts of 5 on_hls (ref: between bursts)', 'on_publish + on_unpublish during on_dvr bursts (ref: during on_hls bursts)',
  'on_dvr p99 in bursts of 5 at once (ref: on_hls)', 'bursts of 5 on_dvr (ref: of on_hls)', 'SQLite writes per commit in the bursts (group commit; ref: on_dvr)',
  'event loop held by 5 on_dvr committed on it one by one, as before (ref: the same 5 through the worker, loop free)',
  'requests failed beside and in the bursts (ref: completed)',
  'at-connect takeover overhead p50, R=5 ms (ref: at on_publish)', 'at-connect takeover overhead p99, R=5 ms (ref: at on_publish)',
  'at-connect takeover overhead p50, R=50 ms (ref: at on_publish)', 'at-connect takeover overhead p99, R=50 ms (ref: at on_publish)',
  'at-connect and at-publish takeovers that failed',
  'players\' on_connect throughput, token strategy (ref: SRS 6)', 'players\' on_connect p99, token strategy (ref: SRS 6)', 'players\' on_connect requests failed (ref: completed)',
  'takeover overhead p50, R=5 ms, two replicas (ref: one)', 'takeover overhead p99, R=5 ms, two replicas (ref: one)',
  'on_publish p99 without conflict, two replicas (ref: one)', 'Redis round trips per on_publish without conflict', 'replica takeovers and publishes that failed',
  'mixed hooks throughput with REDIS_URL (ref: without)', 'mixed hooks p99 with REDIS_URL (ref: without)', 'mixed hooks failed with and without REDIS_URL (ref: completed)',
  'ZLMediaKit takeover overhead p50, R=5 ms (ref: R)', 'ZLMediaKit takeover overhead p99, R=5 ms (ref: R)',
  'ZLMediaKit takeover overhead p50, R=50 ms (ref: R)', 'ZLMediaKit takeover overhead p99, R=50 ms (ref: R)', 'ZLMediaKit takeovers that failed',
  'rtp-servers open p50, no conflict (ref: openRtpServer alone)', 'rtp-servers open p99, no conflict (ref: openRtpServer alone)',
  'rtp-servers open p50, conflict (ref: close + open alone)', 'rtp-servers open p99, conflict (ref: close + open alone)',
  'listRtpServer of 80 RTP servers alone, p50',
  'rtp-servers opens that failed (ref: opens)',
  'ZLMediaKit API calls per open, no conflict (ref: openRtpServer alone)', 'ZLMediaKit API calls per open, conflict (ref: close + open alone)',
  'restart gap: process start to first hook answered, median of 2 (ref: bare node:http started the same way)', 'restart gap: slowest start (ref: bare\'s slowest)',
  'restarts answering a hook before reconciling 100 live streams (ref: restarts)', 'publishers in the table at the first hook, median (ref: live streams)',
  'notifications p50 at 50/s with forwarding (ref: without)', 'notifications p99 at 50/s with forwarding (ref: without)',
  'server CPU per notification with forwarding, its delivery included (ref: without)',
  'fsync on the outbox\'s disk alone, p50 (a durable write\'s floor)', 'fsync on the outbox\'s disk alone, p99 (a durable write\'s floor)',
  'notifications failed with and without forwarding (ref: completed)',
  'notifications delivered to the platform (ref: answered with forwarding)',
  'drain of 200 notifications over 10 streams to a platform answering in 1 ms: rate',
  'drain: the platform\'s answer to a delivery as srs-hooks saw it, mean (ref: the platform\'s own p50)', 'drain: backlog notifications the platform received (ref: backlog)',
  'drain: backlog left when the notifications sent meanwhile ended (ref: backlog)',
  'notifications p50 at 50/s during the drain (ref: with no backlog)', 'notifications p99 at 50/s during the drain (ref: with no backlog)',
  'notifications failed during the drain (ref: completed)',
  ...['on_publish', 'on_play'].flatMap((a) => [
    `${a} p50 at 20/s with forwarding (ref: without)`, `${a} p99 at 20/s with forwarding (ref: without)`,
    `platform's own time answering ${a}, p50 (ref: its delay)`, `platform's own time answering ${a}, p99 (ref: its delay)`,
    `${a} p50 added by forwarding less the platform's own p50`, `${a} p99 added by forwarding less the platform's own p99`,
    `${a} asked of the platform (ref: answered with forwarding)`, `${a} failed with and without forwarding (ref: completed)`
  ]),
  ...['one replica', 'two replicas with Redis'].flatMap((w) => [
    `reconnect storm, ${w}: 20 newcomers onto held streams within 1 s, all on air after (ref: 20 free publishes arriving alike)`,
    `reconnect storm, ${w}: a newcomer's time from arrival to on air, p50 (ref: a free publish's)`,
    `reconnect storm, ${w}: a newcomer's time from arrival to on air, p99 (ref: a free publish's)`,
    `reconnect storm, ${w}: newcomers refused at their first attempt (ref: newcomers)`,
    `reconnect storm, ${w}: free publishes refused (ref: publishes)`
  ])
]

interface Cells { figure: string, value: number, unit: string, reference: string, ratio: string, target: string, met: string }

/** The Markdown table's data rows, the value split into number and unit. */
function parseTable (out: string): Cells[] {
  return out.trim().split('\n').slice(2).map((line) => {
    const [figure, value, reference, ratio, target, met] = line.slice(2, -2).split(' | ') as [string, string, string, string, string, string]
    const [number, ...unit] = value.split(' ')
    return { figure, value: Number(number!.replaceAll(',', '')), unit: unit.join(' '), reference, ratio, target, met }
  })
}

t.test('bench options default to the issue\'s parameters and name a bad variable', async (t) => {
  t.same(optionsFrom({}), {
    durationS: 10,
    loadS: 60,
    connections: 20,
    publishRate: 1000,
    streams: 1000,
    takeovers: 50,
    scaleStreams: 100_000,
    concurrent: 200,
    recordings: 1_000_000,
    dvrRate: 200,
    dvrBurst: 200,
    restarts: 5,
    forwardRate: 1000,
    forwardBacklog: 100_000,
    forwardDecisionRate: 200,
    storm: 1000,
    releaseDelaysMs: [5, 50, 500],
    scenarios: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    pin: true,
    profileDir: undefined
  })
  t.same(optionsFrom({ BENCH_PIN: '0', BENCH_CPU_PROF: 'profiles' }).pin, false)
  t.equal(optionsFrom({ BENCH_CPU_PROF: 'profiles' }).profileDir, resolve('profiles'), 'made absolute')
  t.throws(() => optionsFrom({ BENCH_PIN: 'yes' }), /BENCH_PIN="yes": expected 0 or 1/)
  t.same(optionsFrom({ BENCH_RELEASE_DELAYS_MS: '7, 70', BENCH_SCENARIOS: '4' }).releaseDelaysMs, [7, 70])
  t.equal(optionsFrom({ BENCH_LOAD_S: '0.5' }).loadS, 0.5)
  t.throws(() => optionsFrom({ BENCH_TAKEOVERS: '0' }), /BENCH_TAKEOVERS="0": expected a positive integer/)
  t.throws(() => optionsFrom({ BENCH_TAKEOVERS: '2.5' }), /BENCH_TAKEOVERS="2.5": expected a positive integer/)
  t.throws(() => optionsFrom({ BENCH_DURATION_S: '-1' }), /BENCH_DURATION_S="-1": expected a positive number/)
  t.throws(() => optionsFrom({ BENCH_RELEASE_DELAYS_MS: '5,fast' }), /BENCH_RELEASE_DELAYS_MS="fast": expected a positive integer/)
})

t.test('the core layout: the server alone on the first CPU when there are two or more, and said otherwise', async (t) => {
  t.same(expand('0-2,5'), [0, 1, 2, 5])
  t.match(decideLayout([0, 1, 2], true), { pinned: true, server: '0', others: '1,2', text: /^taskset: server under test on CPU 0; .* on CPU 1,2$/ })
  t.match(decideLayout([0, 1], false), { pinned: false, text: /^not pinned \(BENCH_PIN=0\)/ })
  t.match(decideLayout([3], true), { pinned: false, text: /^not pinned: one CPU \(3\)/ })
  t.match(decideLayout(undefined, true), { pinned: false, text: /^not pinned: taskset not found/ })
  t.equal(affinity(process.pid, 'no-such-taskset-command'), undefined, 'no taskset: nothing to read')
  t.same(onServerCpu(decideLayout([0, 1], true), 'node', ['bare.mjs']), { command: 'taskset', args: ['-c', '0', 'node', 'bare.mjs'] })
  t.same(onServerCpu(decideLayout([0, 1], false), 'node', ['bare.mjs']), { command: 'node', args: ['bare.mjs'] })
})

t.test('servers under test get this process\'s node arguments, and a CPU profile when asked', async (t) => {
  t.same(serverExecArgv('bare'), process.execArgv)
  configureLaunch(decideLayout([0], true), '/tmp/profiles')
  t.teardown(() => { configureLaunch(decideLayout([0], true), undefined) })
  t.same(serverExecArgv('app').slice(-3), ['--cpu-prof', '--cpu-prof-dir=/tmp/profiles', '--cpu-prof-name=02-app.cpuprofile'])
})

t.test('the simulator in its own process answers the bench\'s calls and says when one fails', async (t) => {
  const sim = await SimProcess.start({ serverId: 'vid-bench-test' })
  t.teardown(() => sim.close())
  await sim.seedLive(3, { prefix: 'cam' })
  t.equal((await sim.clientIds()).length, 3)
  await t.rejects(sim.hookMs('on_publish', 'nobody'), /simulator: no on_publish of nobody/)
  await t.rejects(sim.setHookBase(undefined as never), /^simulator: /, 'an error in the simulator is the call\'s')
})

// The smoke starts a dozen TypeScript processes (bench, bare server, servers under test, the
// platform) and two PostgreSQL clusters; under tap's loader each process takes seconds to
// compile, more on a busy 2-core machine. Beside the rest of the suite it has taken 360 s, and
// 564 s with scenario 15 on a machine also running benchmarks, so the bound leaves room for that.
t.setTimeout(900_000)

t.test('the bench runs every scenario once and prints every figure with a sane value', async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
    env: { ...process.env, ...TINY },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 0, err)
  t.match(err, /\[9\/16\] bursts of on_dvr beside on_publish and on_unpublish/)
  t.match(err, /\[11\/16\] two replicas sharing Redis/)
  t.match(err, /\[vhost=v2\.example&app=app7&stream=cam42\] SQLite: SEARCH recordings USING INDEX recordings_vhost_app_stream \(vhost=\? AND app=\? AND stream=\?\)/, 'the plans are printed')
  t.match(err, /\[13\/16\] ZLMediaKit: rtp-servers open/)
  t.match(err, /\[14\/16\] restart gap/)
  t.match(err, /\[15\/16\] forwarding to the platform/)
  t.match(err, /\[16\/16\] reconnect storm/)
  t.match(err, /^cores: /m, 'the core layout is said')

  const [layout, ...rows] = parseTable(out)
  t.match(layout!.figure, /^core layout: (taskset: server under test on CPU \d+; .*|not pinned.*)$/, 'the table starts with the core layout')
  t.same(rows.map((r) => r.figure), FIGURES)
  for (const r of rows) {
    t.ok(Number.isFinite(r.value), `${r.figure}: ${r.value} ${r.unit}`)
    t.match(r.met, /^(yes|\*\*NO\*\*|)$/, r.figure)
    t.equal(r.met === '', r.target === '', `${r.figure}: a target comes with its verdict`)
  }
  const value = (figure: string): number => rows.find((r) => r.figure === figure)!.value
  const reference = (figure: string): number => Number(rows.find((r) => r.figure === figure)!.reference.split(' ')[0]!.replaceAll(',', ''))
  // What must hold whatever the machine's speed.
  t.ok(value('on_play without a token: throughput (ref: the floor)') > 0)
  t.ok(value('on_connect with HOOK_TOKEN and TRUST_PROXY: throughput (ref: the floor checking the token)') > 0)
  t.equal(value('on_play without a token: requests failed (ref: completed)'), 0)
  for (const a of ['on_play', 'on_close']) {
    t.equal(value(`${a} with HOOK_TOKEN and TRUST_PROXY: requests failed, srs-hooks and the floor checking the token (ref: completed)`), 0,
      'srs-hooks and the floor take the token in the query and the gateway\'s X-Forwarded-For')
  }
  t.equal(value('on_play floor\'s requests failed (ref: completed)'), 0, 'the floor answers every hook: its body check passes them')
  t.equal(value('SRS API calls per on_publish'), 1, 'a publish without conflict costs one lookup')
  t.equal(value('on_publish requests failed (ref: completed)'), 0)
  t.equal(value('takeovers that failed'), 0)
  t.equal(value('publishers in the table after reconciling'), 100)
  t.equal(value('5 takeovers at once: succeeded'), 5)
  t.equal(value('mixed hooks for 0.5 s: requests failed'), 0)
  t.equal(value('at-connect and at-publish takeovers that failed'), 0)
  t.equal(value('players\' on_connect requests failed (ref: completed)'), 0)
  t.equal(value('replica takeovers and publishes that failed'), 0)
  t.equal(value('Redis round trips per on_publish without conflict'), 1, 'one round trip to Redis')
  t.equal(value('mixed hooks failed with and without REDIS_URL (ref: completed)'), 0)
  t.ok(value('RSS after reconciling 100 (ref: idle RSS)') > 10, 'RSS is in MB')
  t.equal(value('on_dvr requests failed, both stores (ref: completed)'), 0)
  t.equal(value('on_dvr spooled with PostgreSQL up'), 0, 'a healthy PostgreSQL takes every on_dvr itself')
  t.ok(value('on_dvr throughput, PostgreSQL (ref: SQLite)') > 0)
  t.equal(value('GET recordings failed (ref: completed)'), 0)
  t.equal(value('requests failed beside and in the bursts (ref: completed)'), 0)
  t.ok(value('bursts of 5 on_dvr (ref: of on_hls)') >= 1)
  t.ok(value('SQLite writes per commit in the bursts (group commit; ref: on_dvr)') >= 1)
  t.equal(value('ZLMediaKit takeovers that failed'), 0)
  t.equal(value('rtp-servers opens that failed (ref: opens)'), 0)
  t.equal(value('ZLMediaKit API calls per open, no conflict (ref: openRtpServer alone)'), 1, 'a free stream: one openRtpServer')
  t.equal(value('ZLMediaKit API calls per open, conflict (ref: close + open alone)'), 4, 'a conflict: -300, the map, the close, the open')
  t.ok(value('on_close without a token: server CPU per request (ref: the floor\'s)') > 0, 'the server\'s CPU time per request is measured')
  t.ok(value('restart gap: process start to first hook answered, median of 2 (ref: bare node:http started the same way)') > 0, 'the production bundle starts and answers')
  t.equal(value('notifications failed with and without forwarding (ref: completed)'), 0)
  t.equal(value('notifications failed during the drain (ref: completed)'), 0)
  const delivered = 'notifications delivered to the platform (ref: answered with forwarding)'
  t.ok(value(delivered) > 0 && value(delivered) === reference(delivered), 'every notification answered with forwarding reached the platform, once')
  t.equal(value('drain: backlog notifications the platform received (ref: backlog)'), 200, 'the whole backlog, each once')
  t.ok(value('drain of 200 notifications over 10 streams to a platform answering in 1 ms: rate') > 0)
  t.ok(value('server CPU per notification with forwarding, its delivery included (ref: without)') > 0)
  t.ok(value('fsync on the outbox\'s disk alone, p50 (a durable write\'s floor)') > 0)
  t.ok(value('drain: the platform\'s answer to a delivery as srs-hooks saw it, mean (ref: the platform\'s own p50)') > 0)
  for (const w of ['one replica', 'two replicas with Redis']) {
    t.equal(value(`reconnect storm, ${w}: free publishes refused (ref: publishes)`), 0, `${w}: every free publish gets in`)
    t.ok(value(`reconnect storm, ${w}: 20 newcomers onto held streams within 1 s, all on air after (ref: 20 free publishes arriving alike)`) > 0)
  }
  t.equal(value('reconnect storm, one replica: newcomers refused at their first attempt (ref: newcomers)'), 0, '20 takeovers in a second: none refused')
  for (const a of ['on_publish', 'on_play']) {
    t.equal(value(`${a} failed with and without forwarding (ref: completed)`), 0)
    const asked = `${a} asked of the platform (ref: answered with forwarding)`
    t.ok(value(asked) > 0 && value(asked) === reference(asked), `every ${a} answered with forwarding asked the platform once`)
    t.ok(value(`platform's own time answering ${a}, p50 (ref: its delay)`) > 0, 'the platform measures its own time')
  }
})
