import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startWorld } from './fixtures/app.js'

/**
 * The operator console in a real headless Chromium (Debian's chromium, scripts/test-deps.sh),
 * against the SRS simulator. One browser for the file; a page per test.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ADMIN = '/admin-api/video/camera'
const TOKEN = 'a-long-random-operator-token-0123456789'

let browser: Browser
let consoleDir: string

t.before(async () => {
  const { buildConsole } = await import(join(process.cwd(), 'scripts/build-console.mjs'))
  consoleDir = await buildConsole(process.cwd(), t.testdir())
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
})
t.teardown(async () => { await browser?.close() })

async function open (t: Test, env: Record<string, string> = {}, path = `${ADMIN}/console/`) {
  const w = await startWorld(t, { CONSOLE_DIR: consoleDir, ...env })
  const page = await browser.newPage()
  t.teardown(() => page.close())
  const dialogs: string[] = []
  page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss() })
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  const res = await page.goto(w.url + path)
  return { ...w, page, res, dialogs, errors }
}

const row = (page: Page, name: string) => page.getByRole('row').filter({ hasText: name })

t.test('the page lists a live stream; a hostile name is text and runs nothing', { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM}` }, async (t) => {
  const evil = '<img src=x onerror=alert(1)>'
  const { sim, page, res, dialogs, errors } = await open(t)
  t.match(res!.headers()['content-security-policy'], /default-src 'self'/)
  const a = await sim.publish({ app: 'live', stream: 'cam1', ip: '10.0.0.7' })
  await sim.publish({ app: 'live', stream: evil })
  await page.getByLabel('Filter by name').fill('')
  await row(page, 'live/cam1').waitFor({ timeout: 10_000 })
  t.match(await row(page, 'live/cam1').textContent(), new RegExp(`live/cam1${a.clientId}10\\.0\\.0\\.7`))
  await row(page, `live/${evil}`).waitFor()
  t.equal(await page.locator('#streams img').count(), 0, 'no element made of the name')
  await page.getByRole('button', { name: `Kick live/${evil}` }).waitFor()
  t.same(dialogs, [], 'no alert ran')
  t.same(errors, [])
  await page.getByText('SRS ').first().waitFor()
  t.match(await page.locator('#servers').textContent(), /SRS .* 6\.0\.\d+ .* up/)
})

t.test('a takeover appears without a reload', { skip: !existsSync(CHROMIUM) }, async (t) => {
  const { sim, page } = await open(t)
  await page.getByText('live', { exact: true }).waitFor()
  const a = await sim.publish({ app: 'live', stream: 'cam1', stalled: true })
  const b = await sim.publish({ app: 'live', stream: 'cam1' })
  const line = page.locator('#events li').filter({ hasText: 'takeover' })
  await line.waitFor({ timeout: 5000 })
  t.match(await line.textContent(), `${a.clientId} → ${b.clientId}`)
  t.match(await line.textContent(), /policy takeover, released in \d+ ms/)
})

t.test('the kick button asks, then evicts', { skip: !existsSync(CHROMIUM) }, async (t) => {
  const { sim, page } = await open(t)
  const a = await sim.publish({ app: 'live', stream: 'cam1' })
  const kick = page.getByRole('button', { name: 'Kick live/cam1' })
  await kick.waitFor({ timeout: 10_000 })
  await kick.click()
  const dialog = page.getByRole('dialog')
  await dialog.waitFor()
  t.match(await dialog.textContent(), `Evict the publisher of live/cam1 (client ${a.clientId})`)
  await dialog.getByRole('button', { name: 'Cancel' }).click()
  t.equal(sim.activePublisher('live', 'cam1'), a.clientId, 'cancelled: still publishing')
  await kick.click()
  await dialog.getByRole('button', { name: 'Kick' }).click()
  await page.locator('#events li').filter({ hasText: `operator evicted ${a.clientId}` }).waitFor()
  t.same(sim.kicks, [a.clientId])
  t.equal(sim.activePublisher('live', 'cam1'), undefined)
})

t.test('with ADMIN_TOKEN the page asks for it: a wrong token is refused, the right one opens it', { skip: !existsSync(CHROMIUM) }, async (t) => {
  const { sim, page } = await open(t, { ADMIN_TOKEN: TOKEN }, '/video/camera/console/')
  await sim.publish({ app: 'live', stream: 'cam1' })
  const field = page.getByLabel('Operator token (ADMIN_TOKEN)')
  await field.waitFor()
  await field.fill('not-the-token')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('alert').filter({ hasText: 'wrong token' }).waitFor()
  t.notOk(await page.locator('#main').isVisible(), 'nothing shown')
  await field.fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('button', { name: 'Kick live/cam1' }).waitFor({ timeout: 10_000 })
  t.equal(await page.evaluate('document.cookie + localStorage.length'), '0', 'no cookie, nothing in localStorage')
  t.equal(await page.evaluate('sessionStorage.getItem("srs-hooks-admin-token")'), TOKEN, 'kept for the tab only')
})

t.test('the events stream resumes after a dropped connection, without losing what happened meanwhile', { skip: !existsSync(CHROMIUM) }, async (t) => {
  const { app, page } = await open(t)
  await page.getByText('live', { exact: true }).waitFor()
  await waitReaders(app, 1)
  app.liveEvents.publish({ type: 'refusal', at: Date.now(), stream: '/live/before', server: 's', client: 'c1', reason: 'policy-reject', msg: 'first' })
  await page.locator('#events li').filter({ hasText: '/live/before' }).waitFor()
  app.liveEvents.end()
  // Published while the page is disconnected: replayed when it comes back with its Last-Event-ID.
  app.liveEvents.publish({ type: 'refusal', at: Date.now(), stream: '/live/during', server: 's', client: 'c2', reason: 'policy-reject', msg: 'second' })
  await page.locator('#events li').filter({ hasText: '/live/during' }).waitFor({ timeout: 5000 })
  t.equal(await page.locator('#events li').filter({ hasText: '/live/before' }).count(), 1, 'nothing shown twice')
})

t.test('10,000 live streams render on demand and filter by name', { skip: !existsSync(CHROMIUM) }, async (t) => {
  const { sim, page } = await open(t)
  sim.seedLive(10_000, { prefix: 'cam-' })
  await page.getByText('(10000)').waitFor({ timeout: 30_000 })
  const rendered = await page.locator('#streams .row').count()
  t.ok(rendered > 0 && rendered < 100, `${rendered} rows in the document`)
  await page.getByLabel('Filter by name').fill('cam-9876')
  await page.getByText('(1 of 10000)').waitFor()
  t.equal(await page.locator('#streams .row').count(), 1)
  await page.getByLabel('Filter by name').fill('')
  await page.locator('#streams').evaluate((e) => { e.scrollTop = e.scrollHeight })
  await page.getByRole('button', { name: /^Kick live\/cam-\d+$/ }).last().waitFor()
})

async function waitReaders (app: { liveEvents: { readers: number } }, n: number): Promise<void> {
  const { waitFor } = await import('./fixtures/app.js')
  await waitFor(() => app.liveEvents.readers >= n, 10_000, 'the page\'s events stream')
}
