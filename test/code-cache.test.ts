import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { runCommonJs } from '../src/code-cache.js'

const MAIN = [
  '#!/usr/bin/env node',
  "const path = require('node:path')",
  "module.exports = { answer: require('./dep.cjs') + 2, file: __filename, dir: __dirname, base: path.basename(__filename), self: this === exports }"
].join('\n')

function files (t: Test): { main: string, cache: string, dir: string } {
  const dir = t.testdir({ 'main.cjs': MAIN, 'dep.cjs': 'module.exports = 40' })
  return { main: join(dir, 'main.cjs'), cache: join(dir, 'main.cache'), dir }
}

t.test('a file runs as a CommonJS module: its own require, __filename, __dirname, this, a hashbang line', async (t) => {
  const { main, cache, dir } = files(t)
  const run = runCommonJs(main, cache)
  t.equal(run.cache, 'absent')
  t.same(run.exports, { answer: 42, file: main, dir, base: 'main.cjs', self: true })
  t.notOk(existsSync(cache), 'nothing written until save()')
  t.equal(run.save(), true)
  t.ok(statSync(cache).size > 0, 'save() wrote the cache')
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

// Each start is a process of its own: within one, V8 finds a source it compiled before in its own
// memory and never reads the cache it is given.
t.test('a start without a usable cache writes one as it exits; a start that used it leaves it as it is', async (t) => {
  const { main, cache } = files(t)
  const fixture = fileURLToPath(new URL('./fixtures/start-bundle.ts', import.meta.url))
  const start = async (): Promise<string> => {
    const child = spawn(process.execPath, [...process.execArgv, fixture, main, cache], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    const [code] = await once(child, 'exit') as [number]
    t.equal(code, 0)
    return out.trim()
  }
  t.equal(await start(), 'absent')
  const written = statSync(cache)
  t.equal(await start(), 'used')
  t.equal(statSync(cache).ino, written.ino, 'not written again')
  writeFileSync(cache, 'not a code cache')
  t.equal(await start(), 'rejected', 'a cache V8 rejects: the file runs all the same')
  t.equal(await start(), 'used', 'replaced at exit')
})
