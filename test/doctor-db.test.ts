import t from 'tap'
import { pino } from 'pino'
import { startPostgres } from './fixtures/postgres.js'
import { SrsSimulator } from './fixtures/srs-sim.js'
import { doctor } from '../src/cli/doctor.js'
import { loadConfig } from '../src/config.js'
import { checkDatabase } from '../src/recordings/doctor.js'
import { PgRecordingStore } from '../src/recordings/postgres.js'

/** `srs-hooks doctor` with DATABASE_URL: PostgreSQL reachable, the schema's version, a write. */

const cluster = await startPostgres(t)

async function check (env: Record<string, string>): Promise<{ lines: string[], failed: number }> {
  const lines: string[] = []
  let failed = 0
  await checkDatabase(loadConfig(env), {
    ok: (w) => lines.push(`OK ${w}`),
    warn: (w, f) => lines.push(`WARN ${w} | ${f}`),
    fail: (w, f) => { failed++; lines.push(`FAIL ${w} | ${f}`) },
    step: (w) => lines.push(`... ${w}`)
  })
  return { lines, failed }
}

t.test('doctor with DATABASE_URL: PostgreSQL answers, the schema is current, a write commits; the password is never printed', async (t) => {
  const sim = await SrsSimulator.start({ version: '6' })
  t.teardown(() => sim.close())
  const url = new URL(await cluster.database())
  const store = new PgRecordingStore({ url: url.toString(), schema: 'srs_hooks', queryTimeoutMs: 2000, writeTimeoutMs: 2000, poolMax: 1, log: pino({ level: 'silent' }) })
  await store.migrate()
  await store.close()
  url.password = 'pw-doctor-secret'
  const out: string[] = []
  await doctor([], { out: (l) => out.push(l), err: (l) => out.push(l), env: { SRS_API_URL: sim.apiUrl, DATABASE_URL: url.toString() } })
  const text = out.join('\n')
  t.match(text, /\.\.\. {3}connecting to PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/t\d+_\d+\n/)
  t.match(text, /OK {4}PostgreSQL answers at postgres:\/\/postgres:\*\*\*@/)
  t.match(text, /OK {4}schema srs_hooks is at version 1\n/)
  t.match(text, /OK {4}a test write to srs_hooks\.meta was committed\n/)
  t.notMatch(text, /pw-doctor-secret/)
  t.match(await cluster.query('SELECT key FROM srs_hooks.meta', [], url.toString()), [{ key: 'ready_check' }])
})

t.test('doctor with a database srs-hooks has not set up yet: a warning, no write attempted', async (t) => {
  const r = await check({ DATABASE_URL: await cluster.database() })
  t.equal(r.failed, 0)
  t.match(r.lines, [/^\.\.\. connecting/, /^OK PostgreSQL answers/, /^WARN schema srs_hooks is at version 0 \(0: not created yet\); this srs-hooks brings it to version 1 at start \| .*needs CREATE on the database/])
  t.equal(r.lines.length, 3)
})

t.test('doctor with a schema from a newer srs-hooks, PostgreSQL out of reach, or a bad URL: each fails with a fix', async (t) => {
  const url = await cluster.database()
  const store = new PgRecordingStore({ url, schema: 'srs_hooks', queryTimeoutMs: 2000, writeTimeoutMs: 2000, poolMax: 1, log: pino({ level: 'silent' }) })
  await store.migrate()
  await store.close()
  await cluster.query('INSERT INTO srs_hooks.schema_migrations (version, name) VALUES (5, \'later\')', [], url)
  const newer = await check({ DATABASE_URL: url })
  t.equal(newer.failed, 1)
  t.match(newer.lines.at(-1), /^FAIL schema srs_hooks is at version 5, newer than this srs-hooks knows \(1\) \| run the srs-hooks release/)

  const down = await check({ DATABASE_URL: 'postgres://u:pw-x@127.0.0.1:1/db', DATABASE_QUERY_TIMEOUT_MS: '1000' })
  t.equal(down.failed, 1)
  t.match(down.lines.at(-1), /^FAIL PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/db: .*ECONNREFUSED.* \| start PostgreSQL or fix DATABASE_URL/)
  t.notMatch(down.lines.join('\n'), /pw-x/)

  const bad = await check({ DATABASE_URL: 'mysql://u:pw-y@h/d' })
  t.match(bad.lines, [/^FAIL DATABASE_URL="mysql:\/\/u:\*\*\*@h\/d": expected postgres:\/\/.* \| set DATABASE_URL to postgres:\/\//])

  const db = new URL(url).pathname.slice(1)
  await cluster.query('DELETE FROM srs_hooks.schema_migrations WHERE version = 5', [], url)
  await cluster.query(`ALTER DATABASE ${db} SET default_transaction_read_only = on`)
  const readOnly = await check({ DATABASE_URL: url })
  t.equal(readOnly.failed, 1)
  t.match(readOnly.lines.at(-1), /^FAIL PostgreSQL at .* does not take a write: cannot execute INSERT in a read-only transaction \| .*not a read-only standby/)
})
