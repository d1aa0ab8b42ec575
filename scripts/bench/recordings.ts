/**
 * The recordings scenarios (issue #10, and #8 item 8): on_dvr on PostgreSQL against SQLite, GET
 * recordings at a million rows on both, and what a burst of on_dvr does to the hooks a takeover
 * waits for. PostgreSQL is a throwaway cluster (test/fixtures/postgres.ts) with fsync on, as in
 * production, on the same disk as SQLite's DATA_DIR.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pg from 'pg'
import { pino } from 'pino'
import { Pool } from 'undici'
import { PG_SCHEMA_VERSION, PgRecordingStore, pgListSql } from '../../src/recordings/postgres.js'
import { SqliteIndex, SqliteRecordingStore, sqliteListSql } from '../../src/recordings/sqlite.js'
import { encodeCursor, type RecordingQuery } from '../../src/recordings/store.js'
import { PgCluster } from '../../test/fixtures/postgres.js'
import {
  checks, pace, percentile, row, saturate, warmUp, withStage,
  type HttpRequest, type LoadResult, type Scenario, type Target
} from './harness.js'
import { hookRequest, knownStreams } from './hooks.js'
import type { BenchOptions } from './options.js'

const DVR_STREAM = { id: 'vid-dvr0001', app: 'live', name: 'cam' }

/** HTTP 200 and `{"code":0,...}`. */
function answered (status: number, body: string): boolean {
  return [status === 200, /^\{"code":0[,}]/.test(body)].every(Boolean)
}

/** A cluster for one scenario, removed after it. */
async function withPostgres<T> (run: (cluster: PgCluster) => Promise<T>): Promise<T> {
  const cluster = await PgCluster.create({ fsync: true })
  try {
    return await run(cluster)
  } finally {
    await cluster.destroy()
  }
}

/** on_dvr requests, each about a new file (the same file twice would be a duplicate, not a write). */
function dvrRequests (tag: string): () => HttpRequest {
  let i = 0
  return () => {
    i++
    return hookRequest('on_dvr', DVR_STREAM, `${tag}${Math.floor(i / 100)}`, { file: `./objs/nginx/html/live/${tag}-${i}.1700000000000.flv` })
  }
}

interface DvrRun { paced: LoadResult, max: LoadResult, spooled: number }

async function measureDvr (app: Target, tag: string, opts: BenchOptions): Promise<DvrRun> {
  const next = dvrRequests(tag)
  await warmUp(app.url, Array.from({ length: 500 }, next), opts)
  const paced = await pace({ url: app.url, requests: [], next, connections: opts.connections, durationS: opts.durationS, rate: opts.dvrRate })
  const max = await saturate({ url: app.url, requests: [], next, connections: opts.connections, durationS: opts.durationS })
  return { paced, max, spooled: (await app.recordings()).counters.spooled }
}

/** 7. on_dvr on PostgreSQL as a ratio to SQLite, at a fixed rate and at the maximum. */
export const dvrOnBothStores: Scenario = {
  title: 'on_dvr on PostgreSQL vs SQLite',
  run: async (_shared, opts) => await withPostgres(async (cluster) => {
    const sqlite = await withStage(async ({ app }) => await measureDvr(app, 's', opts))
    const postgres = await withStage(async ({ app }) => await measureDvr(app, 'p', opts), { env: { DATABASE_URL: await cluster.database() } })
    const r = opts.dvrRate
    return [
      row(`on_dvr p50 at ${r}/s, PostgreSQL (ref: SQLite)`, 'ms', postgres.paced.p50, sqlite.paced.p50),
      row(`on_dvr p99 at ${r}/s, PostgreSQL (ref: SQLite)`, 'ms', postgres.paced.p99, sqlite.paced.p99),
      row('on_dvr throughput, PostgreSQL (ref: SQLite)', 'req/s', postgres.max.rps, sqlite.max.rps),
      row('on_dvr p99 at the maximum rate, PostgreSQL (ref: SQLite)', 'ms', postgres.max.p99, sqlite.max.p99),
      row('on_dvr requests failed, both stores (ref: completed)', 'requests',
        postgres.paced.failures + postgres.max.failures + sqlite.paced.failures + sqlite.max.failures,
        postgres.paced.completed + postgres.max.completed + sqlite.paced.completed + sqlite.max.completed, checks.atMost(0, 'requests')),
      row('on_dvr spooled with PostgreSQL up', 'requests', postgres.spooled, undefined, checks.atMost(0, 'requests'))
    ]
  })
}

