import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { createLogger, LazyChildLogger, turnBatched, unredacted } from '../src/logger.js'
import { waitFor } from './fixtures/app.js'

/** A destination that records what reaches it and when it is flushed or ended. */
function recorder () {
  const calls: string[] = []
  const stream = {
    write: (data: string) => { calls.push(`write ${data}`); return true },
    flush: (cb?: (err?: Error) => unknown) => { calls.push('flush'); cb?.() },
    flushSync: () => { calls.push('flushSync') },
    end: () => { calls.push('end') }
  }
  return { calls, stream: stream as unknown as ReturnType<typeof pino.destination> }
}

t.test('the lines of one turn of the event loop reach the destination in one write, in order', async (t) => {
  const { calls, stream } = recorder()
  const batched = turnBatched(stream)
  batched.write('a\n')
  batched.write('b\n')
  t.same(calls, [], 'nothing written during the turn')
  await waitFor(() => calls.length > 0 ? true : undefined, 2000, 'the write at the end of the turn')
  t.same(calls, ['write a\nb\n'])
  batched.write('c\n')
  await waitFor(() => calls.length > 1 ? true : undefined, 2000, 'the next turn\'s write')
  t.same(calls, ['write a\nb\n', 'write c\n'], 'a later turn is a write of its own')
})

t.test('flush, flushSync and end hand over what is pending first', async (t) => {
  const { calls, stream } = recorder()
  const batched = turnBatched(stream)
  batched.write('a\n')
  let flushed = false
  batched.flush(() => { flushed = true })
  t.ok(flushed)
  batched.write('b\n')
  batched.flushSync()
  batched.flushSync()
  batched.write('c\n')
  batched.end()
  t.same(calls, ['write a\n', 'flush', 'write b\n', 'flushSync', 'flushSync', 'write c\n', 'end'], 'nothing pending is written twice or lost')
  // The turn's scheduled hand-over finds nothing left.
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(calls.length, 7)
})

t.test('the process logger writes every line to its file, batched, and flushes it at the end', async (t) => {
  const file = join(t.testdir(), 'out.log')
  const dest = pino.destination({ dest: file, sync: false })
  await once(dest, 'ready')
  const logger = createLogger('info', turnBatched(dest))
  for (let i = 0; i < 100; i++) logger.info({ i, password: 'p' }, 'line')
  logger.flush()
  dest.end()
  await once(dest, 'finish')
  const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
  t.same(lines.map((l) => l.i), Array.from({ length: 100 }, (_, i) => i))
  t.ok(lines.every((l) => l.password === '***'), 'redacted')
})

t.test('the unredacted child writes the same line without looking for secrets', async (t) => {
  const out: string[] = []
  const logger = createLogger('info', { write: (l: string) => { out.push(l) } })
  unredacted(logger).info({ reqId: 'req-1', action: 'on_play', param: '?vhost=x' }, 'hook')
  logger.child({ reqId: 'req-1' }).info({ action: 'on_play', param: '?vhost=x' }, 'hook')
  const [a, b] = out.map((l) => l.replace(/"time":\d+/, ''))
  t.equal(a, b, 'the same line as the request\'s own child writes')
  unredacted(logger).info({ password: 'shown' }, 'not for secrets')
  t.match(out[2], /"password":"shown"/, 'which is why it is only for lines with no secret')
})

t.test('a request\'s lazy logger is made at its first line and writes what the child itself writes, at every level', async (t) => {
  const lines = () => {
    const out: string[] = []
    return { out, logger: pino({ level: 'trace', base: null, timestamp: false }, { write: (l: string) => { out.push(l) } }) }
  }
  const lazy = lines()
  let made = 0
  const root = lazy.logger
  const child = root.child
  // Children of children inherit this method: only the root's own children are counted.
  root.child = function (this: typeof root, b: never, o: never) { if (this === root) made++; return child.call(this, b, o) } as typeof root.child
  const log = new LazyChildLogger(lazy.logger, { reqId: 'req-1' }, { redact: { paths: ['secret'] } })
  t.equal(made, 0, 'nothing made while the request does not log')
  const real = lines()
  const direct = real.logger.child({ reqId: 'req-1' }, { redact: { paths: ['secret'] } })
  for (const l of [log, direct]) {
    l.fatal({ a: 1 }, 'f')
    l.error({ secret: 'x' }, 'e')
    l.warn('w %s', 'arg')
    l.info('i')
    l.debug({ b: 2 }, 'd')
    l.trace('t')
    l.silent('s')
    t.equal(l.level, 'trace')
    l.level = 'warn'
    l.info('not written: below the level')
    l.child({ sub: true }).warn('from a child')
  }
  t.equal(made, 1, 'made once, at the first line')
  t.same(lazy.out, real.out, 'the same lines')
  t.equal(lazy.out.length, 7)
  t.match(lazy.out[1], /"secret":"\[Redacted\]"/)
})
