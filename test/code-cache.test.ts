import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { runCommonJs } from '../src/code-cache.js'

const MAIN = [
  '#!/usr/bin/env node',
  "'use strict'",
  "const path = require('node:path')",
  'globalThis.runs = (globalThis.runs ?? 0) + 1',
  "module.exports = { answer: require('./dep.cjs') + 2, file: __filename, dir: __dirname, base: path.basename(__filename), self: this === exports, strict: (function () { return this === undefined })() }"
].join('\n')

function files (t: Test): { main: string, cache: string, dir: string } {
  const dir = t.testdir({ 'main.cjs': MAIN, 'dep.cjs': 'module.exports = 40' })
  return { main: join(dir, 'main.cjs'), cache: join(dir, 'main.cache'), dir }
}

t.test('a file runs as a CommonJS module: its own require, __filename, __dirname, this, a hashbang line, its "use strict"', async (t) => {
  const { main, cache, dir } = files(t)
  const run = runCommonJs(main, cache)
  t.equal(run.cache, 'absent')
  t.same(run.exports, { answer: 42, file: main, dir, base: 'main.cjs', self: true, strict: true })
  t.notOk(existsSync(cache), 'nothing written until save()')
  t.equal(run.save(), true)
  const written = readFileSync(cache)
  t.same(written.subarray(0, 32), createHash('sha256').update(written.subarray(32)).digest(), 'the cache after its SHA-256')
  t.same(readdirSync(dir).sort(), ['dep.cjs', 'main.cache', 'main.cjs'], 'and nothing else')
})

t.test('save() where the cache cannot be written returns false and leaves no partial file', async (t) => {
  const { main, dir } = files(t)
  // A folder where the cache should be: read as no cache, and the rename onto it fails.
  const cache = join(dir, 'occupied')
  mkdirSync(cache)
  writeFileSync(join(cache, 'x'), 'x')
  const run = runCommonJs(main, cache)
  t.equal(run.cache, 'absent')
  t.equal(run.save(), false)
  t.same(readdirSync(dir).sort(), ['dep.cjs', 'main.cjs', 'occupied'], 'no partial file left')
  t.equal(runCommonJs(main, join(dir, 'missing', 'main.cache')).save(), false, 'a folder that does not exist')
})

/** A start of `main` as dist/src/cli.js starts the bundle, in a process of its own: what became of the cache, and whether `main` ran. */
async function start (t: Test, main: string, cache: string, sourceMaps = false): Promise<string> {
  const fixture = fileURLToPath(new URL('./fixtures/start-bundle.ts', import.meta.url))
  const child = spawn(process.execPath, [...process.execArgv, fixture, main, cache], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SOURCE_MAPS: sourceMaps ? '1' : '0' } })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  t.same([code, signal], [0, null], 'the start exited 0')
  return out.trim()
}

// Each start is a process of its own: within one, V8 finds a source it compiled before in its own
// memory and never reads the cache it is given.
t.test('a start without a usable cache writes one as it exits; a start that used it leaves it as it is', async (t) => {
  const { main, cache } = files(t)
  t.equal(await start(t, main, cache), 'absent ran=1')
  const written = statSync(cache)
  t.equal(await start(t, main, cache), 'used ran=1')
  t.equal(statSync(cache).ino, written.ino, 'not written again')

  writeFileSync(cache, 'not a code cache')
  t.equal(await start(t, main, cache), 'rejected ran=1', 'a file too short to hold a cache')
  t.equal(await start(t, main, cache), 'used ran=1', 'replaced at exit')

  const garbage = Buffer.from('not a code cache, with the right digest')
  writeFileSync(cache, Buffer.concat([createHash('sha256').update(garbage).digest(), garbage]))
  t.equal(await start(t, main, cache), 'rejected ran=1', 'a cache V8 rejects')
  t.equal(await start(t, main, cache), 'used ran=1', 'replaced at exit')
})

t.test('a damaged cache is not given to V8 (which would not check it, and could crash): it is replaced', async (t) => {
  const { main, cache } = files(t)
  await start(t, main, cache)
  const damaged = readFileSync(cache)
  // A run of bytes in the middle of the cache flipped, its digest left as it was.
  const middle = Math.floor(damaged.length / 2)
  for (let i = middle; i < middle + 64 && i < damaged.length; i++) damaged[i] = damaged[i]! ^ 0xff
  writeFileSync(cache, damaged)
  t.equal(await start(t, main, cache), 'rejected ran=1')
  t.equal(await start(t, main, cache), 'used ran=1', 'replaced at exit')
})

t.test('where the cache cannot be written, a start does not try at its exit', async (t) => {
  const { main, dir } = files(t)
  const cache = join(dir, 'missing', 'main.cache')
  t.equal(await start(t, main, cache), 'absent ran=1')
  t.equal(await start(t, main, cache), 'absent ran=1', 'still none')
})

t.test('with source maps on, the file is left to Node\'s loader (which maps its stack traces), without a cache', async (t) => {
  const { main, cache } = files(t)
  t.equal(await start(t, main, cache, true), 'bypassed ran=1')
  t.notOk(existsSync(cache), 'none written')
})