// ------------------------------------------------------------------------------ a million rows

const YEAR_MS = 365 * 86_400_000
const T0 = Date.UTC(2025, 0, 1)

/**
 * Row i of n, the same in both stores (seedSqlite in JavaScript, seedPostgres in SQL): one year of
 * recordings in order; vhosts 95 % / 5 % (a rare one), apps 60 % `live` and 10 % each of four
 * others, 2000 streams, 30 s segments with 1 % of hour-long sessions and 3 % without a start.
 */
function seedRow (i: number, n: number) {
  const receivedAt = T0 + Math.floor(i * YEAR_MS / n)
  const vhost = Math.floor(i / 7) % 20 === 0 ? 'v2.example' : '__defaultVhost__'
  const app = i % 10 < 6 ? 'live' : `app${i % 10}`
  const stream = `cam${(i * 7919) % 2000}`
  const file = `/data/dvr/${app}/${stream}/${i}.flv`
  const startedAt = i % 33 === 0 ? null : i % 100 === 1 ? receivedAt - 3_600_000 : receivedAt - 30_000
  return {
    server_id: 'vid-bench',
    client_id: `c${Math.floor(i / 120)}`,
    file_key: file,
    vhost,
    app,
    stream,
    stream_url: `/${app}/${stream}`,
    stream_id: `vid-${stream}`,
    cwd: '/usr/local/srs',
    file,
    path: file,
    started_at: startedAt,
    received_at: receivedAt,
    size: 1_000_000 + i % 5000,
    mtime: receivedAt,
    file_error: null,
    checked_at: receivedAt
  }
}

const COLUMNS = Object.keys(seedRow(1, 1))

/** Fills DATA_DIR/recordings.db (created and migrated as the server would) with n rows, in one transaction. */
export function seedSqlite (dir: string, n: number): void {
  const index = new SqliteIndex({ dir })
  try {
    const insert = index.db.prepare(`INSERT INTO recordings (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => '@' + c).join(', ')})`)
    index.db.transaction(() => { for (let i = 1; i <= n; i++) insert.run(seedRow(i, n)) })()
    // Steady state before measuring: the load's write-ahead log copied into the file.
    index.db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    index.close()
  }
}

/**
 * The same n rows in PostgreSQL (schema created by the store's own migration), then what
 * autovacuum and the checkpointer would do in their own time (VACUUM, ANALYZE, CHECKPOINT), so
 * that they do not run during the measurement.
 */
export async function seedPostgres (url: string, n: number): Promise<void> {
  const store = new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 600_000, writeTimeoutMs: 600_000, poolMax: 1, log: pino({ level: 'silent' }) })
  await store.migrate()
  await store.close()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`INSERT INTO srs_hooks.recordings (${COLUMNS.join(', ')})
      SELECT 'vid-bench', 'c' || (i / 120), f, v, a, st, '/' || a || '/' || st, 'vid-' || st, '/usr/local/srs', f, f,
        CASE WHEN i % 33 = 0 THEN NULL WHEN i % 100 = 1 THEN r - 3600000 ELSE r - 30000 END,
        r, 1000000 + i % 5000, r, NULL, r
      FROM (SELECT i, r, v, a, st, '/data/dvr/' || a || '/' || st || '/' || i || '.flv' AS f
        FROM (SELECT i, $1::bigint + (i * $2::bigint / $3::bigint) AS r,
            CASE WHEN (i / 7) % 20 = 0 THEN 'v2.example' ELSE '__defaultVhost__' END AS v,
            CASE WHEN i % 10 < 6 THEN 'live' ELSE 'app' || (i % 10) END AS a,
            'cam' || (i * 7919 % 2000) AS st
          FROM generate_series(1::bigint, $3::bigint) AS i) AS x) AS y`, [T0, YEAR_MS, n])
    await client.query('VACUUM (ANALYZE) srs_hooks.recordings')
    await client.query('CHECKPOINT')
  } finally {
    await client.end()
  }
}

