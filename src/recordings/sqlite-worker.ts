/**
 * The thread that owns the process's SQLite databases (group-commit.ts explains why): opens them
 * when asked, runs the calls it receives on each in groups, closes them. Everything it runs lives
 * in modules the main thread's tests also load directly (sqlite.ts, spool.ts, group-commit.ts);
 * this file only wires them to the message port.
 */
import { parentPort } from 'node:worker_threads'
import { failure, GroupCommit, type DatabaseKind, type HostCall, type Reply } from './group-commit.js'
import { OutboxFile } from '../forward/outbox.js'
import { SpoolFile } from './spool.js'
import { SqliteIndex } from './sqlite.js'

const port = parentPort!
const send = (replies: Reply[]): void => { port.postMessage(replies) }
const open = new Map<number, { file: SqliteIndex | SpoolFile | OutboxFile, group: GroupCommit }>()
let next = 0

port.on('message', (m: HostCall | 'exit') => {
  // The process is about to end with no call waiting: close what is still open (a process that
  // forgot a database) and end this thread cleanly first.
  if (m === 'exit') {
    for (const { file, group } of open.values()) {
      group.flushAll()
      file.close()
    }
    open.clear()
    port.close()
    return
  }
  if (m.db === null) {
    try {
      const [kind, options] = m.args as [DatabaseKind, any]
      const file = kind === 'index' ? new SqliteIndex(options) : kind === 'outbox' ? new OutboxFile(options) : new SpoolFile(options)
      const db = next++
      open.set(db, { file, group: new GroupCommit(file.db, file.ops, send, file instanceof SpoolFile ? (committed) => { file.settle(committed) } : undefined) })
      send([{ id: m.id, value: { db, info: file.info() } }])
    } catch (err) {
      send([failure(m.id, err)])
    }
    return
  }
  // SqliteDatabase sends nothing after its close.
  const { file, group } = open.get(m.db)!
  if (m.op !== 'close') {
    group.push(m)
    return
  }
  group.flushAll()
  file.close()
  open.delete(m.db)
  send([{ id: m.id, value: null }])
})
