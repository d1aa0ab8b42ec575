import { Counter, Gauge, type Registry } from 'prom-client'
import type { RecordingService } from './service.js'
import type { SpooledStore } from './spooled.js'

/**
 * The recordings' metrics: the index's size, what on_dvr did, the spool in front of PostgreSQL
 * (depth and the age of its oldest row: what to alert on) and retention. Read from the service's
 * counters at each scrape.
 */
export function registerRecordingMetrics (prefix: string, registers: Registry[], recordings: RecordingService): void {
  new Gauge({ // eslint-disable-line no-new
    name: prefix + 'recordings',
    help: 'Recordings in the index (with PostgreSQL: in the database, every replica\'s); NaN when the index does not answer.',
    registers,
    async collect () {
      this.set(await recordings.count().catch(() => NaN))
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: prefix + 'recordings_indexed_total',
    help: 'on_dvr notices since start, by result: stored, spooled (PostgreSQL out of reach: kept in the spool), duplicate, failed (not stored).',
    labelNames: ['result'] as const,
    registers,
    collect () {
      this.reset()
      const c = recordings.counters
      this.inc({ result: 'stored' }, c.stored)
      this.inc({ result: 'spooled' }, c.spooled)
      this.inc({ result: 'duplicate' }, c.duplicates)
      this.inc({ result: 'failed' }, c.failed)
    }
  })
  const spool = recordings.spool()
  if (spool !== null) {
    const store = recordings.store as SpooledStore
    new Gauge({ // eslint-disable-line no-new
      name: prefix + 'recordings_spool_depth',
      help: 'Recordings acknowledged while PostgreSQL was out of reach, waiting in this replica\'s spool.',
      registers,
      collect () { this.set(recordings.spool()!.depth) }
    })
    new Gauge({ // eslint-disable-line no-new
      name: prefix + 'recordings_spool_oldest_age_seconds',
      help: 'Age of the oldest recording waiting in the spool (0 when it is empty).',
      registers,
      collect () { this.set((recordings.spoolAgeMs() ?? 0) / 1000) }
    })
    new Gauge({ // eslint-disable-line no-new
      name: prefix + 'recordings_spool_max',
      help: 'SPOOL_MAX_ROWS: past it, an on_dvr that cannot reach PostgreSQL is refused.',
      registers,
      collect () { this.set(recordings.spool()!.max) }
    })
    new Counter({ // eslint-disable-line no-new
      name: prefix + 'recordings_spool_drained_total',
      help: 'Spooled recordings drained into PostgreSQL.',
      registers,
      collect () {
        this.reset()
        this.inc(store.counters.drained)
      }
    })
    new Counter({ // eslint-disable-line no-new
      name: prefix + 'recordings_spool_rejected_total',
      help: 'Spooled recordings PostgreSQL refused for what they hold, kept in the spool\'s rejected table (see the error log).',
      registers,
      collect () {
        this.reset()
        this.inc(store.counters.rejected)
      }
    })
    new Counter({ // eslint-disable-line no-new
      name: prefix + 'recordings_spool_drain_failures_total',
      help: 'Attempts to drain the spool that failed (PostgreSQL still out of reach).',
      registers,
      collect () {
        this.reset()
        this.inc(store.counters.drainFailures)
      }
    })
  }
  new Counter({ // eslint-disable-line no-new
    name: prefix + 'recordings_expired_total',
    help: 'Index rows deleted by retention (RECORDINGS_RETENTION_DAYS); the files are never touched.',
    registers,
    collect () {
      this.reset()
      this.inc(recordings.retention?.deleted ?? 0)
    }
  })
}