export interface Shape { name: string, query: RecordingQuery }

/**
 * Every filter combination the API offers: none, vhost, app, stream and each pair and all three
 * (the rare vhost, a 10 % app, one stream of 2000), each without a time bound, with the last week
 * (`from`), with an old `to`, with a day's window (`from` and `to`), and deep in the pages (a cursor
 * half a year back). 40 shapes, 50 rows a page.
 */
export function shapes (n: number): Shape[] {
  const end = T0 + YEAR_MS
  const filters = [{}, { vhost: 'v2.example' }, { app: 'app7' }, { stream: 'cam42' }, { app: 'app7', stream: 'cam42' },
    { vhost: 'v2.example', app: 'app7' }, { vhost: 'v2.example', stream: 'cam42' }, { vhost: 'v2.example', app: 'app7', stream: 'cam42' }]
  const times: Array<[string, Partial<RecordingQuery>]> = [
    ['', {}],
    ['from the last week', { from: end - 7 * 86_400_000 }],
    ['to 100 days in', { to: T0 + 100 * 86_400_000 }],
    ['a day in June', { from: T0 + 160 * 86_400_000, to: T0 + 161 * 86_400_000 }],
    ['cursor half a year back', { after: { receivedAt: T0 + YEAR_MS / 2, id: Math.ceil(n / 2) } }]
  ]
  return filters.flatMap((f) => times.map(([tname, t]) => ({
    name: [Object.entries(f).map(([k, v]) => `${k}=${v}`).join('&') || 'no filter', tname].filter((x) => x !== '').join(', '),
    query: { ...f, ...t, limit: 50 }
  })))
}

function path (q: RecordingQuery): string {
  const params = new URLSearchParams()
  for (const k of ['vhost', 'app', 'stream', 'from', 'to', 'limit'] as const) if (q[k] !== undefined) params.set(k, String(q[k]))
  if (q.after !== undefined) params.set('cursor', encodeCursor(q.after))
  return `/admin-api/video/camera/recordings?${params.toString()}`
}

interface Listing { all: number[], byShape: Map<string, number[]>, failures: number }

/** Every shape in turn, one request at a time (latency, not throughput), for `durationS` (each shape at least 5 times). */
async function measureListing (app: Target, list: Shape[], durationS: number): Promise<Listing> {
  const pool = new Pool(app.url, { connections: 1 })
  const byShape = new Map(list.map((s) => [s.name, [] as number[]]))
  let failures = 0
  const get = async (s: Shape): Promise<number> => {
    const started = performance.now()
    const res = await pool.request({ method: 'GET', path: path(s.query) })
    const body = await res.body.text()
    failures += Number(!answered(res.statusCode, body))
    return performance.now() - started
  }
  for (const s of list) await get(s) // warm-up: plans, caches
  const until = performance.now() + durationS * 1000
  for (let round = 0; round < 5 || performance.now() < until; round++) {
    for (const s of list) byShape.get(s.name)!.push(await get(s))
  }
  await pool.close()
  return { all: [...byShape.values()].flat(), byShape, failures }
}

function slowest (l: Listing): { name: string, p99: number } {
  let worst = { name: '', p99: -1 }
  for (const [name, ms] of l.byShape) {
    const p99 = percentile(ms, 99)
    if (p99 > worst.p99) worst = { name, p99 }
  }
  return worst
}

/**
 * The page queries alone, as the stores run them (no HTTP, no worker, no JSON): each shape
 * `rounds` times after one unmeasured run, one at a time. Times in ms.
 */
async function timeQueries (sqliteFile: string, url: string, list: Shape[], rounds: number): Promise<{ sqlite: number[], postgres: number[] }> {
  const db = new Database(sqliteFile, { readonly: true })
  const span = db.prepare('SELECT max(received_at - started_at) FROM recordings').pluck()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const sqlite: number[] = []
  const postgres: number[] = []
  try {
    for (let round = -1; round < rounds; round++) {
      for (const s of list) {
        let started = performance.now()
        const { sql, params } = sqliteListSql(s.query, () => span.get() as number)
        db.prepare(sql).all(params)
        if (round >= 0) sqlite.push(performance.now() - started)
        started = performance.now()
        const { text, values } = pgListSql('srs_hooks', s.query)
        await client.query(text, values)
        if (round >= 0) postgres.push(performance.now() - started)
      }
    }
  } finally {
    db.close()
    await client.end()
  }
  return { sqlite, postgres }
}

