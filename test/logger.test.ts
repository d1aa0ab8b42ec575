import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import t from 'tap'
import { createLogger, LazyChildLogger, LineWriter, turnBatched, unredacted } from '../src/logger.js'
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

t.test('a LineWriter writes the very line pino writes, for any string a hook can carry', async (t) => {
  const out: string[] = []
  const logger = unredacted(createLogger('info', { write: (l: string) => { out.push(l) } })) as unknown as Logger
  const writer = LineWriter.of(logger)!
  t.ok(writer, 'our logger is one it writes for')
  // Strings of every kind of character a JSON body can carry, short and over 100 characters.
  const alphabet = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', 'é', '€', '😀', '\ud800', '\udfff', '\u2028']
  let seed = 7
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
  const strings = ['', 'plain']
  for (let i = 0; i < 400; i++) strings.push(Array.from({ length: Math.floor(random() * (i % 2 === 0 ? 20 : 140)) }, () => alphabet[Math.floor(random() * alphabet.length)]).join(''))
  for (const s of strings) {
    const fields = { stream: s, [s]: 'as a key', n: s.length, none: null, skipped: undefined, ok: s.length % 2 === 0, half: 0.5, nan: Number.NaN }
    for (const level of [30, 40]) {
      out.length = 0
      writer.write(level, writer.fields(fields)!, s)
      if (level === 30) logger.info(fields, s)
      else logger.warn(fields, s)
      const [ours, pinos] = out.map((l) => l.replace(/"time":\d+/, ''))
      if (ours !== pinos) {
        t.equal(ours, pinos, `the same line for ${JSON.stringify(s)}`)
        return
      }
    }
  }
  t.pass(`the same ${strings.length * 2} lines`)
  t.equal(writer.fields({ nested: { a: 1 } }), undefined, 'a field that is an object is left to pino (its own stringify)')
  t.equal(writer.fields({ f: () => 1 }), undefined, 'and so is anything else that is not a string, number, boolean or null')
})

t.test('a LineWriter writes at its logger\'s level, and only for a logger whose lines it would write the same', async (t) => {
  const out: string[] = []
  const warnOnly = LineWriter.of(createLogger('warn', { write: (l: string) => { out.push(l) } }))!
  t.same([warnOnly.enabled(30), warnOnly.enabled(40)], [false, true], 'info is below warn')
  const sink = { write: () => true }
  t.equal(LineWriter.of(pino({ mixin: () => ({ x: 1 }) }, sink)), undefined, 'a mixin')
  t.equal(LineWriter.of(pino({ formatters: { level: (label) => ({ level: label }) } }, sink)), undefined, 'formatters')
  t.equal(LineWriter.of(pino({ messageKey: 'message' }, sink)), undefined, 'another message key')
  t.equal(LineWriter.of(pino({ timestamp: pino.stdTimeFunctions.isoTime }, sink)), undefined, 'another time')
  t.equal(LineWriter.of(pino({ hooks: { streamWrite: (s) => s } }, sink)), undefined, 'a hook on writes')
  t.equal(LineWriter.of(pino({ crlf: true }, sink)), undefined, 'other line ends')
  t.equal(LineWriter.of(pino({}, pino.multistream([{ stream: sink }]))), undefined, 'a stream that wants each line\'s level')
  t.ok(LineWriter.of(pino({ base: { service: 'srs-hooks' } }, sink)), 'other bindings are fine')
})
