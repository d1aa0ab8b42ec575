import type { Config } from '../config.js'
import type { Log } from '../logger.js'
import { checkDatabaseUrl } from './database.js'
import { SqliteRecordingStore } from './sqlite.js'
import type { RecordingStore } from './store.js'

/** How long a start waits for PostgreSQL at most before serving with the spool. */
const START_BOUND_MS = 5000

/**
 * The store the settings ask for: PostgreSQL behind a spool in DATA_DIR when DATABASE_URL is set,
 * else SQLite in DATA_DIR. Rejects with a message an operator can act on (the URL's password
 * masked) when neither can be opened, or when PostgreSQL refuses for good (credentials, a missing
 * database, a newer schema). PostgreSQL merely out of reach is not a reason to refuse to start:
 * recordings are spooled until it answers.
 */
/** The settings the recordings store is opened with. */
export type StoreConfig = Pick<Config, 'DATABASE_POOL_MAX' | 'DATABASE_QUERY_TIMEOUT_MS' | 'DATABASE_SCHEMA' | 'DATABASE_URL' | 'DATABASE_WRITE_TIMEOUT_MS' | 'DATA_DIR' | 'SPOOL_MAX_ROWS' | 'SPOOL_RETRY_MS'>

export async function openStore (config: StoreConfig, log: Log): Promise<RecordingStore> {
  if (config.DATABASE_URL === undefined) {
    try {
      return SqliteRecordingStore.deferred({ dir: config.DATA_DIR })
    } catch (err) {
      throw new Error(`cannot open the recordings index in DATA_DIR=${config.DATA_DIR}: ${(err as Error).message}`, { cause: err })
    }
  }
  const url = checkDatabaseUrl(config.DATABASE_URL)
  // PostgreSQL's client and the spool are loaded only with DATABASE_URL (a start loads less).
  const [{ PgRecordingStore }, { Spool }, { SpooledStore }] = await Promise.all([import('./postgres.js'), import('./spool.js'), import('./spooled.js')])
  let spool
  try {
    spool = await Spool.open({ dir: config.DATA_DIR, max: config.SPOOL_MAX_ROWS })
  } catch (err) {
    throw new Error(`cannot open the recordings spool in DATA_DIR=${config.DATA_DIR}: ${(err as Error).message}`, { cause: err })
  }
  const pg = new PgRecordingStore({
    url,
    schema: config.DATABASE_SCHEMA,
    queryTimeoutMs: config.DATABASE_QUERY_TIMEOUT_MS,
    writeTimeoutMs: config.DATABASE_WRITE_TIMEOUT_MS,
    poolMax: config.DATABASE_POOL_MAX,
    log
  })
  const store = new SpooledStore(pg, spool, { writeTimeoutMs: config.DATABASE_WRITE_TIMEOUT_MS, retryMs: config.SPOOL_RETRY_MS, log })
  try {
    // At most 5 s (Fastify gives a plugin 10 s to start): past it, serve and spool.
    await store.start(Math.min(config.DATABASE_QUERY_TIMEOUT_MS, START_BOUND_MS))
  } catch (err) {
    await store.close()
    throw new Error(`PostgreSQL at ${pg.where} refused: ${(err as Error).message}`, { cause: err })
  }
  log.info({ database: pg.where, schema: pg.schema, spooled: spool.state.depth }, 'recordings index in PostgreSQL')
  return store
}