/** 8. A page of GET recordings at a million rows, every filter combination, PostgreSQL against SQLite. */
export const listingAtScale: Scenario = {
  title: 'GET recordings at scale, PostgreSQL vs SQLite',
  run: async (_shared, opts) => await withPostgres(async (cluster) => {
    const n = opts.recordings
    const url = await cluster.database()
    const list = shapes(n)
    const say = (line: string): void => { process.stderr.write(`      ${line}\n`) }
    let started = performance.now()
    await seedPostgres(url, n)
    say(`seeded PostgreSQL with ${n} rows in ${Math.round(performance.now() - started)} ms`)
    let sqliteFile = ''
    let queries = { sqlite: [0], postgres: [0] }
    const sqlite = await withStage(async ({ app }) => {
      const http = await measureListing(app, list, opts.durationS)
      queries = await timeQueries(sqliteFile, url, list, 10)
      return http
    }, {
      prepare: async (dir) => {
        started = performance.now()
        seedSqlite(dir, n)
        sqliteFile = `${dir}/recordings.db`
        say(`seeded SQLite with ${n} rows in ${Math.round(performance.now() - started)} ms`)
        if (process.env.BENCH_EXPLAIN === '1') await explain(sqliteFile, url, list, say)
      }
    })
    const postgres = await withStage(async ({ app }) => await measureListing(app, list, opts.durationS), { env: { DATABASE_URL: url } })
    const [ws, wp] = [slowest(sqlite), slowest(postgres)]
    say(`slowest shape: SQLite "${ws.name}" p99 ${ws.p99.toFixed(2)} ms; PostgreSQL "${wp.name}" p99 ${wp.p99.toFixed(2)} ms`)
    return [
      row(`GET recordings p50 at ${n} rows, PostgreSQL (ref: SQLite)`, 'ms', percentile(postgres.all, 50), percentile(sqlite.all, 50)),
      row(`GET recordings p99 at ${n} rows, PostgreSQL (ref: SQLite)`, 'ms', percentile(postgres.all, 99), percentile(sqlite.all, 99)),
      row(`GET recordings p99 at ${n} rows, SQLite`, 'ms', percentile(sqlite.all, 99), undefined, checks.below(10, 'ms')),
      row(`GET recordings p99 at ${n} rows, PostgreSQL`, 'ms', percentile(postgres.all, 99), undefined, checks.below(10, 'ms')),
      row(`page query alone p50 at ${n} rows, PostgreSQL (ref: SQLite)`, 'ms', percentile(queries.postgres, 50), percentile(queries.sqlite, 50)),
      row(`page query alone p99 at ${n} rows, PostgreSQL (ref: SQLite)`, 'ms', percentile(queries.postgres, 99), percentile(queries.sqlite, 99), checks.below(5, 'ms')),
      row(`page query alone p99 at ${n} rows, SQLite`, 'ms', percentile(queries.sqlite, 99), undefined, checks.below(5, 'ms')),
      row('GET recordings p99 of the slowest filter combination, PostgreSQL (ref: SQLite)', 'ms', wp.p99, ws.p99),
      row('GET recordings failed (ref: completed)', 'requests', sqlite.failures + postgres.failures, sqlite.all.length + postgres.all.length, checks.atMost(0, 'requests'))
    ]
  })
}

/** BENCH_EXPLAIN=1: every shape's plan on both stores, on standard error (BENCHMARKS.md quotes them). */
async function explain (sqliteFile: string, url: string, list: Shape[], say: (l: string) => void): Promise<void> {
  const db = new Database(sqliteFile, { readonly: true })
  const span = db.prepare('SELECT max(received_at - started_at) FROM recordings').pluck()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    say(`EXPLAIN QUERY PLAN (SQLite) / EXPLAIN (ANALYZE) (PostgreSQL ${PG_SCHEMA_VERSION}), each shape:`)
    say(`span: ${JSON.stringify(db.prepare('EXPLAIN QUERY PLAN SELECT max(received_at - started_at) FROM recordings').all().map((r: any) => r.detail))}`)
    for (const s of list) {
      const { sql, params } = sqliteListSql(s.query, () => span.get() as number)
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params).map((r: any) => r.detail as string)
      say(`[${s.name}] SQLite: ${plan.join(' | ')}`)
      const { text, values } = pgListSql('srs_hooks', s.query)
      const res = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF) ${text}`, values)
      say(`[${s.name}] PostgreSQL:\n${res.rows.map((r) => '        ' + r['QUERY PLAN']).join('\n')}`)
    }
  } finally {
    db.close()
    await client.end()
  }
}

// ------------------------------------------------------------------------------ bursts

/**
 * What a burst cost before the worker, measured directly: `n` recordings written one by one on
 * this thread (a transaction, so a commit and an fsync, each, as every on_dvr did), the time the
 * event loop was held; against the same `n` through the worker at once (group commit), the time
 * until the last is acknowledged (the loop free meanwhile).
 */
async function onLoopVsWorker (n: number): Promise<{ onLoop: number, worker: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'srs-hooks-bench-'))
  try {
    const rec = (i: number, tag: string) => ({
      vhost: '__defaultVhost__',
      app: 'live',
      stream: 'cam',
      streamUrl: '/live/cam',
      clientId: tag,
      file: `/d/${tag}${i}.flv`,
      path: `/d/${tag}${i}.flv`,
      startedAt: null,
      receivedAt: Date.now(),
      fileError: null
    })
    const index = new SqliteIndex({ dir })
    let started = performance.now()
    for (let i = 0; i < n; i++) index.db.transaction(() => index.add(rec(i, 'loop')))()
    const onLoop = performance.now() - started
    index.close()
    const store = await SqliteRecordingStore.open({ dir })
    await store.count() // the worker up
    started = performance.now()
    await Promise.all(Array.from({ length: n }, async (_, i) => await store.add(rec(i, 'worker'))))
    const worker = performance.now() - started
    await store.close()
    return { onLoop, worker }
  } finally {
    await rm(dir, { recursive: true })
  }
}

interface Sample { due: number, ms: number, ok: boolean }
interface Burst { kind: 'on_dvr' | 'on_hls', start: number, end: number, ms: number[], failed: number }

/**
 * `rate` requests per second from `requests` (in turn) for `durationS`, each timed from when it
 * was due, while bursts of `size` requests at once alternate between on_dvr and on_hls, one
 * 500 ms after the last one answered. Interleaved, so that whatever else loads the machine
 * weighs on both kinds alike.
 */
async function interleavedBursts (url: string, requests: HttpRequest[], rate: number, durationS: number, size: number, connections: number): Promise<{ samples: Sample[], bursts: Burst[] }> {
  const steady = new Pool(url, { connections })
  const burstPool = new Pool(url, { connections: size })
  const dvr = dvrRequests('burst')
  const hls = (): HttpRequest => hookRequest('on_hls', DVR_STREAM, 'hls00001')
  const samples: Array<Promise<Sample>> = []
  const bursts: Burst[] = []
  const started = performance.now()
  const until = started + durationS * 1000
  const send = async (pool: Pool, req: HttpRequest): Promise<{ ok: boolean }> => {
    const res = await pool.request({ ...req, headers: { 'content-type': 'application/json' } })
    return { ok: answered(res.statusCode, await res.body.text()) }
  }
  const burster = (async () => {
    await sleep(200)
    // At least one burst of each kind, however short the run.
    for (let i = 0; i < 2 || performance.now() < until - 300; i++) {
      const kind = i % 2 === 0 ? 'on_dvr' : 'on_hls'
      const burst: Burst = { kind, start: performance.now(), end: 0, ms: [], failed: 0 }
      await Promise.all(Array.from({ length: size }, async () => {
        const t0 = performance.now()
        const { ok } = await send(burstPool, kind === 'on_dvr' ? dvr() : hls())
        burst.ms.push(performance.now() - t0)
        burst.failed += Number(!ok)
      }))
      burst.end = performance.now()
      bursts.push(burst)
      await sleep(500)
    }
  })()
  let i = 0
  while (performance.now() < until) {
    const due = Math.min(Math.floor((performance.now() - started) * rate / 1000) + 1, durationS * rate)
    while (samples.length < due) {
      const at = started + samples.length * 1000 / rate
      const req = requests[i++ % requests.length]!
      samples.push(send(steady, req).then(({ ok }) => ({ due: at, ms: performance.now() - at, ok })))
    }
    await sleep(1)
  }
  const done = await Promise.all(samples)
  await burster
  await steady.close()
  await burstPool.close()
  return { samples: done, bursts }
}

/** The steady samples whose time in flight overlaps a burst of `kind` (or none, for null). */
function during (samples: Sample[], bursts: Burst[], kind: Burst['kind'] | null): number[] {
  const overlaps = (s: Sample, b: Burst): boolean => s.due < b.end && s.due + s.ms > b.start
  return samples.filter((s) => {
    const hit = bursts.find((b) => overlaps(s, b))
    return kind === null ? hit === undefined : hit?.kind === kind
  }).map((s) => s.ms)
}

/**
 * 9. Bursts of on_dvr (SQLite, an fsync at every commit) beside a steady on_publish/on_unpublish
 * load, interleaved with the same bursts of on_hls (the same HTTP work, nothing stored): what
 * storing the recordings adds to the hooks a takeover waits for, apart from what any burst of
 * requests costs.
 */
export const dvrBurst: Scenario = {
  title: 'bursts of on_dvr beside on_publish and on_unpublish (SQLite)',
  run: async (_shared, opts) => await withStage(async ({ sim, app }) => {
    const streams = await knownStreams(sim, 'burst', Math.min(opts.streams, 500))
    const others = streams.flatMap((s, i) => [hookRequest('on_publish', s, `b${i}`), hookRequest('on_unpublish', s, `b${i}`)])
    await warmUp(app.url, others, opts)
    const b = opts.dvrBurst
    const before = (await app.recordings()).groups!
    const { samples, bursts } = await interleavedBursts(app.url, others, opts.dvrRate, opts.durationS, b, opts.connections)
    await app.recordings() // after the last burst's file examinations, queued behind it
    const after = (await app.recordings()).groups!
    const [inDvr, inHls, between] = [during(samples, bursts, 'on_dvr'), during(samples, bursts, 'on_hls'), during(samples, bursts, null)]
    const of = (kind: Burst['kind']): Burst[] => bursts.filter((x) => x.kind === kind)
    const burstMs = (kind: Burst['kind']): number[] => of(kind).flatMap((x) => x.ms)
    const direct = await onLoopVsWorker(b)
    const q = (ms: number[], p: number): number => ms.length === 0 ? 0 : percentile(ms, p)
    return [
      row(`on_publish + on_unpublish p50 during bursts of ${b} on_dvr (ref: of ${b} on_hls)`, 'ms', q(inDvr, 50), q(inHls, 50)),
      row(`on_publish + on_unpublish p99 during bursts of ${b} on_dvr (ref: of ${b} on_hls)`, 'ms', q(inDvr, 99), q(inHls, 99), checks.addedBelow(5, 'ms')),
      row(`on_publish + on_unpublish p99 during bursts of ${b} on_hls (ref: between bursts)`, 'ms', q(inHls, 99), q(between, 99)),
      row('on_publish + on_unpublish during on_dvr bursts (ref: during on_hls bursts)', 'requests', inDvr.length, inHls.length),
      row(`on_dvr p99 in bursts of ${b} at once (ref: on_hls)`, 'ms', q(burstMs('on_dvr'), 99), q(burstMs('on_hls'), 99)),
      row(`bursts of ${b} on_dvr (ref: of on_hls)`, 'bursts', of('on_dvr').length, of('on_hls').length),
      row('SQLite writes per commit in the bursts (group commit; ref: on_dvr)', 'calls', (after.calls - before.calls - 2) / Math.max(1, after.commits - before.commits), burstMs('on_dvr').length),
      row(`event loop held by ${b} on_dvr committed on it one by one, as before (ref: the same ${b} through the worker, loop free)`, 'ms', direct.onLoop, direct.worker),
      row('requests failed beside and in the bursts (ref: completed)', 'requests',
        samples.filter((x) => !x.ok).length + bursts.reduce((n, x) => n + x.failed, 0), samples.length + bursts.reduce((n, x) => n + x.ms.length, 0), checks.atMost(0, 'requests'))
    ]
  })
}
